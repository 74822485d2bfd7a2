//! The HTTP port's server (production side of the seam): hyper over tokio, with a cap on
//! connections and header and idle timeouts, so that silent sockets can never keep
//! `/healthz` or `/mcp` out.
//!
//! Why not `axum::serve`: it has no connection cap and no timeouts, and 1,100 silent sockets
//! to it made both ports unreachable for as long as they were held. Here:
//! - every connection must send a request's headers within `EXAI_HTTP_HEADER_TIMEOUT_SECS`,
//!   a new one or a kept-alive one between requests (hyper's header timer);
//! - a request in progress whose socket moves no byte either way for
//!   `EXAI_HTTP_IDLE_TIMEOUT_SECS` is closed (a slow body, a client that stopped reading);
//! - at `EXAI_HTTP_MAX_CONNECTIONS`, a newcomer closes the oldest connection with no request
//!   in progress, and is refused with 503 only while every connection is mid-request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tower_service::Service;

/// The HTTP port's limits (built from the configuration by `operator::http::limits`: the
/// seam imports nothing of the crate).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// `EXAI_HTTP_MAX_CONNECTIONS`.
    pub connections_max: u32,
    /// `EXAI_HTTP_HEADER_TIMEOUT_SECS`.
    pub header_timeout: Duration,
    /// `EXAI_HTTP_IDLE_TIMEOUT_SECS`.
    pub idle_timeout: Duration,
}

/// Serve the HTTP routes on `addr` until `shutdown` completes; returns the bound address.
pub async fn serve_http(
    addr: SocketAddr,
    router: axum::Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let table = Arc::new(Table::new(limits.connections_max));
    let (closing, _) = watch::channel(false);
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    admit(&table, stream, router.clone(), limits, closing.subscribe());
                }
                // Out of descriptors and the like: the connections held go on being served.
                Err(err) => {
                    tracing::warn!(error = %err, "http accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let _ = closing.send(true);
    });
    Ok(bound)
}

/// Count a new connection in (closing the oldest idle one if the cap is reached) and serve it
/// on its own task, or refuse it with 503 when every connection is mid-request.
fn admit(
    table: &Arc<Table>,
    stream: TcpStream,
    router: axum::Router,
    limits: HttpLimits,
    closing: watch::Receiver<bool>,
) {
    match table.admit() {
        Ok(entry) => {
            tokio::spawn(serve_one(stream, router, limits, entry, closing));
        }
        Err(reason) => {
            tracing::info!("http connection refused: {reason}");
            tokio::spawn(refuse(stream, reason));
        }
    }
}

/// A 503 naming the limit, written within a second, then the socket closes.
async fn refuse(mut stream: TcpStream, reason: String) {
    let body = format!("{reason}\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let write = stream.write_all(response.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Serve one connection until it ends, is evicted, idles out or the port shuts down.
async fn serve_one(
    stream: TcpStream,
    router: axum::Router,
    limits: HttpLimits,
    entry: Entry,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let busy = entry.busy.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_progress = Busy::enter(busy.clone());
        let mut router = router.clone();
        async move {
            let response = router
                .call(request)
                .await
                .unwrap_or_else(|never| match never {});
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_progress: in_progress,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let check_every = (limits.idle_timeout / 4).max(Duration::from_millis(250));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            biased;
            _ = connection.as_mut() => break,
            () = entry.evicted.notified() => {
                if entry.busy.load(Ordering::SeqCst) == 0 {
                    break;
                }
                connection.as_mut().graceful_shutdown();
            }
            // Once: a dropped sender would make `changed` ready again at once.
            _ = closing.changed(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(check_every) => {
                if entry.busy.load(Ordering::SeqCst) > 0 && activity.idle() >= limits.idle_timeout {
                    tracing::info!("http connection closed: no byte moved for {} s (EXAI_HTTP_IDLE_TIMEOUT_SECS)", limits.idle_timeout.as_secs());
                    break;
                }
            }
        }
    }
}

/// The open connections, oldest first, against `EXAI_HTTP_MAX_CONNECTIONS`.
struct Table {
    /// Open connections by admission number (so the first is the oldest).
    open: Mutex<Open>,
    /// `EXAI_HTTP_MAX_CONNECTIONS`.
    connections_max: u32,
}

/// The table's contents.
struct Open {
    /// Number for the next connection.
    next_id: u64,
    /// Each open connection's requests in progress and eviction notice.
    by_id: BTreeMap<u64, (Arc<AtomicU32>, Arc<Notify>)>,
}

impl Table {
    fn new(connections_max: u32) -> Table {
        assert!(connections_max > 0);
        Table {
            open: Mutex::new(Open {
                next_id: 0,
                by_id: BTreeMap::new(),
            }),
            connections_max,
        }
    }

    /// Count a connection in, evicting the oldest idle one at the cap. `Err` names the limit.
    fn admit(self: &Arc<Self>) -> Result<Entry, String> {
        let mut open = self.open.lock().expect("http table lock");
        if open.by_id.len() >= self.connections_max as usize {
            let idle = open
                .by_id
                .iter()
                .find(|(_, (busy, _))| busy.load(Ordering::SeqCst) == 0)
                .map(|(id, _)| *id);
            let Some(idle) = idle else {
                return Err(format!(
                    "every connection is in the middle of a request (EXAI_HTTP_MAX_CONNECTIONS={})",
                    self.connections_max
                ));
            };
            let (_, evicted) = open.by_id.remove(&idle).expect("found above");
            evicted.notify_one();
        }
        let id = open.next_id;
        open.next_id += 1;
        let busy = Arc::new(AtomicU32::new(0));
        let evicted = Arc::new(Notify::new());
        open.by_id.insert(id, (busy.clone(), evicted.clone()));
        assert!(open.by_id.len() <= self.connections_max as usize);
        Ok(Entry {
            table: self.clone(),
            id,
            busy,
            evicted,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().expect("http table lock").by_id.len()
    }
}

/// One counted connection; counted out on drop (an evicted one is out already).
struct Entry {
    /// Whose table.
    table: Arc<Table>,
    /// Its admission number.
    id: u64,
    /// Requests in progress on it (a response counts until its body is sent).
    busy: Arc<AtomicU32>,
    /// Fires when a newcomer needs its place.
    evicted: Arc<Notify>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("http table lock");
        open.by_id.remove(&self.id);
    }
}

/// One request in progress, counted until its response body is dropped.
struct Busy(Arc<AtomicU32>);

impl Busy {
    fn enter(busy: Arc<AtomicU32>) -> Busy {
        busy.fetch_add(1, Ordering::SeqCst);
        Busy(busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a request was counted out twice");
    }
}

/// A response body that keeps its request counted as in progress until it is sent.
struct Tracked {
    /// The router's body.
    body: Body,
    /// Dropped with the body.
    _in_progress: Busy,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// When a connection last moved a byte.
struct Activity {
    /// The connection's start.
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now_ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A socket that notes when it last moved a byte.
struct Watched {
    /// The socket.
    inner: TcpStream,
    /// Its activity.
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, bytes);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_goes_and_a_busy_one_stays() {
        let table = Arc::new(Table::new(2));
        let oldest = table.admit().unwrap();
        let _in_request = Busy::enter(oldest.busy.clone());
        let middle = table.admit().unwrap();
        // The oldest is mid-request: the idle one after it makes room.
        let newest = table.admit().unwrap();
        assert_eq!(table.len(), 2);
        assert!(futures_util::FutureExt::now_or_never(middle.evicted.notified()).is_some());
        drop(middle);
        assert_eq!(table.len(), 2);
        // Everyone busy: refused, naming the limit.
        let _also_busy = Busy::enter(newest.busy.clone());
        let err = table.admit().err().unwrap();
        assert!(err.contains("EXAI_HTTP_MAX_CONNECTIONS=2"), "{err}");
        drop((oldest, newest));
        assert_eq!(table.len(), 0);
    }
}
