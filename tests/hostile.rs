//! Hostile servers and hostile clients, end to end.
//!
//! The servers here are raw sockets written in the test, not the reference server: each
//! misbehaves in one way the reference server never would (drops without a close frame,
//! stalls, garbage framing, an oversized frame, a handshake never finished, a restart on
//! the same port, bad data). A real `wsoak run` drives them; every fault must be counted
//! under its own error kind, exactly where the server's own count makes that knowable,
//! the run must end on time, and its report must validate against the committed schema.
//!
//! The run's first session connects alone and a failed first connect ends the run (exit
//! 2, by design), so every server answers its first connection properly and misbehaves
//! after the handshake, or only on later connections.
//!
//! The last test turns it around: a flood of idle TCP connections against `wsoak serve`,
//! which must close them by its timeouts and cap, and still serve a real run afterwards.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wsoak::report::Report;

mod common;

/// How long every hostile run lasts.
const DURATION: Duration = Duration::from_millis(1500);
/// The most a run may take past its duration: sessions close within the grace, and the
/// hostile servers answer close frames, so nothing should wait on a timeout.
const SLACK: Duration = Duration::from_millis(1500);

/// What one connection of a hostile server does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Speaks the protocol properly.
    Fine,
    /// Closes TCP without a close frame when the 2nd heartbeat arrives.
    Drop,
    /// Answers auth and bindCard, then reads every heartbeat and answers none.
    Stall,
    /// Sends bytes that are no WebSocket frame when the 2nd heartbeat arrives.
    Garbage,
    /// Sends a frame header announcing 2 MiB (the client accepts 1 MiB) at the 2nd
    /// heartbeat.
    Oversize,
    /// Sends a text frame that is not UTF-8 at the 2nd heartbeat.
    BadUtf8,
    /// Sends a text message that is not JSON before the auth ack and after the bindCard
    /// ack, then speaks the protocol properly.
    NotJson,
    /// Reads the upgrade request and never answers it.
    NoHandshake,
}

/// What a hostile server counted, at the moment it acted.
#[derive(Debug, Default)]
struct Counts {
    /// TCP connections accepted.
    accepted: AtomicU64,
    /// Upgrades answered with 101.
    handshakes: AtomicU64,
    /// Times the connection's fault was carried out (one per misbehaving connection).
    faults: AtomicU64,
    /// Heartbeats read and never answered (`Stall`).
    unanswered: AtomicU64,
    /// Close frames received from the client.
    closes: AtomicU64,
}

impl Counts {
    fn get(&self, counter: fn(&Counts) -> &AtomicU64) -> u64 {
        counter(self).load(SeqCst)
    }
}

/// A hostile server on its own thread and runtime (the run under test builds its own).
struct Hostile {
    addr: SocketAddr,
    /// Sending (or dropping) it stops the server and drops every connection at once.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    /// Starts a server on `addr` (port 0: any) whose n-th connection (from 1) does
    /// `mode(n)`, counting into `counts`.
    fn start(addr: SocketAddr, counts: Arc<Counts>, mode: fn(u64) -> Mode) -> Hostile {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let thread = {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let socket = TcpSocket::new_v4().unwrap();
                    // The restart case listens again on the port it just left.
                    socket.set_reuseaddr(true).unwrap();
                    socket.bind(addr).unwrap();
                    let listener: TcpListener = socket.listen(1024).unwrap();
                    bound_tx.send(listener.local_addr().unwrap()).unwrap();
                    let serving = async {
                        let mut tasks = tokio::task::JoinSet::new();
                        loop {
                            let Ok((tcp, _)) = listener.accept().await else {
                                continue;
                            };
                            let n = counts.accepted.fetch_add(1, SeqCst) + 1;
                            tasks.spawn(connection(tcp, mode(n), counts.clone()));
                        }
                    };
                    // Returning drops the listener and every connection task (and so
                    // its socket): to a client, the server went away without a word.
                    tokio::select! {
                        _ = serving => {}
                        _ = stopped => {}
                    }
                });
            })
        };
        Hostile {
            addr: bound_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Stops the server: the listener and every connection are dropped.
    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop();
    }
}

const AUTH_ACK: &str = r#"{"msgType":"auth_ack","code":"200","success":true}"#;
const BIND_CARD_ACK: &str = r#"{"msgType":"bindCard_ack","code":"200","success":true}"#;
const HEARTBEAT_ACK: &str = r#"{"msgType":"heartBeat_ack"}"#;

/// One connection of a hostile server.
async fn connection(mut tcp: TcpStream, mode: Mode, counts: Arc<Counts>) {
    let Some(key) = read_upgrade(&mut tcp).await else {
        return;
    };
    if mode == Mode::NoHandshake {
        counts.faults.fetch_add(1, SeqCst);
        // Hold the socket, unanswered, until the client gives up on it.
        let mut sink = [0u8; 512];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if tcp.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    counts.handshakes.fetch_add(1, SeqCst);
    let mut heartbeats = 0u64;
    let mut stalled = false;
    while let Some((opcode, payload)) = read_frame(&mut tcp).await {
        let text = String::from_utf8_lossy(&payload);
        let reply = match opcode {
            0x8 => {
                counts.closes.fetch_add(1, SeqCst);
                let _ = tcp.write_all(&[0x88, 0x02, 0x03, 0xe8]).await;
                return;
            }
            0x1 if text.contains(r#""type":"auth""#) => {
                if mode == Mode::NotJson {
                    counts.faults.fetch_add(1, SeqCst);
                    let _ = tcp.write_all(&text_frame(b"welcome!")).await;
                }
                AUTH_ACK
            }
            0x1 if text.contains(r#""type":"bindCard""#) => {
                let _ = tcp.write_all(&text_frame(BIND_CARD_ACK.as_bytes())).await;
                match mode {
                    Mode::NotJson => {
                        counts.faults.fetch_add(1, SeqCst);
                        let _ = tcp.write_all(&text_frame(b"<html>bound</html>")).await;
                    }
                    Mode::Stall => {
                        counts.faults.fetch_add(1, SeqCst);
                        stalled = true;
                    }
                    _ => {}
                }
                continue;
            }
            0x1 if text.contains(r#""type":"heartBeat""#) => {
                heartbeats += 1;
                if stalled {
                    counts.unanswered.fetch_add(1, SeqCst);
                    continue;
                }
                if heartbeats == 2 {
                    let hostile: Option<Vec<u8>> = match mode {
                        Mode::Drop => {
                            counts.faults.fetch_add(1, SeqCst);
                            return; // dropping the socket: FIN, no close frame
                        }
                        // 0xde: FIN, two reserved bits set, a reserved control opcode.
                        Mode::Garbage => Some(b"\xde\xad\xbe\xef garbage".to_vec()),
                        // A text frame of 2 MiB, announced with the 64-bit length; the
                        // client must refuse it from the header alone.
                        Mode::Oversize => {
                            let mut header = vec![0x81, 127];
                            header.extend_from_slice(&(2u64 << 20).to_be_bytes());
                            Some(header)
                        }
                        Mode::BadUtf8 => Some(text_frame(b"{\"msgType\":\"\xff\xfe\"}")),
                        _ => None,
                    };
                    if let Some(bytes) = hostile {
                        if tcp.write_all(&bytes).await.is_ok() {
                            counts.faults.fetch_add(1, SeqCst);
                        }
                        continue;
                    }
                }
                HEARTBEAT_ACK
            }
            _ => continue,
        };
        if tcp.write_all(&text_frame(reply.as_bytes())).await.is_err() {
            return;
        }
    }
}

/// Reads an HTTP upgrade request; returns its `Sec-WebSocket-Key`.
async fn read_upgrade(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    })
}

/// Reads one client frame (masked, as clients' are); returns its opcode and payload.
async fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7f {
        126 => u64::from(tcp.read_u16().await.ok()?),
        127 => tcp.read_u64().await.ok()?,
        n => u64::from(n),
    };
    if len > 1 << 20 {
        return None;
    }
    let mut mask = [0u8; 4];
    if head[1] & 0x80 != 0 {
        tcp.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; len as usize];
    tcp.read_exact(&mut payload).await.ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((head[0] & 0x0f, payload))
}

/// An unmasked text frame, as servers send (payloads here are under 126 bytes).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// A server-less scenario: the target comes from `--target`.
fn scenario(dir: &tempfile::TempDir, sessions: u32) -> PathBuf {
    let text = format!(
        "name: hostile\nsessions: {sessions}\nramp_up: 0s\nconnect: {{timeout: 300ms}}\n\
         reconnect: {{delay: 50ms}}\n{}  max_failures: 2\n",
        common::FLOW
    );
    let path = dir.path().join("hostile.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `sessions` sessions against `url` for [`DURATION`]; checks that the run ended on
/// time and that its report is complete (validates against the committed schema, every
/// error kind present, connects adding up).
fn run_against(url: &str, sessions: u32) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(&dir, sessions);
    let report = dir.path().join("report.json");
    let started = Instant::now();
    let output = common::run(&[
        path.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--target",
        url,
        "--duration",
        &format!("{}ms", DURATION.as_millis()),
    ])
    .unwrap();
    let took = started.elapsed();
    assert!(
        took >= DURATION && took <= DURATION + SLACK,
        "the run took {took:?}"
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(common::schema::errors_of(&written), Vec::<String>::new());
    let r = output.report;
    for kind in wsoak::metrics::ErrorKind::ALL {
        assert!(
            r.errors.contains_key(kind.name()),
            "{} missing",
            kind.name()
        );
    }
    assert_eq!(
        r.connects.attempted,
        r.connects.succeeded + r.connects.failed
    );
    assert_eq!(r.sessions.started, u64::from(sessions));
    assert!(!r.interrupted);
    r
}

/// The error kinds a hostile server can cause, besides heartbeat timeouts (which a busy
/// test machine can add on its own): each case expects its own and none of the others.
const FAULT_KINDS: [&str; 9] = [
    "server_reset",
    "server_closed",
    "socket",
    "frame_too_large",
    "invalid_utf8",
    "invalid_json",
    "connect_timeout",
    "connect_refused",
    "handshake",
];

/// Checks that of [`FAULT_KINDS`] exactly `expected` were counted, in these numbers.
fn assert_faults(r: &Report, expected: &[(&str, u64)]) {
    for kind in FAULT_KINDS {
        let want = expected
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n);
        assert_eq!(r.errors[kind], want, "errors.{kind}: {:?}", r.errors);
    }
}

/// Sessions per case: few, so that every fault lands well inside the run.
const SESSIONS: u32 = 5;

/// A case where the first `SESSIONS` connections misbehave once their session is bound,
/// and every later one (the reconnects) is fine.
fn first_connections(mode: Mode) -> (Report, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let mode_of: fn(u64) -> Mode = match mode {
        Mode::Drop => |n| if n <= 5 { Mode::Drop } else { Mode::Fine },
        Mode::Stall => |n| if n <= 5 { Mode::Stall } else { Mode::Fine },
        Mode::Garbage => |n| if n <= 5 { Mode::Garbage } else { Mode::Fine },
        Mode::Oversize => |n| if n <= 5 { Mode::Oversize } else { Mode::Fine },
        Mode::BadUtf8 => |n| if n <= 5 { Mode::BadUtf8 } else { Mode::Fine },
        Mode::NotJson => |n| if n <= 5 { Mode::NotJson } else { Mode::Fine },
        other => panic!("{other:?} is not a first-connections case"),
    };
    let server = Hostile::start("127.0.0.1:0".parse().unwrap(), counts.clone(), mode_of);
    let r = run_against(&server.url(), SESSIONS);
    drop(server);
    (r, counts)
}

/// Checks a case where each session lost its first connection once, to `cause`.
fn assert_one_loss_each(r: &Report, counts: &Counts, cause: &str) {
    assert_eq!(counts.get(|c| &c.faults), 5);
    assert_eq!(r.reconnects.by_cause[cause], 5, "{:?}", r.reconnects);
    assert_eq!(r.reconnects.total, 5, "{:?}", r.reconnects);
    // Every session came back and was bound again, on a connection the server counted.
    assert_eq!(r.latency_ms["reconnect"].count, 5);
    assert_eq!(r.sessions.bound, 5);
    assert_eq!(r.connects.succeeded, counts.get(|c| &c.handshakes));
    assert_eq!(r.connects.succeeded, 10);
}

#[test]
fn a_connection_dropped_without_a_close_frame_is_a_server_reset() {
    let (r, counts) = first_connections(Mode::Drop);
    assert_faults(&r, &[("server_reset", 5)]);
    assert_one_loss_each(&r, &counts, "server_close");
}

#[test]
fn a_stalled_server_is_heartbeat_timeouts_then_one_reconnect() {
    let (r, counts) = first_connections(Mode::Stall);
    assert_faults(&r, &[]);
    // max_failures 2: the third failed heartbeat ends the connection. The server read
    // every one of them and answered none.
    assert_eq!(counts.get(|c| &c.unanswered), 15);
    assert!(r.errors["heartbeat_timeout"] >= 15, "{:?}", r.errors);
    assert_one_loss_each(&r, &counts, "heartbeat");
    // The client said goodbye with a close frame to each stalled connection it gave up
    // (5) and to each next connection at the stop (5).
    assert_eq!(counts.get(|c| &c.closes), 10);
}

#[test]
fn garbage_framing_is_a_socket_error() {
    let (r, counts) = first_connections(Mode::Garbage);
    assert_faults(&r, &[("socket", 5)]);
    assert_one_loss_each(&r, &counts, "socket_error");
}

#[test]
fn an_oversized_frame_is_frame_too_large() {
    let (r, counts) = first_connections(Mode::Oversize);
    assert_faults(&r, &[("frame_too_large", 5)]);
    assert_one_loss_each(&r, &counts, "socket_error");
}

#[test]
fn a_text_message_that_is_not_utf8_is_invalid_utf8() {
    let (r, counts) = first_connections(Mode::BadUtf8);
    assert_faults(&r, &[("invalid_utf8", 5)]);
    assert_one_loss_each(&r, &counts, "socket_error");
}

#[test]
fn messages_that_are_not_json_count_while_authenticating_and_while_bound() {
    let (r, counts) = first_connections(Mode::NotJson);
    // One before each auth ack, one after each bindCard ack; the socket is kept.
    assert_eq!(counts.get(|c| &c.faults), 10);
    assert_faults(&r, &[("invalid_json", 10)]);
    assert_eq!(r.reconnects.total, 0, "{:?}", r.reconnects);
    assert_eq!(r.messages.unmatched, 10);
    assert_eq!(r.connects.succeeded, 5);
    assert_eq!(r.sessions.bound, 5);
}

#[test]
fn a_handshake_never_answered_is_a_connect_timeout() {
    let counts = Arc::new(Counts::default());
    // The first connection (the run's first session, which connects alone) is fine; the
    // next four are never answered; then every one is fine again.
    let mode_of: fn(u64) -> Mode = |n| {
        if (2..=5).contains(&n) {
            Mode::NoHandshake
        } else {
            Mode::Fine
        }
    };
    let server = Hostile::start("127.0.0.1:0".parse().unwrap(), counts.clone(), mode_of);
    let r = run_against(&server.url(), 3);
    drop(server);
    assert_eq!(counts.get(|c| &c.faults), 4);
    assert_faults(&r, &[("connect_timeout", 4)]);
    assert_eq!(r.connects.failed, 4);
    assert_eq!(r.connects.succeeded, 3);
    assert_eq!(r.connects.succeeded, counts.get(|c| &c.handshakes));
    // Sessions 1 and 2 each failed twice before connecting: one episode each.
    assert_eq!(r.reconnects.total, 2, "{:?}", r.reconnects);
    assert_eq!(r.reconnects.by_cause["connect_error"], 2);
    assert_eq!(r.sessions.bound, 3);
}

#[test]
fn a_server_restarted_on_the_same_port_is_one_reset_per_connection_then_refusals() {
    let counts = Arc::new(Counts::default());
    let mut first = Hostile::start("127.0.0.1:0".parse().unwrap(), counts.clone(), |_| {
        Mode::Fine
    });
    let addr = first.addr;
    let url = first.url();
    let runner = std::thread::spawn(move || run_against(&url, SESSIONS));
    std::thread::sleep(Duration::from_millis(500));
    first.stop();
    let before = counts.get(|c| &c.handshakes);
    // Down for 300 ms: each session retries every 50 ms and is refused.
    std::thread::sleep(Duration::from_millis(300));
    let again = Arc::new(Counts::default());
    let second = Hostile::start(addr, again.clone(), |_| Mode::Fine);
    let r = runner.join().unwrap();
    drop(second);
    assert_eq!(before, 5);
    assert_eq!(again.get(|c| &c.handshakes), 5);
    let refused = r.errors["connect_refused"];
    assert!(refused >= 5 * 3, "{:?}", r.errors);
    assert_faults(&r, &[("server_reset", 5), ("connect_refused", refused)]);
    assert_eq!(r.reconnects.total, 5, "{:?}", r.reconnects);
    assert_eq!(r.reconnects.by_cause["server_close"], 5);
    assert_eq!(r.connects.succeeded, 10);
    assert_eq!(r.connects.failed, refused);
    assert_eq!(r.latency_ms["reconnect"].count, 5);
}

/// `wsoak serve` with a small connection cap and short timeouts, flooded with idle TCP
/// connections and idle WebSocket connections: past the cap, the oldest connection still
/// in its handshake makes room, so real clients still get in during the flood; the
/// timeouts close the rest; each is counted exactly by the server, and a real run
/// afterwards binds every session.
#[test]
fn idle_connections_are_closed_by_the_timeouts_and_real_clients_still_bind() {
    const CAP: u64 = 1000;
    const IDLE_WS: u64 = 50;
    const FLOOD: u64 = 1500;
    const DURING: u64 = 10;
    // This process holds the flood's sockets itself: more than the common soft limit of
    // 1,024 open files, so raise it to the hard limit first, whatever ran before.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        assert!(
            limit.rlim_cur >= 2 * (FLOOD + IDLE_WS) + 200,
            "the flood needs more open files than the hard limit allows: {}",
            limit.rlim_cur
        );
    }
    let mut child = common::wsoak()
        .args([
            "serve",
            "--max-connections",
            &CAP.to_string(),
            "--handshake-timeout",
            "3s",
            "--idle-timeout",
            "3s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    // WebSocket clients that finish the upgrade and then say nothing.
    let mut idle = Vec::new();
    let mut upgraded = Vec::new();
    let mut upgrade = || {
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        idle.push(tcp.try_clone().unwrap());
        let (ws, _) = tokio_tungstenite::tungstenite::client(url.as_str(), tcp).unwrap();
        upgraded.push(ws);
    };
    for _ in 0..IDLE_WS {
        upgrade();
    }
    // TCP connections that never start a handshake: past the cap, each evicts the
    // oldest of them.
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // The server is full of idle connections, and real clients still get in.
    for _ in 0..DURING {
        upgrade();
    }
    // Every one is closed by the server: at once, or after its timeout.
    let waited = Instant::now();
    for mut tcp in idle.into_iter().chain(flood) {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let closed = loop {
            match tcp.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(
            closed,
            "a connection was still open after {:?}",
            waited.elapsed()
        );
    }
    assert!(waited.elapsed() < Duration::from_secs(8));
    drop(upgraded);

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("real.yaml");
    std::fs::write(
        &scenario,
        format!("name: real\nsessions: 200\nramp_up: 0s\n{}", common::FLOW),
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let r = common::run(&[
        scenario.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--target",
        &url,
        "--duration",
        "1s",
    ])
    .unwrap()
    .report;
    assert_eq!(r.sessions.bound, 200);

    // SIGTERM: the server stops and prints what it saw.
    // SAFETY: kill() only sends a signal to the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let stats: wsoak::server::ServerStats =
        serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    let idle_ws = IDLE_WS + DURING;
    assert_eq!(stats.idle_timeouts, idle_ws, "{stats:?}");
    // The flood past the cap, and each real client during it, evicted one flood socket.
    assert_eq!(stats.evicted, IDLE_WS + FLOOD - CAP + DURING, "{stats:?}");
    assert_eq!(stats.handshake_timeouts, CAP - idle_ws, "{stats:?}");
    // Nothing was refused: there was always a handshake to evict.
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert_eq!(stats.handshake_failed, 0);
    assert_eq!(stats.connections, idle_ws + r.connects.succeeded);
    assert_eq!(
        stats.peers["127.0.0.1"],
        idle_ws + FLOOD + r.connects.attempted
    );
}

/// A run's first connect against a `wss://` server with `certificate`, trusting it with
/// `--ca`: the report, or the error that stopped the run.
fn run_with_certificate(certificate: wsoak::server::SelfSigned) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &certificate.pem).unwrap();
    let server = wsoak::server::Embedded::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Default::default(),
        Some(certificate),
    )
    .unwrap();
    let path = scenario(&dir, 2);
    let report = dir.path().join("report.json");
    let result = common::run(&[
        path.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--target",
        &server.url(),
        "--ca",
        ca.to_str().unwrap(),
        "--duration",
        "300ms",
    ]);
    drop(server);
    result.map(|output| output.report)
}

fn certificate(names: &[&str], is_ca: rcgen::IsCa) -> wsoak::server::SelfSigned {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.is_ca = is_ca;
    wsoak::server::SelfSigned::from_params(params).unwrap()
}

#[test]
fn tls_failures_name_their_real_cause() {
    // A self-signed CA certificate as the server's own (what `openssl req -x509` makes by
    // default): --ca cannot fix it, so the hint must not send people back to --ca.
    let ca_flagged = certificate(
        &["localhost", "127.0.0.1"],
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
    );
    let message = format!("{:#}", run_with_certificate(ca_flagged).unwrap_err());
    assert!(message.contains("is a CA certificate"), "{message}");
    assert!(message.contains("CA:FALSE"), "{message}");
    assert!(!message.contains("pass --ca FILE"), "{message}");

    // The leaf the hint recommends (the same, with CA:FALSE) works with --ca.
    let leaf = certificate(&["localhost", "127.0.0.1"], rcgen::IsCa::ExplicitNoCa);
    let r = run_with_certificate(leaf).unwrap();
    assert_eq!(r.sessions.bound, 2);

    // A certificate for another name says which names it has.
    let elsewhere = certificate(&["example.test"], rcgen::IsCa::ExplicitNoCa);
    let message = format!("{:#}", run_with_certificate(elsewhere).unwrap_err());
    assert!(message.contains("example.test"), "{message}");
    assert!(message.contains("subjectAltName"), "{message}");
    assert!(!message.contains("pass --ca FILE"), "{message}");
}
