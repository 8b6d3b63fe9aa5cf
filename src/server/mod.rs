//! The reference server: a backend that speaks the mini-program protocol, counts what it
//! saw, and misbehaves on request.
//!
//! It answers `auth` with `auth_ack` (`code "200"`, `success true`), `bindCard` with
//! `bindCard_ack` and `heartBeat` with `heartBeat_ack` (echoing a `seq` field when the
//! heartbeat has one), and any other `type` with `<type>_ack`, as a step. [`Faults`] make
//! it slow, drop connections, stall like a half-open peer, reject auths, or drop or hold
//! single heartbeat acks. It runs standalone (`wsoak serve`) and in-process as the
//! default target ([`Embedded`]).
//!
//! Its counts are the ground truth that tests compare the client's report against, so
//! every count is taken at the moment the server acts, never estimated. Where it holds a
//! reply on purpose it also measures the hold it actually gave (read to written), so a
//! client's latency can be judged against what the server really did rather than what
//! it was asked to do (timers overshoot).
//!
//! Replies on one connection are strictly first in, first out: a connection's task reads
//! one message, answers it (holding the reply inline when a fault says so), and only
//! then reads the next. Acks carry no id, so a client can only attribute an ack to a
//! heartbeat by order; a server that let a later reply overtake a held one would make
//! that attribution wrong. Keep it that way.

mod tally;
mod tls;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use tally::Tally;
pub use tls::SelfSigned;

// The faults live below the scenario and the server, which both read them; re-exported
// so that `server::Faults` still names them (in `lib.rs` and the integration tests).
pub use crate::faults::{Faults, MAX_HOLD};

use hdrhistogram::Histogram;

use crate::faults::HeartbeatFate;

/// Most distinct handshake header `name: value` pairs the server remembers; a client
/// sending ever-new headers cannot grow it without end.
pub const MAX_HEADERS: usize = 32;
/// Longest header name or value kept, in bytes; longer ones are cut.
const MAX_HEADER_TEXT: usize = 128;
/// Headers every WebSocket handshake carries: not worth recording.
const HANDSHAKE_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

/// Live counters, shared by every connection task.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    handshake_failed: AtomicU64,
    auth_ok: AtomicU64,
    auth_rejected: AtomicU64,
    bind_card: AtomicU64,
    heartbeats: AtomicU64,
    heartbeats_unanswered: AtomicU64,
    heartbeat_acks_dropped: AtomicU64,
    heartbeat_acks_held: AtomicU64,
    messages: AtomicU64,
    unknown: AtomicU64,
    dropped: AtomicU64,
    stalled: AtomicU64,
    pushes: AtomicU64,
    push_acks: AtomicU64,
    /// Auths seen so far, for spreading rejections evenly.
    auth_seen: AtomicU64,
    /// Close frames received from clients, by code.
    close_codes: Mutex<BTreeMap<u16, u64>>,
    /// Subprotocols agreed, by name.
    subprotocols: Mutex<BTreeMap<String, u64>>,
    /// For connections that had stalled: heartbeats left unanswered when they closed.
    unanswered_at_close: Mutex<BTreeMap<u64, u64>>,
    /// TCP connections accepted, by the client's IP address (at most `MAX_PEERS` keys).
    peers: Mutex<BTreeMap<String, u64>>,
    /// Holds actually given to heartbeat replies (`delay`, `slow_ack`), µs, read to
    /// written. One lock for all connections: it is taken once per held reply.
    heartbeat_holds: Mutex<Option<Histogram<u64>>>,
    /// Handshake headers seen, as `name: value`, capped at [`MAX_HEADERS`] pairs.
    headers: Mutex<BTreeMap<String, u64>>,
    /// Header pairs not recorded because the cap was reached.
    headers_over_cap: AtomicU64,
    /// Subprotocol agreements not recorded because [`MAX_KEYS`] names were kept.
    subprotocols_over_cap: AtomicU64,
    /// Messages received per `type` (at most [`MAX_KEYS`] types).
    messages_by_type: Mutex<BTreeMap<String, u64>>,
    /// Messages whose `type` was not recorded because 64 types were kept.
    messages_by_type_over_cap: AtomicU64,
    /// Close frames not recorded by code because [`MAX_KEYS`] codes were kept.
    close_codes_over_cap: AtomicU64,
    /// Stalled connections not recorded in `unanswered_at_close` because [`MAX_KEYS`]
    /// counts were kept.
    unanswered_at_close_over_cap: AtomicU64,
    /// TCP connections that did not finish TLS and the WebSocket upgrade within
    /// [`Limits::handshake_timeout`].
    handshake_timeouts: AtomicU64,
    /// Connections closed because the client sent nothing for [`Limits::idle_timeout`].
    idle_timeouts: AtomicU64,
    /// TCP connections closed at once because [`Limits::max_connections`] were open and
    /// none of them was still in its handshake.
    refused: AtomicU64,
    /// Connections still in their handshake closed to make room for a new one.
    evicted: AtomicU64,
}

/// Most keys any of the server's other count maps (`subprotocols`, `close_codes`,
/// `unanswered_at_close`) keeps: each key is chosen by a client (a subprotocol name, a
/// close code, how long it let a stall run), so without a cap a client could grow the
/// server's memory without end. Counts past the cap go to the map's `*_over_cap`.
pub const MAX_KEYS: usize = 64;

/// Most distinct client addresses `peers` names; the rest are counted under "other", so
/// a server open to the world keeps bounded memory.
const MAX_PEERS: usize = 256;

/// What the server saw, as printed on exit and embedded in reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// WebSocket handshakes completed.
    pub connections: u64,
    /// TCP connections whose TLS or WebSocket handshake failed.
    pub handshake_failed: u64,
    /// Auths acknowledged with code 200.
    pub auth_ok: u64,
    /// Auths answered with a rejection.
    pub auth_rejected: u64,
    /// bindCard messages received.
    pub bind_card: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Heartbeats received while stalled, so never answered.
    pub heartbeats_unanswered: u64,
    /// Heartbeats whose ack was dropped on purpose (`drop_ack_every`).
    #[serde(default)]
    pub heartbeat_acks_dropped: u64,
    /// Heartbeat replies held on purpose (`slow_ack_every`), counted once written.
    #[serde(default)]
    pub heartbeat_acks_held: u64,
    /// The hold each delayed or held heartbeat reply actually got (`delay`,
    /// `slow_ack`): from reading the heartbeat to having written the reply.
    #[serde(default)]
    pub heartbeat_hold_ms: HoldSummary,
    /// Text messages received.
    pub messages: u64,
    /// Messages that were not JSON with a `type` (any `type` is answered: see `answer`).
    pub unknown: u64,
    /// Connections closed abruptly by `drop_after`.
    pub dropped: u64,
    /// Connections that reached `stall_after`.
    pub stalled: u64,
    /// `order_push` messages sent (`push_every`).
    pub pushes: u64,
    /// `pushAck` replies received.
    pub push_acks: u64,
    /// Close frames received from clients, by close code.
    pub close_codes: BTreeMap<u16, u64>,
    /// Connections per agreed subprotocol.
    pub subprotocols: BTreeMap<String, u64>,
    /// For stalled connections: how many heartbeats were unanswered when each closed,
    /// as `{unanswered: connections}`.
    pub unanswered_at_close: BTreeMap<u64, u64>,
    /// TCP connections accepted per client IP address (at most 256 addresses, then
    /// "other"): shows how a client spread its source addresses.
    #[serde(default)]
    pub peers: BTreeMap<String, u64>,
    /// Connections per handshake header, as `{"name: value": connections}` (names
    /// lower-cased; the WebSocket handshake's own headers left out; at most 32 pairs).
    #[serde(default)]
    pub headers: BTreeMap<String, u64>,
    /// Header pairs seen after the 32 kept were full: counted, not recorded.
    #[serde(default)]
    pub headers_over_cap: u64,
    /// Agreed subprotocols not recorded because 64 names were kept.
    #[serde(default)]
    pub subprotocols_over_cap: u64,
    /// Text messages received per JSON `type` (at most 64 types, names cut at 128 bytes),
    /// so a scenario's steps can be reconciled with what the server saw, step by step.
    #[serde(default)]
    pub messages_by_type: BTreeMap<String, u64>,
    /// Messages whose `type` was not recorded because 64 types were kept.
    #[serde(default)]
    pub messages_by_type_over_cap: u64,
    /// Close frames not recorded by code because 64 codes were kept.
    #[serde(default)]
    pub close_codes_over_cap: u64,
    /// Stalled connections not recorded in `unanswered_at_close` because 64 counts were
    /// kept.
    #[serde(default)]
    pub unanswered_at_close_over_cap: u64,
    /// TCP connections closed because they did not finish TLS and the WebSocket upgrade
    /// in time (`--handshake-timeout`). Not also in `handshake_failed`.
    #[serde(default)]
    pub handshake_timeouts: u64,
    /// Connections closed because the client sent nothing for `--idle-timeout`.
    #[serde(default)]
    pub idle_timeouts: u64,
    /// TCP connections closed at once, unserved, because `--max-connections` were open
    /// and every one of them had finished its handshake.
    #[serde(default)]
    pub refused: u64,
    /// Connections still in their handshake closed, oldest first, to make room for a new
    /// one when `--max-connections` were open.
    #[serde(default)]
    pub evicted: u64,
}

/// A few statistics of a histogram of holds, in milliseconds (µs resolution). Empty:
/// `count` 0 and the rest null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HoldSummary {
    /// Replies measured.
    pub count: u64,
    /// The shortest hold.
    pub min: Option<f64>,
    /// The median hold.
    pub p50: Option<f64>,
    /// The 99th percentile hold.
    pub p99: Option<f64>,
    /// The longest hold.
    pub max: Option<f64>,
}

impl HoldSummary {
    fn of(h: Option<&Histogram<u64>>) -> HoldSummary {
        let Some(h) = h.filter(|h| !h.is_empty()) else {
            return HoldSummary::default();
        };
        let ms = |us: u64| Some(us as f64 / 1000.0);
        HoldSummary {
            count: h.len(),
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl Stats {
    /// A consistent-enough copy of the counters (each counter is exact; they are read one
    /// after another).
    pub fn snapshot(&self) -> ServerStats {
        ServerStats {
            connections: self.connections.load(Relaxed),
            handshake_failed: self.handshake_failed.load(Relaxed),
            auth_ok: self.auth_ok.load(Relaxed),
            auth_rejected: self.auth_rejected.load(Relaxed),
            bind_card: self.bind_card.load(Relaxed),
            heartbeats: self.heartbeats.load(Relaxed),
            heartbeats_unanswered: self.heartbeats_unanswered.load(Relaxed),
            heartbeat_acks_dropped: self.heartbeat_acks_dropped.load(Relaxed),
            heartbeat_acks_held: self.heartbeat_acks_held.load(Relaxed),
            heartbeat_hold_ms: HoldSummary::of(
                self.heartbeat_holds.lock().expect("not poisoned").as_ref(),
            ),
            messages: self.messages.load(Relaxed),
            unknown: self.unknown.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            stalled: self.stalled.load(Relaxed),
            pushes: self.pushes.load(Relaxed),
            push_acks: self.push_acks.load(Relaxed),
            close_codes: self.close_codes.lock().expect("not poisoned").clone(),
            subprotocols: self.subprotocols.lock().expect("not poisoned").clone(),
            unanswered_at_close: self
                .unanswered_at_close
                .lock()
                .expect("not poisoned")
                .clone(),
            peers: self.peers.lock().expect("not poisoned").clone(),
            headers: self.headers.lock().expect("not poisoned").clone(),
            headers_over_cap: self.headers_over_cap.load(Relaxed),
            subprotocols_over_cap: self.subprotocols_over_cap.load(Relaxed),
            messages_by_type: self.messages_by_type.lock().expect("not poisoned").clone(),
            messages_by_type_over_cap: self.messages_by_type_over_cap.load(Relaxed),
            close_codes_over_cap: self.close_codes_over_cap.load(Relaxed),
            unanswered_at_close_over_cap: self.unanswered_at_close_over_cap.load(Relaxed),
            handshake_timeouts: self.handshake_timeouts.load(Relaxed),
            idle_timeouts: self.idle_timeouts.load(Relaxed),
            refused: self.refused.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
        }
    }

    /// The final counts with the histogram behind `heartbeat_hold_ms`, so that they can
    /// be summed exactly with another process's.
    pub fn tally(&self) -> Tally {
        Tally {
            stats: self.snapshot(),
            holds: self.heartbeat_holds.lock().expect("not poisoned").clone(),
        }
    }

    /// Records the hold one heartbeat reply actually got.
    fn record_hold(&self, hold: Duration) {
        let us = u64::try_from(hold.as_micros()).unwrap_or(u64::MAX);
        let mut holds = self.heartbeat_holds.lock().expect("not poisoned");
        // Same bounds as the client's histograms, so that both bucket a value alike.
        let h = holds.get_or_insert_with(crate::metrics::new_histogram);
        h.saturating_record(us.max(1));
    }

    /// Records one connection's handshake headers, within the cap.
    fn record_headers(&self, pairs: Vec<String>) {
        let mut headers = self.headers.lock().expect("not poisoned");
        for pair in pairs {
            count_capped(&mut headers, pair, MAX_HEADERS, &self.headers_over_cap);
        }
    }

    /// Records the subprotocol a connection agreed to, within the cap.
    fn record_subprotocol(&self, protocol: String) {
        let mut subprotocols = self.subprotocols.lock().expect("not poisoned");
        count_capped(
            &mut subprotocols,
            protocol,
            MAX_KEYS,
            &self.subprotocols_over_cap,
        );
    }

    /// Records a client's close frame by code, within the cap.
    fn record_close_code(&self, code: u16) {
        let mut codes = self.close_codes.lock().expect("not poisoned");
        count_capped(&mut codes, code, MAX_KEYS, &self.close_codes_over_cap);
    }

    /// Records how many heartbeats a stalled connection left unanswered, within the cap.
    fn record_unanswered(&self, unanswered: u64) {
        let mut map = self.unanswered_at_close.lock().expect("not poisoned");
        count_capped(
            &mut map,
            unanswered,
            MAX_KEYS,
            &self.unanswered_at_close_over_cap,
        );
    }

    /// Counts one accepted connection from `peer`.
    fn count_peer(&self, peer: std::net::IpAddr) {
        let mut peers = self.peers.lock().expect("not poisoned");
        let key = peer.to_string();
        let key = if peers.len() < MAX_PEERS || peers.contains_key(&key) {
            key
        } else {
            "other".to_string()
        };
        *peers.entry(key).or_default() += 1;
    }

    /// Decides, evenly spread, whether the next auth is rejected.
    fn reject_next_auth(&self, fraction: f64) -> bool {
        if fraction <= 0.0 {
            return false;
        }
        let n = self.auth_seen.fetch_add(1, Relaxed) as f64;
        ((n + 1.0) * fraction).floor() > (n * fraction).floor()
    }
}

/// Adds one to `key`'s count if the map has it or has room for it; otherwise counts the
/// miss in `over_cap`, so a client choosing ever-new keys cannot grow the map.
fn count_capped<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, cap: usize, over_cap: &AtomicU64) {
    if let Some(n) = map.get_mut(&key) {
        *n += 1;
    } else if map.len() < cap {
        map.insert(key, 1);
    } else {
        over_cap.fetch_add(1, Relaxed);
    }
}

/// What keeps a server open to broken or hostile clients within bounded descriptors and
/// memory: every connection either makes progress or is closed, and the number open at
/// once is capped below the open-file limit, so real clients are still accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A TCP connection that has not finished TLS and the WebSocket upgrade within this
    /// long is closed and counted (`handshake_timeouts`).
    pub handshake_timeout: Duration,
    /// A connection that sends nothing at all (no message, ping or close) for this long
    /// is closed and counted (`idle_timeouts`); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Most TCP connections open at once, handshaking or served; past it a new
    /// connection is closed at once and counted (`refused`).
    pub max_connections: usize,
}

/// The handshake timeout unless told otherwise: a real client finishes TCP, TLS and the
/// upgrade in milliseconds, even on a loaded machine; ten seconds leaves room for a
/// thousand clients handshaking at once on one core, and frees a stuck socket quickly.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Limits {
    /// The embedded server's limits: the handshake timeout only. Its only clients are
    /// the run's own sessions, already counted in the run's open-file budget, and a
    /// scenario may heartbeat less often than any idle timeout chosen here (or not at
    /// all), so it neither caps connections nor closes quiet ones.
    fn default() -> Limits {
        Limits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: None,
            max_connections: MAX_CONNECTIONS_CEILING,
        }
    }
}

/// The most connections a semaphore can stand for (tokio's `Semaphore::MAX_PERMITS`).
pub const MAX_CONNECTIONS_CEILING: usize = usize::MAX >> 3;

/// Everything a server needs to run.
#[derive(Clone)]
pub struct ServerConfig {
    /// Faults to inject.
    pub faults: Faults,
    /// TLS, for `wss://`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Timeouts and the connection cap.
    pub limits: Limits,
}

/// Binds a listener with a backlog deep enough for thousands of simultaneous connects
/// (the standard library's is 128). Must be called inside a tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Like [`bind`], with `SO_REUSEPORT`: every process that binds the same address this
/// way listens on it at once, and the kernel spreads new connections over them (by a
/// hash of the client's address and port). `wsoak serve --workers` binds each of its
/// processes so. Must be called inside a tokio runtime.
pub fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    #[cfg(not(unix))]
    return Err(std::io::Error::other("SO_REUSEPORT needs unix"));
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves connections from `listener` until `shutdown` completes, then closes open
/// connections with 1001 (going away) and returns once they are gone (at most ~2 s).
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<Stats>,
    shutdown: impl Future,
) {
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut handshaking = Handshaking::default();
    let config = Arc::new(config);
    let open = Arc::new(Semaphore::new(
        config.limits.max_connections.min(MAX_CONNECTIONS_CEILING),
    ));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else {
                    // Out of file descriptors or similar: back off briefly, keep serving.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                stats.count_peer(peer.ip());
                let permit = match open.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    // Full. A connection still in its handshake after every newer one
                    // is the likeliest to be a flood, so the oldest makes room; a real
                    // client finishes in milliseconds and is never the oldest for long.
                    // It gives its slot back at once (see `Pending::admit`).
                    Err(_) if handshaking.evict_oldest() => {
                        stats.evicted.fetch_add(1, Relaxed);
                        tokio::time::timeout(Duration::from_secs(1), open.clone().acquire_owned())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                    Err(_) => None,
                };
                let Some(permit) = permit else {
                    // Closed unserved, before any work: every open connection is served,
                    // and the cap keeps the descriptors this process needs.
                    stats.refused.fetch_add(1, Relaxed);
                    drop(tcp);
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let pending = handshaking.enter(&stop);
                let (config, stats, stop) = (config.clone(), stats.clone(), stop.clone());
                tracker.spawn(async move {
                    let _permit = permit;
                    let deadline = Instant::now() + config.limits.handshake_timeout;
                    // Nothing is set up for a connection (TLS state, handshake buffers)
                    // until its client sends a first byte: a connection that never does
                    // costs only this small task until the handshake timeout.
                    // A peek, not `readable()`: readiness may be reported before any byte
                    // has arrived, and a peek checks.
                    let mut byte = [0u8; 1];
                    let first = tokio::select! {
                        r = tokio::time::timeout_at(deadline, tcp.peek(&mut byte)) => r,
                        _ = pending.evict.cancelled() => return,
                    };
                    match first {
                        Ok(Ok(1..)) => {}
                        Ok(Ok(0) | Err(_)) => {
                            stats.handshake_failed.fetch_add(1, Relaxed);
                            return;
                        }
                        Err(_) => {
                            stats.handshake_timeouts.fetch_add(1, Relaxed);
                            return;
                        }
                    }
                    // Boxed for the same reason: the served connection's state is large.
                    let serving = handshake_and_serve(tcp, deadline, &pending, &config, &stats, &stop);
                    Box::pin(serving).await;
                });
            }
        }
    }
    stop.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
}

/// The connections still in their handshake, oldest first, each with the token that
/// evicts it.
#[derive(Default)]
struct Handshaking {
    /// Evict tokens by connection number (accept order).
    pending: Arc<Mutex<BTreeMap<u64, CancellationToken>>>,
    /// The next connection's number.
    next: u64,
}

impl Handshaking {
    /// Registers a new connection; it leaves the registry when its handshake ends, one
    /// way or another.
    fn enter(&mut self, stop: &CancellationToken) -> Pending {
        let id = self.next;
        self.next += 1;
        // A child of the server's stop token: stopping the server also ends handshakes.
        let evict = stop.child_token();
        self.pending
            .lock()
            .expect("not poisoned")
            .insert(id, evict.clone());
        Pending {
            id,
            evict,
            registry: self.pending.clone(),
        }
    }

    /// Evicts the oldest connection still in its handshake; false if there is none.
    fn evict_oldest(&self) -> bool {
        let mut pending = self.pending.lock().expect("not poisoned");
        // Cancelled under the lock, so that `Pending::admit` sees either the connection
        // still registered and cancelled, or already gone and never cancelled.
        pending
            .pop_first()
            .map(|(_, evict)| evict.cancel())
            .is_some()
    }
}

/// One connection's place in [`Handshaking`].
struct Pending {
    /// The connection's number.
    id: u64,
    /// Cancelled when the connection is evicted (or the server stops).
    evict: CancellationToken,
    /// Where it is registered.
    registry: Arc<Mutex<BTreeMap<u64, CancellationToken>>>,
}

impl Pending {
    /// The handshake is done: the connection can no longer be evicted. False if it was
    /// evicted first, in which case it must close, as its slot was promised to a newer
    /// connection.
    fn admit(&self) -> bool {
        let mut registry = self.registry.lock().expect("not poisoned");
        registry.remove(&self.id);
        !self.evict.is_cancelled()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.registry.lock().expect("not poisoned").remove(&self.id);
    }
}

/// TLS (when configured), then the WebSocket upgrade, both by `deadline`, then the
/// protocol.
async fn handshake_and_serve(
    tcp: tokio::net::TcpStream,
    deadline: Instant,
    pending: &Pending,
    config: &ServerConfig,
    stats: &Stats,
    stop: &CancellationToken,
) {
    let Some(acceptor) = &config.tls else {
        return serve_connection(tcp, deadline, pending, config, stats, stop).await;
    };
    let accepted = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
        _ = pending.evict.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => serve_connection(tls, deadline, pending, config, stats, stop).await,
        Ok(Err(_)) => {
            stats.handshake_failed.fetch_add(1, Relaxed);
        }
        Err(_) => {
            stats.handshake_timeouts.fetch_add(1, Relaxed);
        }
    }
}

/// Small buffers: the server may share a process (and its memory) with the client.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

const AUTH_ACK: &str = r#"{"msgType":"auth_ack","code":"200","success":true,"msg":"ok"}"#;
const AUTH_REJECT: &str =
    r#"{"msgType":"auth_ack","code":"401","success":false,"msg":"unauthorized"}"#;
const BIND_CARD_ACK: &str = r#"{"msgType":"bindCard_ack","code":"200","success":true}"#;
const HEARTBEAT_ACK: &str = r#"{"msgType":"heartBeat_ack"}"#;
const UNKNOWN: &str = r#"{"msgType":"error","code":"400","success":false,"msg":"unknown type"}"#;

/// Serves one connection: the WebSocket upgrade (which must be done by
/// `handshake_deadline`), then the protocol until either side ends it.
async fn serve_connection<S>(
    stream: S,
    handshake_deadline: Instant,
    pending: &Pending,
    config: &ServerConfig,
    stats: &Stats,
    stop: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let faults = &config.faults;
    // Agree to the first subprotocol the client offers, as a typical backend does (a
    // client that asked for one and got none fails its handshake).
    let mut agreed: Option<String> = None;
    let mut headers: Vec<String> = Vec::new();
    #[allow(clippy::result_large_err)] // the error type is tungstenite's Callback contract
    let callback = |request: &Request, mut response: Response| {
        headers = request
            .headers()
            .iter()
            .filter(|(name, _)| !HANDSHAKE_HEADERS.contains(&name.as_str()))
            // At most as many as could be kept: a client sending thousands costs nothing.
            .take(MAX_HEADERS + 1)
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                format!(
                    "{}: {}",
                    cut(name.as_str(), MAX_HEADER_TEXT),
                    cut(&value, MAX_HEADER_TEXT)
                )
            })
            .collect();
        let offered = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|p| p.trim().to_owned());
        if let Some(protocol) = offered {
            if let Ok(value) = protocol.parse() {
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", value);
                agreed = Some(protocol);
            }
        }
        Ok(response)
    };
    // Boxed: the handshake's state is large and lives only until the upgrade, so it
    // should not sit in every served connection's future.
    let handshake = Box::pin(tokio::time::timeout_at(
        handshake_deadline,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config())),
    ));
    let handshake = tokio::select! {
        r = handshake => r,
        _ = pending.evict.cancelled() => return,
    };
    let mut ws = match handshake {
        Ok(Ok(ws)) if pending.admit() => ws,
        Ok(Ok(_)) => return, // evicted as it finished: its slot is promised away
        Ok(Err(_)) => {
            stats.handshake_failed.fetch_add(1, Relaxed);
            return;
        }
        Err(_) => {
            stats.handshake_timeouts.fetch_add(1, Relaxed);
            return;
        }
    };
    stats.connections.fetch_add(1, Relaxed);
    stats.record_headers(headers);
    if let Some(protocol) = agreed {
        stats.record_subprotocol(cut(&protocol, MAX_HEADER_TEXT).to_owned());
    }
    let born = Instant::now();
    let far = born + Duration::from_secs(86_400 * 365);
    let drop_at = faults.drop_after.map_or(far, |d| born + d);
    let stall_at = faults.stall_after.map_or(far, |d| born + d);
    let mut stalled = false;
    let mut unanswered = 0u64;
    // Pushes start once the card is bound.
    let mut next_push: Option<Instant> = None;
    let mut pushed = 0u64;
    // Heartbeats read on this connection, numbered from 1, for `*_ack_every`.
    let mut heartbeats = 0u64;
    let finish = |stalled: bool, unanswered: u64| {
        if stalled {
            stats.record_unanswered(unanswered);
        }
    };
    // Reset by every frame read: a client that sends nothing, not even a ping, for
    // `idle_timeout` holds a descriptor for nothing.
    let idle_timeout = config.limits.idle_timeout;
    let mut idle = pin!(sleep_until(idle_timeout.map_or(far, |d| born + d)));
    loop {
        tokio::select! {
            _ = &mut idle, if idle_timeout.is_some() => {
                stats.idle_timeouts.fetch_add(1, Relaxed);
                finish(stalled, unanswered);
                return;
            }
            _ = sleep_until(drop_at), if faults.drop_after.is_some() => {
                stats.dropped.fetch_add(1, Relaxed);
                finish(stalled, unanswered);
                return; // dropping the socket sends FIN with no close frame
            }
            _ = sleep_until(stall_at), if !stalled && faults.stall_after.is_some() => {
                stalled = true;
                stats.stalled.fetch_add(1, Relaxed);
            }
            _ = sleep_until(next_push.unwrap_or(far)), if next_push.is_some() && !stalled => {
                pushed += 1;
                next_push = next_push.zip(faults.push_every).map(|(at, every)| at + every);
                let push = format!(
                    r#"{{"msgType":"order_push","orderId":"o-{pushed}","ts":{}}}"#,
                    unix_ms()
                );
                if !send_within(&mut ws, Message::Text(push.into()), idle_timeout).await {
                    finish(stalled, unanswered);
                    return;
                }
                stats.pushes.fetch_add(1, Relaxed);
            }
            _ = stop.cancelled() => {
                going_away(&mut ws).await;
                finish(stalled, unanswered);
                return;
            }
            message = ws.next() => {
                if let (Some(Ok(_)), Some(after)) = (&message, idle_timeout) {
                    idle.as_mut().reset(Instant::now() + after);
                }
                match message {
                Some(Ok(Message::Text(text))) => {
                    // Holds are measured from here: the message has been read.
                    let read_at = Instant::now();
                    stats.messages.fetch_add(1, Relaxed);
                    if stalled {
                        // A half-open peer: it reads (so we can count) but never answers.
                        if is_heartbeat(text.as_str()) {
                            unanswered += 1;
                            stats.heartbeats.fetch_add(1, Relaxed);
                            stats.heartbeats_unanswered.fetch_add(1, Relaxed);
                        }
                        continue;
                    }
                    let Some(reply) = answer(text.as_str(), faults, stats) else {
                        continue; // a pushAck: counted, not answered
                    };
                    if reply == Answer::BindCard && next_push.is_none() {
                        next_push = faults.push_every.map(|every| Instant::now() + every);
                    }
                    let heartbeat = reply == Answer::Heartbeat;
                    let fate = if heartbeat {
                        heartbeats += 1;
                        faults.heartbeat_fate(heartbeats)
                    } else {
                        HeartbeatFate::Answer
                    };
                    let hold = match fate {
                        HeartbeatFate::Drop => {
                            stats.heartbeat_acks_dropped.fetch_add(1, Relaxed);
                            continue;
                        }
                        HeartbeatFate::Hold(extra) => Some(faults.delay.unwrap_or_default() + extra),
                        HeartbeatFate::Answer => faults.delay,
                    };
                    if let Some(hold) = hold {
                        // Held inline, not in a spawned task: the next message is not
                        // read until this reply is written, so replies stay in order.
                        tokio::select! {
                            _ = sleep_until(read_at + hold) => {}
                            _ = stop.cancelled() => {
                                going_away(&mut ws).await;
                                finish(stalled, unanswered);
                                return;
                            }
                        }
                    }
                    let reply = reply.text(text.as_str());
                    if !send_within(&mut ws, Message::Text(reply), idle_timeout).await {
                        finish(stalled, unanswered);
                        return;
                    }
                    if heartbeat && hold.is_some() {
                        stats.record_hold(read_at.elapsed());
                        if matches!(fate, HeartbeatFate::Hold(_)) {
                            stats.heartbeat_acks_held.fetch_add(1, Relaxed);
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    stats.record_close_code(code);
                    finish(stalled, unanswered);
                    // Let tungstenite send the close reply; it ends the stream after. A
                    // client that never closes its side is not waited for long.
                    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
                    return;
                }
                Some(Ok(_)) => {} // pings are answered by tungstenite; binary is ignored
                Some(Err(_)) | None => {
                    finish(stalled, unanswered);
                    return;
                }
                }
            }
        }
    }
}

/// How long a connection's close handshake may take before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Sends one message; false if it failed, or if it could not be written within `within`
/// (a client that stopped reading must not hold its connection forever: with the idle
/// timeout on, a reply that cannot be written for as long is a dead peer).
async fn send_within<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    message: Message,
    within: Option<Duration>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match within {
        Some(within) => matches!(
            tokio::time::timeout(within, ws.send(message)).await,
            Ok(Ok(()))
        ),
        None => ws.send(message).await.is_ok(),
    }
}

/// Closes a connection because the server is stopping.
async fn going_away<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reason = Utf8Bytes::from_static("server stopping");
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Away,
            reason,
        }))
        .await;
}

/// Whether a message is a heartbeat (asked only once stalled, where nothing is answered).
fn is_heartbeat(text: &str) -> bool {
    message_type(text).as_deref() == Some("heartBeat")
}

fn message_type(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_str::<Typed>(text).ok()?.kind
}

/// The ack of one heartbeat. A heartbeat that carries a `seq` (a number or a string, as
/// a scenario's `{{ heartbeat.seq }}` renders it) gets it echoed, so clients can match
/// acks to heartbeats exactly; any other heartbeat gets the article's fixed ack.
fn heartbeat_ack(heartbeat: &str) -> Utf8Bytes {
    #[derive(Deserialize)]
    struct Numbered {
        seq: Option<serde_json::Value>,
    }
    if !heartbeat.contains("\"seq\"") {
        return Utf8Bytes::from_static(HEARTBEAT_ACK);
    }
    match serde_json::from_str::<Numbered>(heartbeat)
        .ok()
        .and_then(|n| n.seq)
    {
        Some(seq) if seq.is_number() || seq.is_string() => {
            Utf8Bytes::from(format!(r#"{{"msgType":"heartBeat_ack","seq":{seq}}}"#))
        }
        _ => Utf8Bytes::from_static(HEARTBEAT_ACK),
    }
}

/// What the server replies to one message.
#[derive(Debug, PartialEq)]
enum Answer {
    /// `auth_ack`, or the rejection.
    Auth(&'static str),
    /// `bindCard_ack`: pushes start after it.
    BindCard,
    /// `heartBeat_ack`, subject to the ack faults.
    Heartbeat,
    /// Any other step: `{"msgType":"<type>_ack","code":"200","success":true}`.
    Step(String),
    /// Not JSON with a `type`: an error reply.
    Unknown,
}

impl Answer {
    fn text(&self, message: &str) -> Utf8Bytes {
        match self {
            Answer::Auth(text) => Utf8Bytes::from_static(text),
            Answer::BindCard => Utf8Bytes::from_static(BIND_CARD_ACK),
            Answer::Heartbeat => heartbeat_ack(message),
            Answer::Step(kind) => {
                let ack = serde_json::json!({
                    "msgType": format!("{kind}_ack"),
                    "code": "200",
                    "success": true,
                });
                Utf8Bytes::from(ack.to_string())
            }
            Answer::Unknown => Utf8Bytes::from_static(UNKNOWN),
        }
    }
}

/// Counts a message and picks the reply (`None`: counted, not answered). A `type` the
/// protocol does not name is acknowledged as a step, so a scenario with steps of its own
/// runs against this server out of the box.
fn answer(text: &str, faults: &Faults, stats: &Stats) -> Option<Answer> {
    let kind = message_type(text);
    if let Some(kind) = &kind {
        let key = cut(kind, MAX_TYPE_TEXT).to_owned();
        let mut counts = stats.messages_by_type.lock().expect("not poisoned");
        count_capped(&mut counts, key, MAX_KEYS, &stats.messages_by_type_over_cap);
    }
    match kind.as_deref() {
        Some("auth") => {
            if stats.reject_next_auth(faults.reject_auth) {
                stats.auth_rejected.fetch_add(1, Relaxed);
                Some(Answer::Auth(AUTH_REJECT))
            } else {
                stats.auth_ok.fetch_add(1, Relaxed);
                Some(Answer::Auth(AUTH_ACK))
            }
        }
        Some("bindCard") => {
            stats.bind_card.fetch_add(1, Relaxed);
            Some(Answer::BindCard)
        }
        Some("pushAck") => {
            stats.push_acks.fetch_add(1, Relaxed);
            None
        }
        Some("heartBeat") => {
            stats.heartbeats.fetch_add(1, Relaxed);
            Some(Answer::Heartbeat)
        }
        Some(other) if !other.is_empty() => {
            Some(Answer::Step(cut(other, MAX_TYPE_TEXT).to_owned()))
        }
        _ => {
            stats.unknown.fetch_add(1, Relaxed);
            Some(Answer::Unknown)
        }
    }
}

/// Longest message `type` the server records or echoes.
const MAX_TYPE_TEXT: usize = 128;

/// The first `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A reference server running on its own thread in this process: the default target.
pub struct Embedded {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The certificate it serves, when TLS is on.
    pub certificate: Option<SelfSigned>,
    stats: Arc<Stats>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    /// Starts a server on `listen` (port 0 for an ephemeral port) on a thread of its own.
    pub fn start(listen: SocketAddr, faults: Faults, tls: bool) -> std::io::Result<Embedded> {
        let certificate = tls.then(SelfSigned::generate).transpose()?;
        Embedded::start_with(listen, faults, certificate)
    }

    /// Like [`Embedded::start`], serving `wss://` with this certificate when given.
    pub fn start_with(
        listen: SocketAddr,
        faults: Faults,
        certificate: Option<SelfSigned>,
    ) -> std::io::Result<Embedded> {
        let config = ServerConfig {
            faults,
            tls: certificate.as_ref().map(SelfSigned::acceptor).transpose()?,
            limits: Limits::default(),
        };
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::Builder::new()
                .name("wsoak-server".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let listener = match bind(listen) {
                            Ok(l) => l,
                            Err(e) => {
                                let _ = addr_tx.send(Err(e));
                                return;
                            }
                        };
                        let _ = addr_tx.send(listener.local_addr());
                        run(listener, config, stats, stop.cancelled_owned()).await;
                    });
                })?
        };
        let addr = addr_rx
            .recv()
            .map_err(|_| std::io::Error::other("the server thread ended before binding"))??;
        Ok(Embedded {
            addr,
            certificate,
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        let scheme = if self.certificate.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}/", self.addr)
    }

    /// Stops the server, waits for its thread, and returns its final counts.
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        self.stats.snapshot()
    }

    fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_up_to_a_bound() {
        let stats = Stats::default();
        for last in 0..=255u8 {
            stats.count_peer([127, 0, 1, last].into());
        }
        stats.count_peer([127, 0, 1, 7].into());
        stats.count_peer([127, 0, 2, 0].into());
        stats.count_peer([127, 0, 2, 1].into());
        let peers = stats.snapshot().peers;
        assert_eq!(peers.len(), 257);
        assert_eq!(peers["127.0.1.7"], 2);
        assert_eq!(peers["127.0.1.255"], 1);
        assert_eq!(peers["other"], 2);
    }

    #[test]
    fn rejections_are_spread_exactly() {
        let stats = Stats::default();
        let rejected = (0..1000).filter(|_| stats.reject_next_auth(0.25)).count();
        assert_eq!(rejected, 250);
        let stats = Stats::default();
        assert_eq!((0..10).filter(|_| stats.reject_next_auth(0.0)).count(), 0);
        let stats = Stats::default();
        assert_eq!((0..10).filter(|_| stats.reject_next_auth(1.0)).count(), 10);
    }

    #[test]
    fn headers_are_capped() {
        let stats = Stats::default();
        for i in 0..MAX_HEADERS + 8 {
            stats.record_headers(vec![format!("x-n: {i}"), "x-client: wsoak".into()]);
        }
        let s = stats.snapshot();
        assert_eq!(s.headers.len(), MAX_HEADERS);
        assert_eq!(s.headers["x-client: wsoak"], MAX_HEADERS as u64 + 8);
        // The first 31 `x-n` values fit beside `x-client`; the other 9 did not.
        assert_eq!(s.headers_over_cap, 9);
        assert_eq!(cut("añb", 2), "a");
        assert_eq!(cut("ab", 5), "ab");
    }

    #[test]
    fn every_count_map_is_capped_and_counts_what_went_over() {
        let stats = Stats::default();
        for i in 0..MAX_KEYS + 10 {
            stats.record_subprotocol(format!("p{i}"));
            stats.record_close_code(3000 + i as u16);
            stats.record_unanswered(i as u64);
        }
        // Keys already kept still count once the map is full.
        stats.record_subprotocol("p0".into());
        stats.record_close_code(3000);
        stats.record_unanswered(0);
        let s = stats.snapshot();
        assert_eq!(s.subprotocols.len(), MAX_KEYS);
        assert_eq!(s.close_codes.len(), MAX_KEYS);
        assert_eq!(s.unanswered_at_close.len(), MAX_KEYS);
        assert_eq!(s.subprotocols["p0"], 2);
        assert_eq!(s.close_codes[&3000], 2);
        assert_eq!(s.unanswered_at_close[&0], 2);
        assert_eq!(s.subprotocols_over_cap, 10);
        assert_eq!(s.close_codes_over_cap, 10);
        assert_eq!(s.unanswered_at_close_over_cap, 10);
    }

    #[test]
    fn holds_are_summarised_in_ms() {
        let stats = Stats::default();
        assert_eq!(stats.snapshot().heartbeat_hold_ms, HoldSummary::default());
        for ms in 1..=100 {
            stats.record_hold(Duration::from_millis(ms));
        }
        let h = stats.snapshot().heartbeat_hold_ms;
        assert_eq!(h.count, 100);
        assert_eq!(h.min, Some(1.0));
        // 50,000 µs falls in a 32 µs bucket; the quantile reports its highest equivalent.
        assert_eq!(h.p50, Some(50.015));
        assert_eq!(h.p99, Some(99.007));
        assert_eq!(h.max, Some(100.031));
    }

    /// Sends `messages` on one connection, all at once, and returns the replies read
    /// until `expect` have arrived.
    async fn exchange(addr: SocketAddr, messages: &[&str], expect: usize) -> Vec<String> {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        for m in messages {
            ws.feed(Message::Text((*m).into())).await.unwrap();
        }
        ws.flush().await.unwrap();
        let mut replies = Vec::new();
        while replies.len() < expect {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => replies.push(message_kind(t.as_str())),
                other => panic!("{other:?} after {replies:?}"),
            }
        }
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        replies
    }

    fn message_kind(text: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["msgType"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn held_replies_keep_their_order_and_acks_count_per_connection() {
        let faults = Faults {
            drop_ack_every: Some(3),
            slow_ack_every: Some(2),
            slow_ack: Some(Duration::from_millis(30)),
            ..Faults::default()
        };
        let listener = bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let server = tokio::spawn(run(
            listener,
            ServerConfig {
                faults,
                tls: None,
                limits: Limits::default(),
            },
            stats.clone(),
            stop.clone().cancelled_owned(),
        ));
        let hb = r#"{"type":"heartBeat"}"#;
        let auth = r#"{"type":"auth"}"#;
        // Heartbeat 2 is held 30 ms and 3 is dropped; the auth sent after them must not
        // overtake the held ack, as it would if holds ran beside the connection.
        let replies = exchange(addr, &[hb, hb, hb, auth, hb], 4).await;
        assert_eq!(
            replies,
            [
                "heartBeat_ack",
                "heartBeat_ack",
                "auth_ack",
                "heartBeat_ack"
            ]
        );
        // A new connection numbers its heartbeats from 1 again.
        let replies = exchange(addr, &[hb, hb, hb], 2).await;
        assert_eq!(replies, ["heartBeat_ack", "heartBeat_ack"]);
        stop.cancel();
        server.await.unwrap();
        let s = stats.snapshot();
        assert_eq!(s.heartbeats, 7);
        assert_eq!(s.heartbeat_acks_dropped, 2);
        // Held: the 2nd and 4th of the first connection, the 2nd of the second.
        assert_eq!(s.heartbeat_acks_held, 3);
        assert_eq!(s.heartbeat_hold_ms.count, 3);
        assert!(s.heartbeat_hold_ms.min.unwrap() >= 30.0, "{s:?}");
        assert_eq!(s.close_codes.get(&1005), Some(&2));
    }

    #[tokio::test]
    async fn when_full_the_oldest_handshake_makes_room_and_served_connections_never_do() {
        let listener = bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let server = tokio::spawn(run(
            listener,
            ServerConfig {
                faults: Faults::default(),
                tls: None,
                limits,
            },
            stats.clone(),
            stop.clone().cancelled_owned(),
        ));
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp).await
        };
        let closed_at_once = |mut tcp: tokio::net::TcpStream| async move {
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
            matches!(read, Ok(Ok(0)) | Ok(Err(_)))
        };
        use tokio::io::AsyncReadExt as _;
        // One served connection, one silent TCP connection: full.
        let (mut served, _) = connect().await.unwrap();
        let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A real client still gets in: the silent one, still in its handshake, makes room.
        let (mut second, _) = connect().await.unwrap();
        assert!(closed_at_once(silent).await);
        // Now both are served: a newcomer is refused, and the served ones stay.
        let newcomer = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(closed_at_once(newcomer).await);
        for ws in [&mut served, &mut second] {
            ws.send(Message::Text(r#"{"type":"heartBeat"}"#.into()))
                .await
                .unwrap();
            assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
        }
        stop.cancel();
        server.await.unwrap();
        let s = stats.snapshot();
        assert_eq!((s.evicted, s.refused, s.connections), (1, 1, 2));
        assert_eq!((s.handshake_failed, s.handshake_timeouts), (0, 0));
    }

    #[tokio::test]
    async fn shared_listeners_bind_one_port_and_a_plain_one_does_not() {
        let first = bind_shared(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_shared(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        assert!(bind(addr).is_err());
    }

    #[test]
    fn heartbeat_acks_echo_a_sequence_number() {
        assert_eq!(
            heartbeat_ack(r#"{"type":"heartBeat","seq":"17"}"#).as_str(),
            r#"{"msgType":"heartBeat_ack","seq":"17"}"#
        );
        assert_eq!(
            heartbeat_ack(r#"{"type":"heartBeat","seq":18}"#).as_str(),
            r#"{"msgType":"heartBeat_ack","seq":18}"#
        );
        assert_eq!(
            heartbeat_ack(r#"{"type":"heartBeat","seq":{"x":1}}"#).as_str(),
            HEARTBEAT_ACK
        );
        assert_eq!(
            heartbeat_ack(r#"{"type":"heartBeat","msg":"this is heatbeat"}"#).as_str(),
            HEARTBEAT_ACK
        );
    }

    #[test]
    fn replies_follow_the_protocol() {
        let stats = Stats::default();
        let faults = Faults::default();
        let reply = |message: &str| {
            answer(message, &faults, &stats).map(|a| a.text(message).as_str().to_owned())
        };
        assert_eq!(reply(r#"{"type":"auth","token":"x"}"#).unwrap(), AUTH_ACK);
        assert_eq!(reply(r#"{"type":"bindCard"}"#).unwrap(), BIND_CARD_ACK);
        assert_eq!(
            reply(r#"{"type":"heartBeat","msg":"this is heatbeat"}"#).unwrap(),
            HEARTBEAT_ACK
        );
        assert_eq!(reply("not json").unwrap(), UNKNOWN);
        assert_eq!(reply(r#"{"type":"pushAck"}"#), None);
        // Any other step is acknowledged after its own type.
        let ack: serde_json::Value =
            serde_json::from_str(&reply(r#"{"type":"subscribe","store":"s1"}"#).unwrap()).unwrap();
        assert_eq!(
            ack,
            serde_json::json!({"msgType": "subscribe_ack", "code": "200", "success": true})
        );
        let s = stats.snapshot();
        assert_eq!(
            (s.auth_ok, s.bind_card, s.heartbeats, s.unknown),
            (1, 1, 1, 1)
        );
        let by_type: Vec<(&str, u64)> = s
            .messages_by_type
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            by_type,
            vec![
                ("auth", 1),
                ("bindCard", 1),
                ("heartBeat", 1),
                ("pushAck", 1),
                ("subscribe", 1)
            ]
        );
    }

    #[test]
    fn message_types_are_counted_up_to_a_bound() {
        let stats = Stats::default();
        let faults = Faults::default();
        for i in 0..(MAX_KEYS + 10) {
            answer(&format!(r#"{{"type":"t{i}"}}"#), &faults, &stats);
        }
        let s = stats.snapshot();
        assert_eq!(s.messages_by_type.len(), MAX_KEYS);
        assert_eq!(s.messages_by_type_over_cap, 10);
    }
}
