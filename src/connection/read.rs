//! Reading a connection: what one WebSocket read produced, reduced to what the protocol
//! cares about.
//!
//! Why apart: the hello stage and the main loop both read, and neither should know
//! tungstenite's message kinds or its error types.

use futures_util::StreamExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};

use crate::rt::BoxStream;

/// The reading half of a connection.
pub type Source = futures_util::stream::SplitStream<WebSocketStream<BoxStream>>;

/// What one read produced.
pub enum Data {
    /// A text frame.
    Text(String),
    /// A binary frame (not part of the protocol).
    Binary,
    /// A frame over `EXAI_WS_MAX_BYTES`.
    TooBig,
    /// A WebSocket ping or pong: the peer is alive, nothing to handle.
    Heartbeat,
    /// The peer closed or the socket failed.
    Closed,
}

pub async fn next_data(source: &mut Source) -> Data {
    loop {
        match source.next().await {
            None => return Data::Closed,
            Some(Ok(Message::Text(text))) => return Data::Text(text.to_string()),
            Some(Ok(Message::Binary(_))) => return Data::Binary,
            Some(Ok(Message::Close(_))) => return Data::Closed,
            // Pings are answered by tungstenite itself; both prove the peer is alive.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Data::Heartbeat,
            Some(Ok(Message::Frame(_))) => continue,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                return Data::TooBig;
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "websocket read failed");
                return Data::Closed;
            }
        }
    }
}
