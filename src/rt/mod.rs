//! The runtime seam: the only door through which time, task spawning, randomness and the
//! network enter exaid's core.
//!
//! Why: the same core runs on real tokio in production and inside the madsim deterministic
//! simulator in tests. Anything that could make two runs of one seed differ (reading a clock,
//! spawning on a particular executor, drawing entropy, opening a socket, reading a file) goes
//! through the
//! [`Runtime`], [`Listener`] and [`FileSystem`] traits. The production side lives in [`tokio`] (this
//! directory); the simulation side lives in the `exaid-sim` crate. A test in `tests/seam.rs`
//! scans `src/` and fails if raw clocks, spawns or entropy appear anywhere else.
//!
//! The core never names a runtime: `--cfg madsim` is set for every build (see
//! `.cargo/config.toml`), so a `cfg` switch here could not tell production from simulation.
//! Dispatch is dynamic instead, through `Arc<dyn Runtime>`.

pub mod fds;
pub mod fs;
pub mod http;
pub mod memory;
pub mod sqlite;
pub mod store;
pub mod tokio;

pub use fs::{FileMeta, FileRead, FileSystem};

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future: what the seam hands out for sleeps and accepts, and what it takes
/// for spawned tasks. Boxing costs one allocation per sleep, which is noise next to a frame.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream the daemon can speak WebSocket over: a TCP stream on tokio, a simulated TCP
/// stream under madsim, or anything else that reads and writes bytes.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// An owned, type-erased byte stream.
pub type BoxStream = Box<dyn ByteStream>;

/// A point on the runtime's monotonic clock, in nanoseconds since the runtime was created.
///
/// Why our own type: `std::time::Instant` cannot be built from a number, so simulated and real
/// clocks could not share it, and a plain integer would let seconds and milliseconds mix.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    /// Nanoseconds since the runtime's epoch (its creation).
    nanos: u64,
}

impl Instant {
    /// The runtime's epoch: the instant it was created.
    pub const EPOCH: Instant = Instant { nanos: 0 };

    /// An instant from a duration since the runtime's epoch.
    pub fn from_epoch(since: Duration) -> Instant {
        Instant {
            nanos: u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// How long after the epoch this instant is.
    pub fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// `self - earlier`, or zero if `earlier` is later: clocks never run backwards here, but a
    /// deadline compared with "now" can lie on either side.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }

    /// Milliseconds since the epoch, for logs and traces.
    pub fn as_millis(self) -> u64 {
        self.nanos / 1_000_000
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let rhs_nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant {
            nanos: self.nanos.saturating_add(rhs_nanos),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{:.3}s", self.nanos as f64 / 1e9)
    }
}

/// Everything nondeterministic the core may use. One implementation per runtime.
pub trait Runtime: Send + Sync + 'static {
    /// The monotonic clock.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Run `task` concurrently. `name` labels it for debugging; tasks are fire-and-forget:
    /// cancellation is expressed inside the task (a dropped future), never by the runtime.
    fn spawn(&self, name: &'static str, task: BoxFuture<'static, ()>);

    /// 32 bytes of seed material: OS entropy in production, drawn from the simulation seed in
    /// tests. The core expands it with ChaCha (see [`Rng`]).
    fn seed(&self) -> [u8; 32];

    /// Wall-clock time in milliseconds since the Unix epoch, for humans only (status output,
    /// `Retry-After` HTTP dates). Never used to order events.
    fn unix_time_ms(&self) -> u64;

    /// The file system tools read the files a call names from: the real one in production,
    /// an in-memory one in tests and the simulator.
    fn fs(&self) -> Arc<dyn FileSystem>;
}

/// A bound listening socket that hands out byte streams.
pub trait Listener: Send + 'static {
    /// Wait for the next connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;

    /// The address actually bound (port 0 resolves to a real port).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Opens outgoing byte streams to one fixed peer: how the MCP bridge reaches the daemon.
///
/// Why a trait in the seam: dialing is the network's other half (the listener is the first),
/// so the bridge that reconnects through it never names a socket type and could be driven by
/// simulated TCP like the daemon is.
pub trait Dialer: Send + Sync + 'static {
    /// Open a new connection to the peer.
    fn dial(&self) -> BoxFuture<'static, io::Result<BoxStream>>;

    /// The peer, for messages (`host:port`).
    fn peer(&self) -> String;
}

/// A shared handle to the runtime, with the few conveniences the core needs on top of the
/// trait. Cloning is an `Arc` clone.
#[derive(Clone)]
pub struct Rt {
    /// The implementation: tokio in production, madsim in the simulator.
    inner: Arc<dyn Runtime>,
}

impl Rt {
    /// Wrap a runtime implementation.
    pub fn new(inner: Arc<dyn Runtime>) -> Rt {
        Rt { inner }
    }

    /// The monotonic clock.
    pub fn now(&self) -> Instant {
        self.inner.now()
    }

    /// Sleep until `deadline`.
    pub fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.inner.sleep_until(deadline)
    }

    /// Sleep for `duration` from now.
    pub fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = self.now() + duration;
        self.inner.sleep_until(deadline)
    }

    /// Spawn a named task.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(name, Box::pin(task));
    }

    /// A fresh seeded generator (see [`Rng`]).
    pub fn rng(&self) -> Rng {
        Rng::from_seed(self.inner.seed())
    }

    /// Wall-clock milliseconds since the Unix epoch (display only).
    pub fn unix_time_ms(&self) -> u64 {
        self.inner.unix_time_ms()
    }

    /// The file system (see [`FileSystem`]).
    pub fn fs(&self) -> Arc<dyn FileSystem> {
        self.inner.fs()
    }
}

impl fmt::Debug for Rt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rt")
    }
}

/// The core's random generator: ChaCha12 seeded from [`Runtime::seed`].
///
/// Why ChaCha: it is a cryptographically strong stream, so session ids and resume tokens drawn
/// from it are unguessable in production, while under the simulator the same seed yields the
/// same tokens, jitter and fault choices.
pub struct Rng {
    /// The generator state.
    inner: rand_chacha::ChaCha12Rng,
}

impl Rng {
    /// A generator from 32 bytes of seed material.
    pub fn from_seed(seed: [u8; 32]) -> Rng {
        use rand_core::SeedableRng;
        Rng {
            inner: rand_chacha::ChaCha12Rng::from_seed(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        use rand_core::RngCore;
        self.inner.next_u64()
    }

    /// A uniform value in `0..bound` (`bound` > 0), without modulo bias worth noting for the
    /// small bounds used here (jitter, fault choices).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below needs a positive bound");
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// `n_bytes` random bytes as lowercase hex: tokens and ids.
    pub fn hex(&mut self, n_bytes: usize) -> String {
        use rand_core::RngCore;
        use std::fmt::Write;
        let mut bytes = vec![0u8; n_bytes];
        self.inner.fill_bytes(&mut bytes);
        let mut out = String::with_capacity(n_bytes * 2);
        for byte in bytes {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_arithmetic_saturates() {
        let a = Instant::from_epoch(Duration::from_millis(5));
        let b = a + Duration::from_millis(10);
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(b.as_millis(), 15);
    }

    #[test]
    fn rng_is_deterministic_per_seed() {
        let mut a = Rng::from_seed([7; 32]);
        let mut b = Rng::from_seed([7; 32]);
        assert_eq!(a.hex(16), b.hex(16));
        assert_eq!(a.next_u64(), b.next_u64());
        for _ in 0..1000 {
            assert!(a.below(10) < 10);
        }
    }
}
