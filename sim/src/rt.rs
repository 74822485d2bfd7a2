//! The simulation side of the runtime seam: madsim's virtual time, its task scheduler, its
//! seeded generator, and its simulated TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use exaid::rt::{BoxFuture, BoxStream, FileSystem, Instant, Listener, Runtime};
use madsim::rand::RngCore;

use crate::fs::SimFs;

/// madsim as the daemon's runtime. Create it inside the simulation (on the node that will
/// run the daemon): its clock starts at the virtual instant of creation.
pub struct SimRuntime {
    /// Virtual time at creation: the epoch of this runtime's [`Instant`]s.
    epoch: madsim::time::Instant,
    /// The simulated disk the daemon reads the files calls name from.
    fs: SimFs,
}

impl SimRuntime {
    /// A runtime whose clock starts now (virtual time), over an empty file system.
    pub fn new() -> SimRuntime {
        SimRuntime::with_fs(SimFs::new())
    }

    /// A runtime over `fs`: the scenario keeps a clone to change files and read the witness.
    pub fn with_fs(fs: SimFs) -> SimRuntime {
        SimRuntime {
            epoch: madsim::time::Instant::now(),
            fs,
        }
    }

    /// A runtime over `fs` whose clock counts from `epoch`: a daemon restarted after a crash
    /// keeps the first incarnation's epoch, so the instants the observer compares (deadlines,
    /// health samples) are on one clock across incarnations. Nothing durable holds an
    /// [`Instant`] (records carry wall-clock ms), so the daemon cannot tell.
    pub fn with_fs_since(fs: SimFs, epoch: madsim::time::Instant) -> SimRuntime {
        SimRuntime { epoch, fs }
    }

    /// The virtual instant its clock counts from.
    pub fn epoch(&self) -> madsim::time::Instant {
        self.epoch
    }
}

impl Default for SimRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime for SimRuntime {
    fn now(&self) -> Instant {
        Instant::from_epoch(self.epoch.elapsed())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let at = self.epoch + deadline.since_epoch();
        Box::pin(madsim::time::sleep_until(at))
    }

    fn spawn(&self, _name: &'static str, task: BoxFuture<'static, ()>) {
        // Spawned on the current node, so killing the node kills its tasks.
        drop(madsim::task::spawn(task));
    }

    fn seed(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        madsim::rand::thread_rng().fill_bytes(&mut seed);
        seed
    }

    fn unix_time_ms(&self) -> u64 {
        madsim::time::TimeHandle::current()
            .now_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn fs(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.fs.clone())
    }
}

/// A simulated TCP listener.
pub struct SimListener {
    /// The simulated socket.
    inner: madsim::net::TcpListener,
}

impl SimListener {
    /// Bind `addr` on the current node.
    pub async fn bind(addr: SocketAddr) -> io::Result<SimListener> {
        Ok(SimListener {
            inner: madsim::net::TcpListener::bind(addr).await?,
        })
    }
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
