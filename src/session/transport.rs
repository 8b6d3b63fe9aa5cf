//! The session's socket: connecting (TCP from a source address, TLS, the WebSocket
//! handshake), naming what went wrong when that fails, classifying what the socket yields,
//! and closing it.
//!
//! It owns the error kinds a socket can end with (the socket, [`Stream`], and `Ws`, the
//! WebSocket on it, are `ws`'s).
//! It must not know what the messages mean: no steps, no heartbeats, no script; it only
//! counts what every state counts alike (messages received, invalid JSON, polite closes).

use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::context::{Context, Plan};
use crate::metrics::{Cause, Counter, ErrorKind};
use crate::source;

pub use super::ws::Stream;
pub(super) use super::ws::Ws;

/// Buffer sizes for one client socket. tungstenite's 128 KiB read buffer per socket would
/// cost 1.3 GiB at 10k sessions; mini-program messages are a few hundred bytes, so a read
/// of 1 KiB takes any of them, or several, at once (`ws` reads into a buffer per shard
/// thread, and a connection keeps only what a read leaves over). A larger message is read
/// 1 KiB at a time. `write_buffer_size` 0: every message goes to the socket when sent,
/// which `ws`'s own writing relies on.
pub fn client_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Why the first connect of a run failed: reported to the runner, which stops the run
/// with a usage error rather than hammer a target that cannot work.
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    /// The kind, as counted.
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub detail: String,
}

/// TCP connect (from the source address `from`, when given), TLS when the URL says
/// `wss://`, then the WebSocket handshake.
pub(super) async fn connect(plan: &Plan, from: Option<IpAddr>) -> Result<Ws, ConnectFailure> {
    let tcp = source::connect(plan.addr, from)
        .await
        .map_err(|e| ConnectFailure {
            kind: connect_error_kind(&e),
            detail: match from {
                Some(from) => format!("TCP connect to {} from {from}: {e}", plan.addr),
                None => format!("TCP connect to {}: {e}", plan.addr),
            },
        })?;
    let _ = tcp.set_nodelay(true);
    let stream = match &plan.tls {
        None => Stream::Plain(tcp),
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| describe_handshake_error(tungstenite::Error::Io(e)))?;
            Stream::Tls(Box::new(tls))
        }
    };
    super::ws::client(plan.request.clone(), stream, plan.ws_config)
        .await
        .map_err(describe_handshake_error)
}

/// How a failed TCP connect is counted.
fn connect_error_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        // connect() found no free ephemeral port for this (source, destination) pair.
        std::io::ErrorKind::AddrNotAvailable => ErrorKind::SourcePortsExhausted,
        _ => ErrorKind::ConnectIo,
    }
}

/// How a failed TLS or WebSocket handshake is counted, and what went wrong, for people.
fn describe_handshake_error(e: tungstenite::Error) -> ConnectFailure {
    use tungstenite::Error as E;
    match e {
        E::Io(io) => {
            match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => ConnectFailure {
                    kind: ErrorKind::Tls,
                    detail: format!("TLS handshake failed: {io} ({})", crate::tls::explain(tls)),
                },
                None => ConnectFailure {
                    kind: ErrorKind::ConnectIo,
                    detail: format!("connection failed during the handshake: {io}"),
                },
            }
        }
        E::Tls(tls) => ConnectFailure {
            kind: ErrorKind::Tls,
            detail: format!("TLS: {tls}"),
        },
        E::Http(response) => ConnectFailure {
            kind: ErrorKind::Handshake,
            detail: format!(
                "the server refused the WebSocket upgrade with HTTP {}",
                response.status()
            ),
        },
        other => ConnectFailure {
            kind: ErrorKind::Handshake,
            detail: format!("WebSocket handshake failed: {other}"),
        },
    }
}

/// What arrived on the socket.
pub(super) enum Incoming<T = serde_json::Value> {
    /// A text or binary message that parsed as JSON (into a `T`).
    Json(T),
    /// A data message that is not JSON.
    NotJson,
    /// Ping, pong or a raw frame: handled by tungstenite.
    Control,
    /// The socket is gone.
    Closed(ErrorKind),
}

/// Classifies what the socket yielded.
pub(super) fn incoming(
    ctx: &Context,
    item: Option<Result<Message, tungstenite::Error>>,
) -> Incoming {
    incoming_as(ctx, item, |data| serde_json::from_slice(data))
}

/// Classifies what the socket yielded, reading a data message with `parse`, which must
/// accept exactly the JSON texts `serde_json::from_slice::<serde_json::Value>` accepts.
pub(super) fn incoming_as<T>(
    ctx: &Context,
    item: Option<Result<Message, tungstenite::Error>>,
    parse: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
) -> Incoming<T> {
    use tungstenite::error::ProtocolError;
    use tungstenite::Error as E;
    let data: &[u8] = match &item {
        Some(Ok(Message::Text(text))) => text.as_bytes(),
        Some(Ok(Message::Binary(bytes))) => bytes,
        Some(Ok(Message::Close(_))) => return Incoming::Closed(ErrorKind::ServerClosed),
        Some(Ok(_)) => return Incoming::Control,
        Some(Err(E::ConnectionClosed | E::AlreadyClosed)) => {
            return Incoming::Closed(ErrorKind::ServerClosed)
        }
        Some(Err(E::Protocol(ProtocolError::ResetWithoutClosingHandshake))) | None => {
            return Incoming::Closed(ErrorKind::ServerReset)
        }
        Some(Err(E::Io(e)))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            return Incoming::Closed(ErrorKind::ServerReset)
        }
        Some(Err(e)) => return Incoming::Closed(lost_kind(e)),
    };
    ctx.count(Counter::MessagesReceived);
    match parse(data) {
        Ok(value) => Incoming::Json(value),
        Err(_) => {
            // Counted here, for every state alike: whoever waits decides what else it
            // means (an unmatched message), not whether it is an error.
            ctx.error(ErrorKind::InvalidJson);
            Incoming::NotJson
        }
    }
}

/// How a socket error that is not the peer going away is counted.
fn lost_kind(e: &tungstenite::Error) -> ErrorKind {
    use tungstenite::error::CapacityError;
    use tungstenite::Error as E;
    match e {
        // tungstenite reports a frame over `max_frame_size` and a message over
        // `max_message_size` alike.
        E::Capacity(CapacityError::MessageTooLong { .. }) => ErrorKind::FrameTooLarge,
        E::Utf8(_) => ErrorKind::InvalidUtf8,
        _ => ErrorKind::Socket,
    }
}

/// The reconnect cause of a socket lost with `kind`: the server's doing (a close or a
/// reset) or a broken socket (protocol violations, oversized or non-UTF-8 messages).
pub(super) fn closed_cause(kind: ErrorKind) -> Cause {
    match kind {
        ErrorKind::Socket | ErrorKind::FrameTooLarge | ErrorKind::InvalidUtf8 => Cause::SocketError,
        _ => Cause::ServerClose,
    }
}

/// `onUnload`: close with 1000 and wait briefly for the server's close reply.
pub(super) async fn close(ctx: &Context, ws: &mut Ws) {
    let polite = async {
        ws.close(Some(normal_close())).await?;
        while let Some(item) = ws.next().await {
            item?;
        }
        Ok::<_, tungstenite::Error>(())
    };
    match timeout(Duration::from_secs(2), polite).await {
        Ok(Ok(())) | Ok(Err(tungstenite::Error::ConnectionClosed)) => {
            ctx.count(Counter::SessionsClosed)
        }
        _ => {}
    }
}

/// Discards a socket whose heartbeats failed: a close frame, best effort, without
/// waiting on a peer that has stopped answering.
pub(super) async fn abandon(ws: &mut Ws) {
    let _ = timeout(Duration::from_millis(100), ws.close(Some(normal_close()))).await;
}

/// The close frame a leaving page sends: 1000, no reason.
fn normal_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: Utf8Bytes::from_static(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_counted_by_cause() {
        use std::io::{Error, ErrorKind as Io};
        let kind = |e: Error| connect_error_kind(&e);
        assert_eq!(
            kind(Error::from_raw_os_error(libc::EADDRNOTAVAIL)),
            ErrorKind::SourcePortsExhausted
        );
        assert_eq!(
            kind(Error::from(Io::AddrNotAvailable)),
            ErrorKind::SourcePortsExhausted
        );
        assert_eq!(
            kind(Error::from_raw_os_error(libc::ECONNREFUSED)),
            ErrorKind::ConnectRefused
        );
        assert_eq!(
            kind(Error::from_raw_os_error(libc::ENETUNREACH)),
            ErrorKind::ConnectIo
        );
        assert_eq!(
            ErrorKind::SourcePortsExhausted.name(),
            "source_ports_exhausted"
        );
    }

    #[test]
    fn a_socket_lost_to_bad_data_names_why_and_is_a_socket_error() {
        use tungstenite::error::{CapacityError, ProtocolError};
        let too_long = tungstenite::Error::Capacity(CapacityError::MessageTooLong {
            size: 2 << 20,
            max_size: 1 << 20,
        });
        let utf8 = tungstenite::Error::Utf8("invalid utf-8 sequence".into());
        let garbage = tungstenite::Error::Protocol(ProtocolError::InvalidOpcode(13));
        assert_eq!(lost_kind(&too_long), ErrorKind::FrameTooLarge);
        assert_eq!(lost_kind(&utf8), ErrorKind::InvalidUtf8);
        assert_eq!(lost_kind(&garbage), ErrorKind::Socket);
        for kind in [
            ErrorKind::FrameTooLarge,
            ErrorKind::InvalidUtf8,
            ErrorKind::Socket,
        ] {
            assert_eq!(closed_cause(kind), Cause::SocketError);
        }
        assert_eq!(closed_cause(ErrorKind::ServerReset), Cause::ServerClose);
    }
}
