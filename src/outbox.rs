//! The session outbox: every frame a session sends passes through here.
//!
//! Why: delivery must not depend on whether the client is connected right now. Producers
//! (call tasks, the connection reader) push frames; the outbox stamps each with the session's
//! next `seq` and keeps it; whichever connection currently serves the session drains frames
//! after its cursor. Frames stay until the client acks them, they grow older than the TTL, or
//! the caps (frames, bytes) push the oldest out. A frame that falls out before its client saw
//! it is never silent: the writer announces the hole with a `gap` frame.
//!
//! A frame may be pushed held ([`Outbox::push_held`]): stamped and kept, but not handed to any
//! writer (nor any frame after it, so order holds) until [`Outbox::release`]. A terminal frame
//! of a session kept in the state file is held until its record is committed, so a client
//! never receives a result that a crash could still take back.
//!
//! Every kept frame is also counted against the daemon's memory budget
//! ([`crate::memory::MemoryBudget`]): counted in at push, out when it is acked, evicted or
//! shed, and what is left when the outbox goes. While its session has nobody attached the
//! budget may shed its oldest frames ([`Outbox::shed_oldest`]); a resuming client learns of
//! them through the same `gap` as any other frame that fell out.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::memory::MemoryBudget;
use crate::protocol::ServerFrame;
use crate::rt::Instant;

/// What a kept frame costs the memory budget beyond its text: its typed copy (about as big
/// as the text, since it holds the same strings) and the bookkeeping around both (the `Arc`,
/// the queue slot). An estimate, but one counted in and out the same way every time.
const FRAME_OVERHEAD_BYTES: usize = 128;

/// What a frame whose text (without seq) is `body_bytes` long is counted as.
fn frame_charge(body_bytes: usize) -> usize {
    body_bytes
        .saturating_mul(2)
        .saturating_add(FRAME_OVERHEAD_BYTES)
}

/// One frame as the session sends it: typed, for in-process readers (the MCP endpoint's
/// client routes on it without parsing anything), and rendered once, seq included, for
/// sockets.
#[derive(Debug)]
pub struct Stamped {
    /// Its seq in the session.
    pub seq: u64,
    /// The frame.
    pub frame: ServerFrame,
    /// Its JSON text with `"seq":N` first: rendered once at push, written as is by every
    /// connection that delivers it (a replay renders nothing again).
    text: Box<str>,
}

impl Stamped {
    /// Stamp `body` (the frame rendered without seq, a JSON object) with `seq`: the seq goes
    /// in front of the body's first field, so the frame is not serialized a second time.
    fn new(seq: u64, frame: ServerFrame, body: &str) -> Stamped {
        debug_assert!(body.starts_with('{') && body.ends_with('}') && body.len() > 2);
        let mut text = String::with_capacity(body.len() + 24);
        text.push_str("{\"seq\":");
        text.push_str(&seq.to_string());
        text.push(',');
        text.push_str(&body[1..]);
        debug_assert!(text.len() > body.len());
        Stamped {
            seq,
            frame,
            text: text.into_boxed_str(),
        }
    }

    /// The wire text, seq included.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One kept frame.
#[derive(Debug, Clone)]
struct Stored {
    /// The frame; shared with readers without copying.
    stamped: Arc<Stamped>,
    /// When it was pushed, for the TTL.
    pushed_at: Instant,
    /// Its age across every outbox (the memory budget's stamp): shedding goes oldest first.
    stamp: u64,
    /// What it was counted as against the memory budget, given back when it leaves.
    charged: usize,
}

impl Stored {
    fn seq(&self) -> u64 {
        self.stamped.seq
    }

    fn bytes(&self) -> usize {
        self.stamped.text.len()
    }
}

/// Frames that fell out of the outbox before they were acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// First lost seq.
    pub from_seq: u64,
    /// Last lost seq.
    pub to_seq: u64,
}

/// What a writer gets when it asks for frames.
#[derive(Debug, Default)]
pub struct Batch {
    /// Frames lost between the cursor and the first frame below, if any.
    pub gap: Option<Gap>,
    /// Frames after the cursor, in seq order.
    pub frames: Vec<Arc<Stamped>>,
    /// Unacked frames the TTL pushed out while the batch was taken.
    pub evicted: u64,
}

/// Outbox counters, for health and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Frames held now.
    pub frames: usize,
    /// Bytes held now.
    pub bytes: usize,
    /// Highest seq stamped so far (0 before the first frame).
    pub last_seq: u64,
    /// Frames pushed out by a cap or the TTL before they were acked.
    pub evicted_total: u64,
}

#[derive(Debug)]
struct State {
    /// The seq the next frame gets; seqs start at 1 so `last_seq: 0` means "nothing seen".
    next_seq: u64,
    /// Kept frames, oldest first, seqs contiguous from `frames[0].seq`.
    frames: VecDeque<Stored>,
    /// Sum of kept frames' text lengths.
    bytes: usize,
    /// Frames evicted before acked, all time.
    evicted_total: u64,
    /// Seqs of kept frames not yet released to writers (waiting to be durable).
    held: BTreeSet<u64>,
    /// Sum of kept frames' charges against the memory budget.
    charged: usize,
}

impl State {
    /// Take the oldest frame out, giving its charge back to `budget`.
    fn pop_oldest(&mut self, budget: &MemoryBudget) -> Option<Stored> {
        let oldest = self.frames.pop_front()?;
        self.bytes -= oldest.bytes();
        self.charged -= oldest.charged;
        budget.release(oldest.charged);
        debug_assert!(self.frames.is_empty() == (self.charged == 0));
        Some(oldest)
    }
}

/// A session's outbox.
#[derive(Debug)]
pub struct Outbox {
    /// Frames and counters.
    state: Mutex<State>,
    /// Wakes the writer when a frame arrives.
    notify: Notify,
    /// Cap on kept frames.
    frames_max: usize,
    /// Cap on kept bytes.
    bytes_max: usize,
    /// How long an unacked frame is kept.
    ttl: Duration,
    /// The daemon's memory budget every kept frame is counted against.
    budget: Arc<MemoryBudget>,
}

impl Drop for Outbox {
    /// What is still kept leaves with the outbox: its charge goes back to the budget.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.budget.release(state.charged);
    }
}

impl Outbox {
    /// An empty outbox with its caps.
    pub fn new(frames_max: usize, bytes_max: usize, ttl: Duration) -> Outbox {
        assert!(
            frames_max > 0 && bytes_max > 0,
            "outbox caps must be positive"
        );
        Outbox {
            state: Mutex::new(State {
                next_seq: 1,
                frames: VecDeque::new(),
                bytes: 0,
                evicted_total: 0,
                held: BTreeSet::new(),
                charged: 0,
            }),
            notify: Notify::new(),
            frames_max,
            bytes_max,
            ttl,
            budget: MemoryBudget::unbounded(),
        }
    }

    /// The same (empty) outbox, counting its frames against `budget`.
    pub fn with_budget(mut self, budget: Arc<MemoryBudget>) -> Outbox {
        assert_eq!(
            self.stats().frames,
            0,
            "an outbox changes budgets only empty"
        );
        self.budget = budget;
        self
    }

    /// Stamp `frame` with the next seq, keep it, wake the writer. Returns the stamped frame
    /// and how many unacked frames the caps or the TTL pushed out to make room.
    pub fn push(&self, frame: ServerFrame, now: Instant) -> (Arc<Stamped>, u64) {
        self.push_with(frame, now, false)
    }

    /// Stamp and keep `frame` like [`Outbox::push`], but hand neither it nor any later frame
    /// to a writer until [`Outbox::release`] of its seq.
    pub fn push_held(&self, frame: ServerFrame, now: Instant) -> (Arc<Stamped>, u64) {
        self.push_with(frame, now, true)
    }

    /// Release a held frame to the writers (no effect if it was released or evicted).
    pub fn release(&self, seq: u64) {
        let released = self.state.lock().expect("outbox lock").held.remove(&seq);
        if released {
            self.notify.notify_one();
        }
    }

    /// A session kept across a restart starts its seqs after `seq`, the last one its client
    /// has: what the daemon sends from now on is new to it, and no seq it saw is reused.
    /// Only while nothing is kept (before the first frame of this process).
    pub fn continue_after(&self, seq: u64) {
        let mut state = self.state.lock().expect("outbox lock");
        let empty = state.frames.is_empty();
        if empty && state.next_seq <= seq {
            state.next_seq = seq + 1;
        }
        assert!(
            !empty || state.next_seq > seq,
            "every new seq is past the client's"
        );
    }

    fn push_with(&self, frame: ServerFrame, now: Instant, held: bool) -> (Arc<Stamped>, u64) {
        // Rendered outside the lock; only the seq is added under it.
        let body = frame.to_json();
        // Counted before the lock: making room may shed other outboxes (never while holding
        // this one's lock, which shedding this very outbox would need).
        let charged = frame_charge(body.len());
        self.budget.charge(charged);
        let seq = {
            let mut state = self.state.lock().expect("outbox lock");
            let seq = state.next_seq;
            state.next_seq += 1;
            if held {
                state.held.insert(seq);
            }
            let stamped = Arc::new(Stamped::new(seq, frame, &body));
            let stored = Stored {
                stamped: stamped.clone(),
                pushed_at: now,
                stamp: self.budget.stamp(),
                charged,
            };
            state.bytes += stored.bytes();
            state.charged += charged;
            state.frames.push_back(stored);
            let evicted = self.enforce_caps(&mut state, now);
            assert!(state.frames.len() <= self.frames_max);
            assert!(state.frames.back().is_some_and(|f| f.seq() == seq));
            (stamped, evicted)
        };
        self.notify.notify_one();
        seq
    }

    /// Evict what is over a cap or past the TTL; returns how many frames went.
    fn enforce_caps(&self, state: &mut State, now: Instant) -> u64 {
        let mut evicted = 0;
        while let Some(oldest) = state.frames.front() {
            let too_many = state.frames.len() > self.frames_max;
            // The newest frame always stays, even if it alone is over the byte cap: the
            // frame-size limit bounds it, and dropping a terminal frame would lose a result.
            let too_big = state.bytes > self.bytes_max && state.frames.len() > 1;
            let too_old = now.saturating_since(oldest.pushed_at) > self.ttl;
            if !(too_many || too_big || too_old) {
                break;
            }
            let oldest = state.pop_oldest(&self.budget).expect("front exists");
            state.held.remove(&oldest.seq());
            state.evicted_total += 1;
            evicted += 1;
        }
        evicted
    }

    /// Frames with seq greater than `after_seq`, and the gap before them if some were lost.
    pub fn frames_after(&self, after_seq: u64, now: Instant) -> Batch {
        let mut state = self.state.lock().expect("outbox lock");
        let evicted = self.enforce_caps(&mut state, now);
        let last_seq = state.next_seq - 1;
        let mut batch = Batch {
            evicted,
            ..Batch::default()
        };
        if after_seq >= last_seq {
            return batch;
        }
        let first_kept = state.frames.front().map_or(state.next_seq, Stored::seq);
        if first_kept > after_seq + 1 {
            batch.gap = Some(Gap {
                from_seq: after_seq + 1,
                to_seq: first_kept - 1,
            });
        }
        let skip = after_seq.saturating_sub(first_kept - 1) as usize;
        // Nothing from the first held frame on: it is not durable yet, and order holds.
        let held_from = state.held.first().copied().unwrap_or(u64::MAX);
        batch.frames = state
            .frames
            .iter()
            .skip(skip)
            .take_while(|f| f.seq() < held_from)
            .map(|f| f.stamped.clone())
            .collect();
        // Contiguous seqs, starting right after the cursor or the gap.
        debug_assert!(batch.frames.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        debug_assert!(
            batch
                .frames
                .first()
                .is_none_or(|f| f.seq == batch.gap.map_or(after_seq, |g| g.to_seq) + 1)
        );
        batch
    }

    /// The client has everything up to `seq`: forget it.
    pub fn ack(&self, seq: u64) {
        let mut state = self.state.lock().expect("outbox lock");
        // A client cannot ack what it was never handed: never past the first held frame.
        let held_from = state.held.first().copied().unwrap_or(u64::MAX);
        while state
            .frames
            .front()
            .is_some_and(|f| f.seq() <= seq && f.seq() < held_from)
        {
            state.pop_oldest(&self.budget).expect("front exists");
        }
    }

    /// The memory budget's stamp of the oldest kept frame, if any.
    pub fn oldest_stamp(&self) -> Option<u64> {
        let state = self.state.lock().expect("outbox lock");
        state.frames.front().map(|f| f.stamp)
    }

    /// Drop the oldest kept frame to free memory for the daemon (its session has nobody
    /// attached); a resuming client gets a `gap` for it. False if nothing was kept.
    pub fn shed_oldest(&self) -> bool {
        let mut state = self.state.lock().expect("outbox lock");
        let Some(oldest) = state.pop_oldest(&self.budget) else {
            return false;
        };
        state.held.remove(&oldest.seq());
        state.evicted_total += 1;
        true
    }

    /// Wait until a frame is pushed (returns at once if one was pushed since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Wake the writer without a frame (used when its connection is superseded).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// The outbox's counters.
    pub fn stats(&self) -> OutboxStats {
        let state = self.state.lock().expect("outbox lock");
        OutboxStats {
            frames: state.frames.len(),
            bytes: state.bytes,
            last_seq: state.next_seq - 1,
            evicted_total: state.evicted_total,
        }
    }

    /// The cap on kept frames.
    pub fn frames_max(&self) -> usize {
        self.frames_max
    }

    /// How long an unacked frame is kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cap on kept bytes.
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong(id: &str) -> ServerFrame {
        ServerFrame::Pong {
            request_id: Some(id.to_string()),
        }
    }

    #[test]
    fn frames_are_stamped_and_replayed_in_order() {
        let outbox = Outbox::new(8, 1 << 20, Duration::from_secs(300));
        let now = Instant::EPOCH;
        assert_eq!(outbox.push(pong("a"), now).0.seq, 1);
        assert_eq!(outbox.push(pong("b"), now).0.seq, 2);
        let batch = outbox.frames_after(0, now);
        assert_eq!(batch.gap, None);
        assert_eq!(batch.frames.len(), 2);
        assert!(
            batch.frames[0]
                .text()
                .starts_with("{\"seq\":1,\"op\":\"pong\"")
        );
        assert_eq!(batch.frames[0].frame, pong("a"));
        let batch = outbox.frames_after(1, now);
        assert_eq!(batch.frames.len(), 1);
        assert_eq!(batch.frames[0].seq, 2);
        outbox.ack(1);
        assert_eq!(outbox.stats().frames, 1);
    }

    #[test]
    fn a_held_frame_and_every_later_one_wait_for_release() {
        let outbox = Outbox::new(8, 1 << 20, Duration::from_secs(300));
        let now = Instant::EPOCH;
        outbox.continue_after(41);
        assert_eq!(
            outbox.push(pong("a"), now).0.seq,
            42,
            "seqs go on after the client's"
        );
        assert_eq!(outbox.push_held(pong("held"), now).0.seq, 43);
        outbox.push(pong("after"), now);
        let seqs = |batch: Batch| batch.frames.iter().map(|f| f.seq).collect::<Vec<_>>();
        assert_eq!(seqs(outbox.frames_after(41, now)), [42]);
        outbox.ack(44);
        assert_eq!(outbox.stats().frames, 2, "nothing held can be acked");
        outbox.release(43);
        assert_eq!(seqs(outbox.frames_after(42, now)), [43, 44]);
    }

    #[test]
    fn caps_evict_oldest_and_report_a_gap() {
        let outbox = Outbox::new(2, 1 << 20, Duration::from_secs(300));
        let now = Instant::EPOCH;
        for id in ["a", "b", "c", "d"] {
            outbox.push(pong(id), now);
        }
        let stats = outbox.stats();
        assert_eq!(
            (stats.frames, stats.last_seq, stats.evicted_total),
            (2, 4, 2)
        );
        let batch = outbox.frames_after(0, now);
        assert_eq!(
            batch.gap,
            Some(Gap {
                from_seq: 1,
                to_seq: 2
            })
        );
        assert_eq!(
            batch.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn every_frame_is_counted_against_the_budget_until_it_leaves_and_shedding_leaves_a_gap() {
        let budget = MemoryBudget::new(1 << 20);
        let outbox = Outbox::new(8, 1 << 20, Duration::from_secs(300)).with_budget(budget.clone());
        let now = Instant::EPOCH;
        for id in ["a", "b", "c"] {
            outbox.push(pong(id), now);
        }
        let charged = budget.used();
        assert!(charged > 0);
        assert!(outbox.oldest_stamp().is_some());
        assert!(outbox.shed_oldest(), "the oldest frame goes");
        let batch = outbox.frames_after(0, now);
        assert_eq!(
            batch.gap,
            Some(Gap {
                from_seq: 1,
                to_seq: 1
            })
        );
        assert_eq!(batch.frames[0].seq, 2);
        outbox.ack(2);
        assert_eq!(budget.used(), charged / 3, "one frame is left counted");
        drop(outbox);
        assert_eq!(budget.used(), 0, "what an outbox keeps leaves with it");
    }

    #[test]
    fn ttl_evicts_old_frames() {
        let outbox = Outbox::new(16, 1 << 20, Duration::from_secs(1));
        outbox.push(pong("a"), Instant::EPOCH);
        let later = Instant::EPOCH + Duration::from_secs(2);
        let batch = outbox.frames_after(0, later);
        assert_eq!(
            batch.gap,
            Some(Gap {
                from_seq: 1,
                to_seq: 1
            })
        );
        assert!(batch.frames.is_empty());
    }
}
