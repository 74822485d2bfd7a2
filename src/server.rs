//! The accept loop: one task per connection.

use std::io;
use std::sync::Arc;

use crate::lifecycle::Stage;
use crate::rt::Listener;
use crate::state::Shared;

/// Accept connections until the listener fails, each served on its own task.
pub async fn accept_loop(shared: Arc<Shared>, mut listener: Box<dyn Listener>) -> io::Result<()> {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.lifecycle.reached(Stage::Draining) => {
                tracing::info!("stopped accepting connections");
                return Ok(());
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors and similar: log, keep serving those already connected.
            Err(err) if is_transient(&err) => {
                tracing::warn!(error = %err, "accept failed; retrying");
                shared.rt.sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        let shared = shared.clone();
        shared
            .rt
            .clone()
            .spawn("connection", crate::connection::serve(shared, stream, peer));
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || err
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23) // EMFILE, ENFILE
}
