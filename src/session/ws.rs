//! The session's WebSocket: tungstenite's protocol machine on a [`Stream`], polled from the
//! one task that owns the connection, with a fast path for the messages a session mostly
//! receives.
//!
//! tokio-tungstenite's `WebSocketStream` lets a socket's reads and writes be polled from
//! different tasks (a split stream), so every poll registers the caller's waker in two
//! shared waker proxies: two reference-counted allocations per connection, and four
//! atomic waker registrations each time the socket is polled for a message (several
//! times per heartbeat), about 2 % of the tester's CPU at 15,000 sessions. A session
//! polls its socket from its own task only, so [`Ws`] keeps that task's waker and nothing
//! else.
//!
//! Reading, tungstenite zeroes its free buffer before every read, shares the buffer with
//! each message it cuts out of it (one more allocation per connection, touched per
//! message) and takes every frame through its general machinery: together about 4 % of
//! the tester's CPU. [`Ws`] reads the common case itself: a whole (final, unfragmented)
//! text or binary frame, unmasked, without reserved bits, within the size limits, and for
//! text valid UTF-8, each copied out of one plain buffer. tungstenite would return exactly
//! that message. That buffer is the thread's (one per shard), not the connection's: a
//! connection keeps bytes of its own only when a read ends inside a message, or holds more
//! than one, so an idle connection holds no read buffer (tungstenite's was 1 KiB per
//! session, touched). Anything else (a ping, a close, a fragment, a frame it would reject, the
//! end of the stream) hands the connection, with the bytes read ahead, over to tungstenite
//! for good, which then says what it always said. Writing, likewise: while the fast path
//! reads, [`Ws`] frames and writes text and binary messages of up to 1 KiB itself, as
//! tungstenite would (about 2 %).
//!
//! Otherwise it behaves as `WebSocketStream` does: the same messages, the same errors,
//! the same end of the stream, a message accepted when the socket cannot take it yet and
//! flushed later. A test feeds both the same bytes, cut up in many ways, and compares.
//!
//! It owns the socket type ([`Stream`]) and the plumbing between tungstenite's
//! blocking-style I/O and the task's polls. It must not know what the messages mean, nor
//! how the socket was opened (that is `transport`'s and the states' business).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::ClientHandshake;
use tokio_tungstenite::tungstenite::handshake::HandshakeError;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message, Utf8Bytes, WebSocket};

/// A client socket: plain TCP, or TLS boxed so that the rustls connection state (over a
/// kilobyte) is paid for only by `wss://` sessions, not by every session's future.
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// An in-memory pipe, for tests of the session on tokio's paused clock.
    #[cfg(test)]
    Memory(tokio::io::DuplexStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(test)]
            Stream::Memory(s) => {
                tests::SOCKET_READS.with(|n| n.set(n.get() + 1));
                Pin::new(s).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A client WebSocket over a [`Stream`], polled by one task.
pub struct Ws {
    /// tungstenite's protocol state, on the socket. Taken out only while it is replaced
    /// when the connection is handed over to it.
    inner: Option<WebSocket<Bridge>>,
    /// The stream has ended (closed, or failed): every later poll yields `None`.
    ended: bool,
    /// No message waits in the write buffer for the socket to take it.
    ready: bool,
    /// The largest message the fast path reads (the frame and message limits).
    max: usize,
}

/// The socket as tungstenite sees it: blocking-style reads and writes that say
/// `WouldBlock` instead of waiting, having registered the task's waker with the runtime.
/// Bytes read ahead of tungstenite (after the handshake's response, or before a handover)
/// are read from `ahead` first.
struct Bridge {
    stream: Stream,
    /// The waker of the task that polls this socket, as of its last poll.
    waker: Waker,
    /// Bytes read from the socket and not yet taken: by the fast path while it reads,
    /// then by tungstenite. From `start` on. Empty, and without an allocation, while the
    /// fast path has taken everything read (the fast path reads into its thread's buffer).
    ahead: Vec<u8>,
    start: usize,
    /// Whether the fast path reads (else tungstenite reads everything).
    fast: bool,
    /// While the handshake runs: how far the end of the response's header has been
    /// matched (see [`HeaderEnd`]); `None` once it is found, and after the handshake.
    header: Option<HeaderEnd>,
    /// The last write took everything it was given: tungstenite's write buffer is empty.
    written: bool,
    /// The rest of a frame the fast path could not write at once: written before
    /// anything else, and flushed by every flush.
    unsent: Vec<u8>,
    /// tungstenite has read bytes from `ahead`.
    lent: bool,
    /// The configured read buffer's size: the size of every read from the socket after
    /// the handshake (the fast path's, and tungstenite's after a handover).
    read_size: usize,
}

/// Finds the end of an HTTP header (an empty line, `\r\n` or `\n`, after a line end):
/// where tungstenite's response parser ends it, so that the handshake is given exactly
/// the header and the frames after it stay in [`Bridge::ahead`].
#[derive(Debug, Clone, Copy, Default)]
struct HeaderEnd {
    /// 0: nothing; 1: after `\n`; 2: after `\n\r`.
    state: u8,
}

impl HeaderEnd {
    /// Where the header ends in `bytes` (the index after it), if it does.
    fn find(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            self.state = match (self.state, b) {
                (1 | 2, b'\n') => return Some(i + 1),
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
        }
        None
    }
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

    /// Reads from the socket into the free part of `ahead` (not zeroed first: the
    /// socket writes it). `Ok(0)` is the end of the stream.
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.ahead)
    }

    /// Drops the bytes before `start`, so that the free part is at the end, and makes
    /// room for `need` bytes from `start` on.
    fn make_room(&mut self, need: usize) {
        if self.start > 0 {
            self.ahead.drain(..self.start);
            self.start = 0;
        }
        if self.ahead.capacity() < need {
            self.ahead.reserve(need - self.ahead.len());
        }
    }

    /// Reads from the socket into the thread's [`SCRATCH`] buffer, a read's worth, and
    /// gives what was read to `got` (nothing: the end of the stream), which keeps what it
    /// does not take.
    fn read_scratch<T>(
        &mut self,
        cx: &mut Context<'_>,
        got: impl FnOnce(&mut Bridge, &[u8]) -> T,
    ) -> Poll<io::Result<T>> {
        let size = self.read_size;
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < size {
                scratch.resize(size, 0);
            }
            let mut buf = ReadBuf::new(&mut scratch[..size]);
            std::task::ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
            Poll::Ready(Ok(got(self, buf.filled())))
        })
    }

    /// `n` bytes of `ahead` are taken; once all are, the buffer is let go, so that an
    /// idle connection holds none.
    fn took(&mut self, n: usize) {
        self.start += n;
        if self.start == self.ahead.len() {
            self.ahead = Vec::new();
            self.start = 0;
        }
    }

    /// Keeps `bytes`, read past what was taken, for the next reads.
    fn keep(&mut self, bytes: &[u8]) {
        if self.start == self.ahead.len() {
            self.ahead.clear();
            self.start = 0;
        }
        self.ahead.extend_from_slice(bytes);
    }
}

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.start < self.ahead.len() {
            let ahead = &self.ahead[self.start..];
            let n = ahead.len().min(buf.len());
            buf[..n].copy_from_slice(&ahead[..n]);
            self.took(n);
            self.lent = true;
            return Ok(n);
        }
        if self.header.is_none() && !buf.is_empty() && buf.len() < self.read_size {
            // tungstenite asks for less than a read's worth (the handshake's instance,
            // kept after a handover, asks for 14 bytes at a time): the socket is read a
            // whole read's worth into the thread's buffer, and the rest kept in `ahead`.
            let waker = self.waker.clone();
            let read = self.read_scratch(&mut Context::from_waker(&waker), |bridge, got| {
                let n = got.len().min(buf.len());
                buf[..n].copy_from_slice(&got[..n]);
                bridge.keep(&got[n..]);
                n
            });
            return match read {
                Poll::Ready(result) => result,
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let mut read = ReadBuf::new(buf);
        self.poll(|stream, cx| stream.poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if let Some(end) = self.header.as_mut().and_then(|h| h.find(&buf[..n])) {
            // The response's header ends here: what follows is frames, kept for later.
            self.header = None;
            self.ahead.extend_from_slice(&buf[end..n]);
            return Ok(end);
        }
        Ok(n)
    }
}

impl Bridge {
    /// Writes what the fast path left unsent.
    fn write_unsent(&mut self) -> io::Result<()> {
        while !self.unsent.is_empty() {
            let mut cx = Context::from_waker(&self.waker);
            match Pin::new(&mut self.stream).poll_write(&mut cx, &self.unsent) {
                Poll::Ready(Ok(0)) => return Err(write_zero()),
                Poll::Ready(Ok(n)) => drop(self.unsent.drain(..n)),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
            }
        }
        Ok(())
    }
}

impl Write for Bridge {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // tungstenite hands over its whole write buffer each time.
        self.written = false;
        self.write_unsent()?;
        let written = self.poll(|stream, cx| stream.poll_write(cx, buf));
        self.written = written.as_ref().is_ok_and(|&n| n == buf.len());
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_unsent()?;
        self.poll(|stream, cx| stream.poll_flush(cx))
    }
}

/// The longest payload the fast path writes (longer ones are tungstenite's to write).
const FAST_WRITE: usize = 1024;

/// A text or binary message as one masked, final frame into `out`, as tungstenite frames
/// it (with a random mask from the same source): the frame's length.
fn frame(opcode: u8, payload: &[u8], out: &mut [u8; FAST_WRITE + 8]) -> usize {
    out[0] = 0x80 | opcode; // FIN
    let mut at = 2;
    let len = payload.len().min(FAST_WRITE);
    if len < 126 {
        out[1] = 0x80 | len as u8; // MASK, and the length
    } else {
        out[1] = 0x80 | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        at = 4;
    }
    let mask: [u8; 4] = rand::random();
    out[at..at + 4].copy_from_slice(&mask);
    at += 4;
    for (i, (o, p)) in out[at..at + len].iter_mut().zip(payload).enumerate() {
        *o = p ^ mask[i & 3];
    }
    at + len
}

/// What tungstenite says when the socket takes nothing of a write.
fn write_zero() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "Connection reset while sending",
    )
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
        ahead: Vec::new(),
        start: 0,
        fast: false,
        header: Some(HeaderEnd::default()),
        written: true,
        lent: false,
        unsent: Vec::new(),
        read_size: config.read_buffer_size.max(1),
    };
    // While the fast path reads, tungstenite needs no read buffer of its own.
    let writing = config.read_buffer_size(0);
    let mut mid = Some(ClientHandshake::start(bridge, request, Some(writing))?);
    let mut inner = std::future::poll_fn(|cx| {
        let mut handshake = mid.take().expect("polled after it finished");
        handshake.get_mut().get_mut().waker.clone_from(cx.waker());
        match handshake.handshake() {
            Ok((inner, _response)) => Poll::Ready(Ok(inner)),
            Err(HandshakeError::Interrupted(waiting)) => {
                mid = Some(waiting);
                Poll::Pending
            }
            Err(HandshakeError::Failure(e)) => Poll::Ready(Err(e)),
        }
    })
    .await?;
    let bridge = inner.get_mut();
    // Fast only when tungstenite was given exactly the response's header, so that it
    // holds no frame bytes of its own; else it reads, with its own buffer.
    // And only when tungstenite writes every message at once (`write_buffer_size` 0, as
    // `client_ws_config` sets it): a frame it kept back would go out after the fast
    // path's, or be lost by a handover that replaces it.
    let exact = bridge.header.is_none() && !bridge.lent && config.write_buffer_size == 0;
    bridge.header = None;
    let limit = |max: Option<usize>| max.unwrap_or(usize::MAX);
    let mut ws = Ws {
        inner: Some(inner),
        ended: false,
        ready: true,
        max: limit(config.max_frame_size).min(limit(config.max_message_size)),
    };
    if exact {
        ws.bridge().fast = true;
    } else {
        ws.hand_over();
    }
    Ok(ws)
}

/// What the fast path takes from the bytes at the start of a buffer.
enum Taken {
    /// A whole message, as tungstenite would return it, and the bytes its frame took.
    Message(Message, usize),
    /// Maybe one, once this many bytes are there.
    Short(usize),
    /// Not the common case (or text that is not UTF-8): tungstenite's to read, and to
    /// name the error.
    Other,
}

/// The frame at the start of `bytes`, for the fast path: a final text or binary frame
/// with no reserved bits, unmasked (as a server's must be), with a 7- or 16-bit length of
/// at most `max`, and for text valid UTF-8. tungstenite returns such a frame as exactly
/// this message.
fn take(bytes: &[u8], max: usize) -> Taken {
    let [first, second, ..] = *bytes else {
        return Taken::Short(2);
    };
    let text = match first {
        0x81 => true,  // FIN, text
        0x82 => false, // FIN, binary
        _ => return Taken::Other,
    };
    if second & 0x80 != 0 {
        return Taken::Other; // masked
    }
    let (header, len) = match second & 0x7f {
        126 => match *bytes {
            [_, _, high, low, ..] => (4, usize::from(u16::from_be_bytes([high, low]))),
            _ => return Taken::Short(4),
        },
        127 => return Taken::Other,
        len => (2, usize::from(len)),
    };
    if len > max {
        return Taken::Other;
    }
    let Some(payload) = bytes.get(header..header + len) else {
        return Taken::Short(header + len);
    };
    let message = if text {
        match std::str::from_utf8(payload) {
            Ok(text) => Message::Text(Utf8Bytes::from(text.to_owned())),
            Err(_) => return Taken::Other,
        }
    } else {
        Message::Binary(Bytes::copy_from_slice(payload))
    };
    Taken::Message(message, header + len)
}

thread_local! {
    /// Where the fast path reads when a connection has nothing kept from an earlier
    /// read: one buffer per thread instead of one per connection, so that an idle
    /// connection holds none (1 KiB per session at the default size). Borrowed only
    /// within one read, never across an await.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What the fast path got from the socket.
enum Fast {
    Message(Message),
    Pending,
    Failed(io::Error),
    /// tungstenite's to read from here on.
    HandOver,
}

impl Ws {
    fn ws(&mut self) -> &mut WebSocket<Bridge> {
        self.inner
            .as_mut()
            .expect("tungstenite is back after a handover")
    }

    fn bridge(&mut self) -> &mut Bridge {
        self.ws().get_mut()
    }

    /// The task's waker, for the I/O of this poll.
    fn set_waker(&mut self, cx: &Context<'_>) {
        self.bridge().waker.clone_from(cx.waker());
    }

    /// Sends a close frame (the closing handshake's first half; tungstenite, which sends
    /// it, reads the rest).
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        futures_util::SinkExt::send(self, Message::Close(frame)).await
    }

    /// The next message by the fast path. With nothing kept from an earlier read, it
    /// reads into its thread's [`SCRATCH`] buffer, and keeps in `ahead` only what is left
    /// of that read after the message it holds (the start of another message, or more).
    fn read_fast(&mut self, cx: &mut Context<'_>) -> Fast {
        let max = self.max;
        let bridge = self.bridge();
        let read_size = bridge.read_size;
        loop {
            if bridge.start == bridge.ahead.len() {
                let read = bridge.read_scratch(cx, |bridge, read| {
                    if read.is_empty() {
                        // The end of the stream: tungstenite says what that means here.
                        return Some(Fast::HandOver);
                    }
                    if let Taken::Message(message, used) = take(read, max) {
                        bridge.keep(&read[used..]);
                        return Some(Fast::Message(message));
                    }
                    // Not a whole message: kept, and looked at again below.
                    bridge.keep(read);
                    None
                });
                match read {
                    Poll::Pending => return Fast::Pending,
                    Poll::Ready(Err(e)) => return Fast::Failed(e),
                    Poll::Ready(Ok(Some(fast))) => return fast,
                    Poll::Ready(Ok(None)) => continue,
                }
            }
            let need = match take(&bridge.ahead[bridge.start..], max) {
                Taken::Message(message, used) => {
                    bridge.took(used);
                    return Fast::Message(message);
                }
                Taken::Short(need) => need,
                Taken::Other => return Fast::HandOver,
            };
            // Room for the frame, and for a read of the usual size.
            let room = need.max(read_size);
            if bridge.ahead.capacity() - bridge.start < room {
                bridge.make_room(room);
            }
            match bridge.read_ahead(cx) {
                Poll::Pending => return Fast::Pending,
                Poll::Ready(Err(e)) => return Fast::Failed(e),
                // The end of the stream: tungstenite says what that means here.
                Poll::Ready(Ok(0)) => return Fast::HandOver,
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// Writes a text or binary message itself, while nothing else waits to be written
    /// (`None` otherwise, and for other messages): tungstenite would write the same frame
    /// at once too, and keep what the socket did not take, as this does in `unsent`.
    fn write_fast(&mut self, message: &Message) -> Option<io::Result<()>> {
        let (opcode, payload): (u8, &[u8]) = match message {
            Message::Text(text) => (0x1, text.as_bytes()),
            Message::Binary(bytes) => (0x2, bytes),
            _ => return None,
        };
        let bridge = self.bridge();
        if !bridge.fast
            || !bridge.written
            || !bridge.unsent.is_empty()
            || payload.len() > FAST_WRITE
        {
            return None;
        }
        let mut out = [0u8; FAST_WRITE + 8];
        let len = frame(opcode, payload, &mut out);
        #[cfg(test)]
        tests::FAST_WRITES.with(|n| n.set(n.get() + 1));
        let (written, result) = match bridge.poll(|stream, cx| stream.poll_write(cx, &out[..len])) {
            Ok(n) if n == len => return Some(Ok(())),
            Ok(0) => (0, Err(write_zero())),
            // The rest is written by the next flush.
            Ok(n) => (n, Err(io::ErrorKind::WouldBlock.into())),
            Err(e) => (0, Err(e)),
        };
        bridge.unsent.extend_from_slice(&out[written..len]);
        Some(result)
    }

    /// From here on tungstenite reads, starting with the bytes read ahead. When its write
    /// buffer is empty it is replaced by one with a read buffer of the configured size
    /// (the one from the handshake has none), which it then lacks nothing of: until now it
    /// has only written text and binary messages. Else it is kept: it asks for 14 bytes at
    /// a time, and [`Bridge`] reads the socket a whole read's worth at a time for it.
    fn hand_over(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        let bridge = inner.get_mut();
        let was_fast = std::mem::replace(&mut bridge.fast, false);
        let read_size = bridge.read_size;
        self.inner = Some(if was_fast && bridge.written {
            let config = inner.get_config().read_buffer_size(read_size);
            WebSocket::from_raw_socket(inner.into_inner(), Role::Client, Some(config))
        } else {
            inner
        });
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
        if self.bridge().fast {
            match self.read_fast(cx) {
                Fast::Message(message) => return Poll::Ready(Some(Ok(message))),
                Fast::Pending => return Poll::Pending,
                Fast::Failed(e) => {
                    // What tungstenite returns for a failed read while the connection is
                    // open.
                    self.ended = true;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
                Fast::HandOver => self.hand_over(),
            }
        }
        match std::task::ready!(cvt(self.ws().read())) {
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
        cvt(self.ws().flush()).map(|r| {
            self.ready = true;
            r
        })
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        if !matches!(message, Message::Text(_) | Message::Binary(_)) {
            // A close, ping or pong changes or queues tungstenite's state: the instance
            // that keeps it must be the one that reads from here on.
            self.hand_over();
        }
        // Written now, with the waker of the task's last poll (the one sending).
        let written = match self.write_fast(&message) {
            Some(result) => result.map_err(Error::Io),
            None => self.ws().write(message),
        };
        match written {
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
        cvt(self.ws().flush()).map(|r| {
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
        self.hand_over();
        self.set_waker(cx);
        match self.ws().close(None) {
            Ok(()) | Err(Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Messages the fast path framed and wrote, on this thread.
        pub(super) static FAST_WRITES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// Reads from in-memory sockets, on this thread.
        pub(super) static SOCKET_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
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
    async fn messages_arrive_whole_and_in_order_however_little_the_socket_takes() {
        for capacity in [16, 64 * 1024] {
            let (mut ws, mut server) = pair(capacity).await;
            let mut messages: Vec<Message> = [0, 1, 125, 126, 1024, 1025, 10_000, 3]
                .into_iter()
                .map(|n| Message::text("x".repeat(n)))
                .collect();
            messages.push(Message::binary(vec![0u8, 255, 7]));
            FAST_WRITES.with(|n| n.set(0));
            let send = async {
                for message in &messages {
                    ws.send(message.clone()).await.unwrap();
                }
            };
            let receive = async {
                let mut got = Vec::new();
                while got.len() < messages.len() {
                    got.push(server.next().await.unwrap().unwrap());
                }
                got
            };
            let ((), got) = tokio::time::timeout(Duration::from_secs(5), async {
                tokio::join!(send, receive)
            })
            .await
            .expect("every message arrives");
            assert_eq!(got, messages, "socket of {capacity} bytes");
            // Up to 1 KiB framed here (through a 16-byte socket, a bit at a time), the
            // two longer ones by tungstenite, in between.
            assert_eq!(
                FAST_WRITES.with(|n| n.get()),
                7,
                "socket of {capacity} bytes"
            );
        }
    }

    #[tokio::test]
    async fn a_close_of_its_own_ends_the_stream_as_tokio_tungstenites_does() {
        let close = Some(CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: Utf8Bytes::from_static("bye"),
        });
        let mut seen = Vec::new();
        for ours in [true, false] {
            let (near, far) = tokio::io::duplex(4096);
            let config = super::super::client_ws_config();
            let server = async {
                let mut ws = tokio_tungstenite::accept_async(far).await.unwrap();
                ws.send(Message::text("hello")).await.unwrap();
                let mut got = Vec::new();
                while let Some(Ok(message)) = ws.next().await {
                    got.push(format!("{message:?}"));
                }
                got
            };
            let client = async {
                let mut out = Vec::new();
                if ours {
                    let mut ws = client("ws://127.0.0.1:1/", Stream::Memory(near), config)
                        .await
                        .unwrap();
                    out.push(format!("{:?}", ws.next().await));
                    ws.close(close.clone()).await.unwrap();
                    while let Some(item) = ws.next().await {
                        out.push(format!("{item:?}"));
                    }
                } else {
                    let mut ws = reference(near).await;
                    out.push(format!("{:?}", ws.next().await));
                    ws.close(close.clone()).await.unwrap();
                    while let Some(item) = ws.next().await {
                        out.push(format!("{item:?}"));
                    }
                }
                out
            };
            let (client, server) = tokio::time::timeout(Duration::from_secs(5), async {
                tokio::join!(client, server)
            })
            .await
            .expect("the closing handshake finishes");
            seen.push((client, server));
        }
        assert_eq!(seen[0], seen[1]);
        // The message, then the server's answer to the close; the server saw the close.
        assert_eq!(seen[0].0.len(), 2, "{:?}", seen[0]);
        assert_eq!(seen[0].1.len(), 1, "{:?}", seen[0]);
    }

    #[tokio::test]
    async fn after_a_handover_behind_a_stalled_send_the_socket_is_still_read_in_whole_reads() {
        // A send the socket cannot take (20,000 bytes into 4 KiB) stays in tungstenite's
        // buffer, so a handover (the server's ping) keeps the handshake's instance, which
        // asks for 14 bytes at a time.
        let (mut ws, mut server) = pair(4096).await;
        let big = "x".repeat(20_000);
        ws.feed(Message::text(big.clone())).await.unwrap();
        let long = "y".repeat(3000);
        server
            .send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        server.send(Message::text(long.clone())).await.unwrap();
        SOCKET_READS.with(|n| n.set(0));
        assert_eq!(
            next(&mut ws).await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"p"))
        );
        assert_eq!(next(&mut ws).await.unwrap().unwrap(), Message::text(long));
        // About 3,010 bytes in reads of 1 KiB (not 215 of 14 bytes), and a few that find
        // the socket empty.
        let reads = SOCKET_READS.with(|n| n.get());
        assert!(reads <= 8, "{reads} reads");
        // The stalled send goes out whole once the server reads, then the answer to the
        // ping.
        let (flushed, first) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(ws.flush(), server.next())
        })
        .await
        .expect("the send finishes once the server reads");
        flushed.unwrap();
        assert_eq!(first.unwrap().unwrap(), Message::text(big));
        assert_eq!(
            server.next().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"p"))
        );
    }

    #[tokio::test]
    async fn with_a_write_buffer_messages_stay_in_order() {
        // tungstenite keeps messages back until 4 KiB are buffered: the fast path must not
        // write past them.
        let (near, far) = tokio::io::duplex(64 * 1024);
        let config = super::super::client_ws_config().write_buffer_size(4096);
        let (ws, server) = tokio::join!(
            client("ws://127.0.0.1:1/", Stream::Memory(near), config),
            tokio_tungstenite::accept_async(far)
        );
        let (mut ws, mut server) = (ws.unwrap(), server.unwrap());
        let messages = [Message::text("a".repeat(2000)), Message::text("small")];
        for message in &messages {
            ws.feed(message.clone()).await.unwrap();
        }
        ws.close(None).await.unwrap();
        let mut got = Vec::new();
        while let Some(Ok(message)) = server.next().await {
            got.push(message);
        }
        // Compared by length: a failure shows which came first, or went missing.
        let lengths: Vec<usize> = got.iter().map(Message::len).collect();
        assert_eq!(lengths, [2000, 5, 0]);
        assert_eq!(got[..2], messages);
        assert_eq!(got[2], Message::Close(None));
    }

    /// tokio-tungstenite's client on `near`, with the same configuration: what [`Ws`] is
    /// compared with.
    async fn reference(near: DuplexStream) -> WebSocketStream<DuplexStream> {
        let config = super::super::client_ws_config();
        let (ws, _) =
            tokio_tungstenite::client_async_with_config("ws://127.0.0.1:1/", near, Some(config))
                .await
                .unwrap();
        ws
    }

    /// The next item, which must come within 5 s.
    async fn next(ws: &mut Ws) -> Option<Result<Message, Error>> {
        tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame sent is read")
    }

    #[tokio::test]
    async fn the_stream_ends_after_the_peer_closes_and_stays_ended() {
        let (mut ws, mut server) = pair(4096).await;
        server.send(Message::text("last")).await.unwrap();
        server.close(None).await.unwrap();
        // Both frames arrive in one read: the close is kept past the message.
        assert_eq!(next(&mut ws).await.unwrap().unwrap(), Message::text("last"));
        assert!(matches!(
            next(&mut ws).await,
            Some(Ok(Message::Close(None)))
        ));
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

    /// A server that answers the handshake by hand, writes `frames` raw, `chunk` bytes at
    /// a time (the first chunk in the same write as its response when `with_response`,
    /// else after it), stops writing, and reads what the client sends until the client
    /// hangs up.
    async fn raw_server(mut io: DuplexStream, frames: Vec<u8>, chunk: usize, with_response: bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = Vec::new();
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 512];
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client hung up during its handshake");
            request.extend_from_slice(&buf[..n]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|l| {
                l.strip_prefix("sec-websocket-key: ")
                    .or(l.strip_prefix("Sec-WebSocket-Key: "))
            })
            .unwrap();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        let first = if with_response {
            chunk.min(frames.len())
        } else {
            0
        };
        out.extend_from_slice(&frames[..first]);
        // A client that gave up on the stream (an error ends it) may hang up early.
        if io.write_all(&out).await.is_err() {
            return;
        }
        if !with_response {
            // Until the frames come, the client can only finish its handshake and wait
            // for them: they reach it in a read of their own.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for piece in frames[first..].chunks(chunk) {
            tokio::task::yield_now().await;
            if io.write_all(piece).await.is_err() {
                return;
            }
        }
        let _ = io.shutdown().await;
        let mut sink = Vec::new();
        let _ = io.read_to_end(&mut sink).await;
    }

    /// Everything a client yields for `frames` cut into `chunk`s, until the stream ends:
    /// tokio-tungstenite's `WebSocketStream`, or [`Ws`] (then also how many messages the
    /// fast path read).
    async fn yields(
        frames: &[u8],
        (chunk, with_response): (usize, bool),
        ours: bool,
    ) -> (Vec<String>, usize) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let server = raw_server(far, frames.to_vec(), chunk, with_response);
        let config = super::super::client_ws_config();
        let client = async {
            let mut out = Vec::new();
            let mut fast = 0;
            let show = |item: Option<Result<Message, Error>>| match item {
                None => "end".to_string(),
                Some(Ok(m)) => format!("{m:?}"),
                Some(Err(e)) => format!("error: {e}"),
            };
            if ours {
                let mut ws = client("ws://127.0.0.1:1/", Stream::Memory(near), config)
                    .await
                    .unwrap();
                loop {
                    let item = ws.next().await;
                    let done = item.is_none();
                    if ws.bridge().fast {
                        fast += 1;
                    }
                    out.push(show(item));
                    if done || out.len() > 50 {
                        break;
                    }
                }
            } else {
                let mut ws = reference(near).await;
                loop {
                    let item = ws.next().await;
                    let done = item.is_none();
                    out.push(show(item));
                    if done || out.len() > 50 {
                        break;
                    }
                }
            }
            (out, fast)
        };
        let (result, ()) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(client, server)
        })
        .await
        .expect("the exchange finishes");
        result
    }

    #[tokio::test]
    async fn the_fast_path_yields_what_tungstenite_yields_for_any_bytes_cut_anywhere() {
        let text = |t: &str| {
            let mut f = vec![0x81, t.len() as u8];
            f.extend_from_slice(t.as_bytes());
            f
        };
        let long = "y".repeat(300);
        let mut long_frame = vec![0x81, 126, 1, 44];
        long_frame.extend_from_slice(long.as_bytes());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("text", text("hello")),
            (
                "two texts and a binary",
                [text("a"), text("{\"b\":1}"), vec![0x82, 3, 0, 255, 7]].concat(),
            ),
            ("empty text and binary", vec![0x81, 0, 0x82, 0]),
            ("16-bit length", long_frame.clone()),
            (
                "16-bit length, small",
                [vec![0x81, 126, 0, 2], b"hi".to_vec()].concat(),
            ),
            (
                "ping, then text",
                [vec![0x89, 2, 1, 2], text("after")].concat(),
            ),
            ("pong", [vec![0x8a, 0], text("x")].concat()),
            ("close", vec![0x88, 2, 0x03, 0xe8]),
            ("text, then close", [text("bye"), vec![0x88, 0]].concat()),
            (
                "fragments",
                [
                    vec![0x01, 3],
                    b"hel".to_vec(),
                    vec![0x80, 2],
                    b"lo".to_vec(),
                ]
                .concat(),
            ),
            (
                "continuation alone",
                [vec![0x80, 2], b"lo".to_vec()].concat(),
            ),
            (
                "invalid UTF-8",
                [text("ok"), vec![0x81, 2, 0xc3, 0x28]].concat(),
            ),
            (
                "masked",
                [text("ok"), vec![0x81, 0x82, 1, 2, 3, 4, 5, 6]].concat(),
            ),
            ("reserved bit", vec![0xc1, 1, b'a']),
            ("reserved opcode", vec![0x83, 1, b'a']),
            (
                "64-bit length past the limit",
                vec![0x82, 127, 0, 0, 0, 0, 0, 0x20, 0, 0],
            ),
            (
                "cut short",
                [text("whole"), vec![0x81, 5], b"hal".to_vec()].concat(),
            ),
            ("nothing", Vec::new()),
        ];
        let mut fast = 0;
        for (name, frames) in &cases {
            for chunk in [1, 2, 3, 5, 64, 1 << 20] {
                // The first chunk with the handshake's response (read ahead of the
                // handshake), or after it (read by the fast path, whole messages with
                // the start of the next in one read when the chunk is large).
                for with_response in [true, false] {
                    let cut = (chunk, with_response);
                    let (expected, _) = yields(frames, cut, false).await;
                    let (got, n) = yields(frames, cut, true).await;
                    assert_eq!(got, expected, "{name}, in chunks of {chunk}, {cut:?}");
                    fast += n;
                }
            }
        }
        // The fast path read the plain messages (those before anything handed the
        // connection over), in every cut: 1 + 3 + 2 + 1 + 1 + 0 + 0 + 0 + 1 + 0 + 0 + 1
        // + 1 + 0 + 0 + 0 + 1 + 0 = 12 per cut, 12 cuts.
        assert_eq!(fast, 12 * 12);
    }
}
