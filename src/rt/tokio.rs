//! The production side of the runtime seam: real tokio, real TCP, OS entropy.
//!
//! This is the one file in `src/` allowed to touch tokio's clock and spawner, the system
//! clock, OS entropy and the real file system (the seam scan in `tests/seam.rs` skips
//! `src/rt/`).

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::tokio::io::AsyncReadExt;

use super::{
    BoxFuture, BoxStream, Dialer, FileMeta, FileRead, FileSystem, Instant, Listener, Runtime,
};

/// tokio as the daemon's runtime.
pub struct TokioRuntime {
    /// tokio's clock at creation: the epoch of this runtime's [`Instant`]s.
    epoch: ::tokio::time::Instant,
}

impl TokioRuntime {
    /// A runtime whose clock starts now. Must be called inside a tokio runtime.
    pub fn new() -> TokioRuntime {
        TokioRuntime {
            epoch: ::tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        Instant::from_epoch(self.epoch.elapsed())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let at = self.epoch + deadline.since_epoch();
        Box::pin(::tokio::time::sleep_until(at))
    }

    fn spawn(&self, _name: &'static str, task: BoxFuture<'static, ()>) {
        drop(::tokio::spawn(task));
    }

    fn seed(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        // Without entropy no secret token can be trusted: refuse to run rather than degrade.
        getrandom::fill(&mut seed).expect("the OS must provide entropy for tokens");
        seed
    }

    fn unix_time_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }

    fn fs(&self) -> Arc<dyn FileSystem> {
        Arc::new(TokioFs)
    }
}

/// The real file system, through `tokio::fs` (its calls run on tokio's blocking pool, so a
/// slow disk does not stall the call's task).
pub struct TokioFs;

impl FileSystem for TokioFs {
    fn canonicalize<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<PathBuf>> {
        Box::pin(::tokio::fs::canonicalize(path))
    }

    fn metadata<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<FileMeta>> {
        Box::pin(async move {
            let meta = ::tokio::fs::metadata(path).await?;
            Ok(FileMeta {
                is_dir: meta.is_dir(),
                len: meta.len(),
            })
        })
    }

    fn read_dir<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<OsString>>> {
        Box::pin(async move {
            let mut entries = ::tokio::fs::read_dir(path).await?;
            let mut names = Vec::new();
            while let Some(entry) = entries.next_entry().await? {
                names.push(entry.file_name());
            }
            Ok(names)
        })
    }

    fn read<'a>(&'a self, path: &'a Path, bytes_max: u64) -> BoxFuture<'a, io::Result<FileRead>> {
        Box::pin(async move {
            let file = ::tokio::fs::File::open(path).await?;
            let mut bytes = Vec::new();
            // One byte past the cap tells "exactly the cap" from "more than the cap".
            let probe = bytes_max.saturating_add(1);
            file.take(probe).read_to_end(&mut bytes).await?;
            let complete = bytes.len() as u64 <= bytes_max;
            bytes.truncate(usize::try_from(bytes_max).unwrap_or(usize::MAX));
            Ok(FileRead { bytes, complete })
        })
    }
}

/// A real TCP listener.
pub struct TokioListener {
    /// The bound socket.
    inner: ::tokio::net::TcpListener,
}

impl TokioListener {
    /// Bind `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> io::Result<TokioListener> {
        let inner = ::tokio::net::TcpListener::bind(addr).await?;
        Ok(TokioListener { inner })
    }
}

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            // Frames are small and latency matters more than packing: no Nagle delay.
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Dials `host:port` over real TCP (the MCP bridge's way to the daemon).
pub struct TokioDialer {
    /// The daemon's host (a name or an address).
    host: String,
    /// The daemon's port.
    port: u16,
}

impl TokioDialer {
    /// A dialer for `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> TokioDialer {
        TokioDialer {
            host: host.into(),
            port,
        }
    }
}

impl Dialer for TokioDialer {
    fn dial(&self) -> BoxFuture<'static, io::Result<BoxStream>> {
        let (host, port) = (self.host.clone(), self.port);
        Box::pin(async move {
            let stream = ::tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            // Frames are small and latency matters more than packing: no Nagle delay.
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn peer(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub use super::http::{HttpLimits, serve_http};

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_real_file_system_reads_a_bounded_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "0123456789").unwrap();
        let fs = TokioFs;
        let read = fs.read(&path, 4).await.unwrap();
        assert_eq!(
            (read.bytes.as_slice(), read.complete),
            (&b"0123"[..], false)
        );
        let read = fs.read(&path, 10).await.unwrap();
        assert_eq!((read.bytes.len(), read.complete), (10, true));
        let meta = fs.metadata(dir.path()).await.unwrap();
        assert!(meta.is_dir);
        assert_eq!(fs.read_dir(dir.path()).await.unwrap(), ["f.txt"]);
        let canonical = fs.canonicalize(&dir.path().join("./f.txt")).await.unwrap();
        assert!(canonical.is_absolute() && canonical.ends_with("f.txt"));
    }
}
