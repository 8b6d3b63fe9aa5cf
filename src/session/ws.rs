//! The session's WebSocket: tungstenite's protocol machine on a [`Stream`], polled from the
//! one task that owns the connection.
//!
//! tokio-tungstenite's `WebSocketStream` lets a socket's reads and writes be polled from
//! different tasks (a split stream), so every poll registers the caller's waker in two
//! shared waker proxies: two reference-counted allocations per connection, and four
//! atomic waker registrations each time the socket is polled for a message (several
//! times per heartbeat), about 4 % of the tester's CPU at 15,000 sessions. A session
//! polls its socket from its own task only, so [`Ws`] keeps that task's waker and nothing
//! else. Otherwise it behaves as `WebSocketStream` does: the same messages, the same
//! errors, the same end of the stream, a message accepted when the socket cannot take it
//! yet and flushed later.
//!
//! It owns the plumbing between tungstenite's blocking-style I/O and the task's polls. It
//! must not know what the messages mean (that is `transport`'s and the states' business).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::ClientHandshake;
use tokio_tungstenite::tungstenite::handshake::HandshakeError;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message, WebSocket};

use super::transport::Stream;

/// A client WebSocket over a [`Stream`], polled by one task.
pub struct Ws {
    /// tungstenite's protocol state, on the socket.
    inner: WebSocket<Bridge>,
    /// The stream has ended (closed, or failed): every later poll yields `None`.
    ended: bool,
    /// No message waits in the write buffer for the socket to take it.
    ready: bool,
}

/// The socket as tungstenite sees it: blocking-style reads and writes that say
/// `WouldBlock` instead of waiting, having registered the task's waker with the runtime.
struct Bridge {
    stream: Stream,
    /// The waker of the task that polls this socket, as of its last poll.
    waker: Waker,
}

impl Bridge {
    fn poll<T>(
        &mut self,
        io: impl FnOnce(Pin<&mut Stream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let mut cx = Context::from_waker(&self.waker);
        match io(Pin::new(&mut self.stream), &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        self.poll(|stream, cx| stream.poll_read(cx, &mut buf))?;
        Ok(buf.filled().len())
    }
}

impl Write for Bridge {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.poll(|stream, cx| stream.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll(|stream, cx| stream.poll_flush(cx))
    }
}

/// The client's opening handshake on `stream`.
pub async fn client(
    request: impl IntoClientRequest,
    stream: Stream,
    config: WebSocketConfig,
) -> Result<Ws, Error> {
    let request = request.into_client_request()?;
    let bridge = Bridge {
        stream,
        waker: Waker::noop().clone(),
    };
    let mut mid = Some(ClientHandshake::start(bridge, request, Some(config))?);
    std::future::poll_fn(|cx| {
        let mut handshake = mid.take().expect("polled after it finished");
        handshake.get_mut().get_mut().waker.clone_from(cx.waker());
        match handshake.handshake() {
            Ok((inner, _response)) => Poll::Ready(Ok(Ws {
                inner,
                ended: false,
                ready: true,
            })),
            Err(HandshakeError::Interrupted(waiting)) => {
                mid = Some(waiting);
                Poll::Pending
            }
            Err(HandshakeError::Failure(e)) => Poll::Ready(Err(e)),
        }
    })
    .await
}

impl Ws {
    /// The task's waker, for the I/O of this poll.
    fn set_waker(&mut self, cx: &Context<'_>) {
        self.inner.get_mut().waker.clone_from(cx.waker());
    }

    /// Sends a close frame (the closing handshake's first half).
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        futures_util::SinkExt::send(self, Message::Close(frame)).await
    }
}

/// `WouldBlock` is not an error here: the task waits to be woken.
fn cvt<T>(result: Result<T, Error>) -> Poll<Result<T, Error>> {
    match result {
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl futures_util::Stream for Ws {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.set_waker(cx);
        match std::task::ready!(cvt(self.inner.read())) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(e) => {
                self.ended = true;
                if matches!(e, Error::AlreadyClosed | Error::ConnectionClosed) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(e)))
                }
            }
        }
    }
}

impl Sink<Message> for Ws {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.ready {
            return Poll::Ready(Ok(()));
        }
        // A message is still in the write buffer: flush it first.
        self.set_waker(cx);
        cvt(self.inner.flush()).map(|r| {
            self.ready = true;
            r
        })
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        // Written now, with the waker of the task's last poll (the one sending).
        match self.inner.write(message) {
            Ok(()) => {
                self.ready = true;
                Ok(())
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                // Accepted and buffered: `poll_ready` and `poll_flush` write it out.
                self.ready = false;
                Ok(())
            }
            Err(e) => {
                self.ready = true;
                Err(e)
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.set_waker(cx);
        cvt(self.inner.flush()).map(|r| {
            self.ready = true;
            match r {
                // The connection has just closed: flushing is done, not failed.
                Err(Error::ConnectionClosed) => Ok(()),
                other => other,
            }
        })
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.ready = true;
        self.set_waker(cx);
        match self.inner.close(None) {
            Ok(()) | Err(Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio::io::DuplexStream;
    use tokio_tungstenite::WebSocketStream;

    /// A client on one end of an in-memory pipe of `capacity` bytes, a server on the other.
    async fn pair(capacity: usize) -> (Ws, WebSocketStream<DuplexStream>) {
        let (near, far) = tokio::io::duplex(capacity);
        let (ws, server) = tokio::join!(
            client(
                "ws://127.0.0.1:1/",
                Stream::Memory(near),
                super::super::client_ws_config()
            ),
            tokio_tungstenite::accept_async(far)
        );
        (ws.unwrap(), server.unwrap())
    }

    #[tokio::test]
    async fn a_message_the_socket_cannot_take_yet_is_sent_when_the_peer_reads() {
        let (mut ws, mut server) = pair(256).await;
        let text = "x".repeat(10_000);
        let exchange = async { tokio::join!(ws.send(Message::text(text.clone())), server.next()) };
        let (sent, received) = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .expect("the send finishes once the peer reads");
        sent.unwrap();
        assert_eq!(received.unwrap().unwrap().into_text().unwrap(), text);
        // The buffer is empty again: the next message goes out at once.
        ws.send(Message::text("after")).await.unwrap();
        assert_eq!(
            server.next().await.unwrap().unwrap().into_text().unwrap(),
            "after"
        );
    }

    #[tokio::test]
    async fn the_stream_ends_after_the_peer_closes_and_stays_ended() {
        let (mut ws, mut server) = pair(4096).await;
        server.send(Message::text("last")).await.unwrap();
        server.close(None).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("last"));
        assert!(matches!(ws.next().await, Some(Ok(Message::Close(None)))));
        // The client answers the close, and the server, having read the answer, hangs up.
        let hang_up = async move {
            let answer = server.next().await.unwrap().unwrap();
            assert_eq!(answer, Message::Close(None));
            assert!(server.next().await.is_none());
        };
        let (end, ()) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(ws.next(), hang_up)
        })
        .await
        .expect("the closing handshake finishes");
        assert!(end.is_none());
        assert!(ws.next().await.is_none());
        assert!(matches!(
            ws.send(Message::text("late")).await,
            Err(Error::AlreadyClosed)
        ));
    }
}
