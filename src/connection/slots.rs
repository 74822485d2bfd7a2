//! Counting WebSocket connections: those still before their hello against
//! `EXAI_WS_MAX_PENDING_HELLOS`, and authenticated ones against `EXAI_WS_MAX_CONNECTIONS`
//! and the per-address limits.
//!
//! Why two counts: a socket that has not said hello costs nothing to open and proves
//! nothing, so it must never take a place an authenticated client needs. Pending sockets
//! have a pool of their own, and when it is full the oldest is closed to make room for the
//! newest (a real client says hello within milliseconds, so it is never the oldest for long;
//! refusing the newest instead would let ten silent sockets lock everyone out, as they did in
//! the issue that asked for this). Only a client whose token is verified takes a connection
//! slot, and the per-address limit counts those: on loopback every editor and agent shares
//! one address, so loopback has a limit of its own (`EXAI_WS_MAX_CONNECTIONS_LOOPBACK`).
//!
//! Why slot values rather than counters bumped by hand: a slot is counted in when it is
//! taken and out when it is dropped, by whatever path the connection ends, so the count can
//! never drift (the same rule as admission's owned permits).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::key;

/// The connection counters and their limits.
pub struct ConnectionSlots {
    /// Authenticated connections open now.
    open: AtomicU32,
    /// Authenticated connections open now per peer address; an entry is removed at zero, so
    /// the map stays bounded by the connection limit.
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Connections that have not said hello yet, oldest first.
    pending: Mutex<Pending>,
    /// The limits.
    limits: SlotLimits,
}

/// The limits the slots enforce, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    /// `EXAI_WS_MAX_CONNECTIONS`: authenticated connections in all.
    pub open_max: u32,
    /// `EXAI_WS_MAX_CONNECTIONS_PER_IP`: authenticated connections from one remote address.
    pub per_ip_max: u32,
    /// `EXAI_WS_MAX_CONNECTIONS_LOOPBACK`: authenticated connections from one loopback
    /// address (every local client shares it).
    pub per_loopback_max: u32,
    /// `EXAI_WS_MAX_PENDING_HELLOS`: connections before their hello.
    pub pending_max: u32,
}

/// The pending pool: who is waiting, oldest first, and how to close them.
struct Pending {
    /// Number for the next pending connection (entries are found by it on drop).
    next_id: u64,
    /// Waiting connections, oldest first, each with the notice that closes it.
    waiting: VecDeque<(u64, Arc<Notify>)>,
    /// Pending connections closed to make room, since start.
    evicted_total: u64,
}

impl ConnectionSlots {
    /// Counters at zero with their limits.
    pub fn new(limits: SlotLimits) -> ConnectionSlots {
        assert!(limits.open_max > 0 && limits.pending_max > 0);
        ConnectionSlots {
            open: AtomicU32::new(0),
            per_ip: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending {
                next_id: 0,
                waiting: VecDeque::new(),
                evicted_total: 0,
            }),
            limits,
        }
    }

    /// Authenticated connections open now.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections before their hello now, and how many were closed to make room.
    pub fn pending(&self) -> (u32, u64) {
        let pending = self.pending.lock().expect("pending lock");
        (pending.waiting.len() as u32, pending.evicted_total)
    }

    /// Count a new connection into the pending pool. If the pool is full, the oldest pending
    /// connection is told to close (its `evicted` fires). Never refuses.
    pub fn enter_pending(self: &Arc<Self>) -> PendingSlot {
        let evicted = Arc::new(Notify::new());
        let mut pending = self.pending.lock().expect("pending lock");
        let id = pending.next_id;
        pending.next_id += 1;
        pending.waiting.push_back((id, evicted.clone()));
        while pending.waiting.len() > self.limits.pending_max as usize {
            let (_, oldest) = pending.waiting.pop_front().expect("over the limit");
            // A stored permit: fires even if the connection is not waiting on it yet.
            oldest.notify_one();
            pending.evicted_total += 1;
        }
        assert!(pending.waiting.len() <= self.limits.pending_max as usize);
        PendingSlot {
            slots: self.clone(),
            id,
            evicted,
        }
    }

    /// Count an authenticated connection from `ip` in, if under every limit. The slot counts
    /// it out when dropped, refused or not. `Err` names the limit.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, String> {
        let before = self.open.fetch_add(1, Ordering::SeqCst);
        let from_ip = {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            let count = per_ip.entry(ip).or_insert(0);
            *count += 1;
            *count
        };
        // From here the slot counts itself out when dropped, refused or not.
        let slot = ConnectionSlot {
            slots: self.clone(),
            ip,
        };
        let limits = &self.limits;
        if before >= limits.open_max {
            return Err(format!(
                "too many connections ({}={})",
                key::EXAI_WS_MAX_CONNECTIONS,
                limits.open_max
            ));
        }
        let (per_address_max, per_address_key) = if ip.is_loopback() {
            (
                limits.per_loopback_max,
                key::EXAI_WS_MAX_CONNECTIONS_LOOPBACK,
            )
        } else {
            (limits.per_ip_max, key::EXAI_WS_MAX_CONNECTIONS_PER_IP)
        };
        if from_ip > per_address_max {
            return Err(format!(
                "too many connections from one address ({per_address_key}={per_address_max})"
            ));
        }
        Ok(slot)
    }
}

/// One connection before its hello; counted out of the pending pool on drop.
pub struct PendingSlot {
    /// Whose pool.
    slots: Arc<ConnectionSlots>,
    /// This connection's entry in the pool.
    id: u64,
    /// Fires when the pool closes this connection to make room.
    evicted: Arc<Notify>,
}

impl PendingSlot {
    /// Resolves when the pool wants this connection closed to make room for a newer one.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut pending = self.slots.pending.lock().expect("pending lock");
        // An evicted entry has left the pool already.
        if let Some(at) = pending.waiting.iter().position(|(id, _)| *id == self.id) {
            pending.waiting.remove(at);
        }
        assert!(pending.waiting.iter().all(|(id, _)| *id != self.id));
    }
}

/// One counted authenticated connection; uncounted on drop.
pub struct ConnectionSlot {
    /// Whose counters.
    slots: Arc<ConnectionSlots>,
    /// The peer's address.
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let before = self.slots.open.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a connection slot was counted out twice");
        let mut per_ip = self.slots.per_ip.lock().expect("per-ip lock");
        let count = per_ip
            .get_mut(&self.ip)
            .expect("a slot's address is counted");
        assert!(*count > 0);
        *count -= 1;
        if *count == 0 {
            per_ip.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(open_max: u32, per_ip_max: u32, per_loopback_max: u32) -> SlotLimits {
        SlotLimits {
            open_max,
            per_ip_max,
            per_loopback_max,
            pending_max: 2,
        }
    }

    #[test]
    fn slots_count_in_and_out_and_name_their_limit() {
        let slots = Arc::new(ConnectionSlots::new(limits(3, 2, 3)));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = slots.try_take(ip).unwrap();
        let _b = slots.try_take(ip).unwrap();
        let err = slots.try_take(ip).err().unwrap();
        assert!(err.contains("EXAI_WS_MAX_CONNECTIONS_PER_IP=2"), "{err}");
        assert_eq!(slots.open(), 2);
        drop(a);
        assert_eq!(slots.open(), 1);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let _c = slots.try_take(other).unwrap();
        let _d = slots.try_take(ip).unwrap();
        let err = slots.try_take(other).err().unwrap();
        assert!(err.contains("EXAI_WS_MAX_CONNECTIONS=3"), "{err}");
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn loopback_has_its_own_per_address_limit() {
        let slots = Arc::new(ConnectionSlots::new(limits(10, 1, 3)));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| slots.try_take(local).unwrap()).collect();
        let err = slots.try_take(local).err().unwrap();
        assert!(err.contains("EXAI_WS_MAX_CONNECTIONS_LOOPBACK=3"), "{err}");
        assert_eq!(slots.open(), 3);
        drop(held);
        assert_eq!(slots.open(), 0);
    }

    #[tokio::test]
    async fn a_full_pending_pool_closes_its_oldest_and_never_refuses() {
        let slots = Arc::new(ConnectionSlots::new(limits(10, 10, 10)));
        let oldest = slots.enter_pending();
        let middle = slots.enter_pending();
        assert_eq!(slots.pending(), (2, 0));
        let newest = slots.enter_pending();
        assert_eq!(slots.pending(), (2, 1));
        // The oldest is told to go; the others are not.
        oldest.evicted().await;
        let not_yet = futures_util::FutureExt::now_or_never(middle.evicted());
        assert!(not_yet.is_none());
        drop(oldest);
        assert_eq!(slots.pending(), (2, 1));
        drop((middle, newest));
        assert_eq!(slots.pending(), (0, 1));
    }
}
