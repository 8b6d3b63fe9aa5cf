//! `wsoak serve --workers N`: several processes of the real binary on one port. Their
//! summed exit line agrees with a client's report exactly, and no worker outlives the
//! process that started it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsoak::report::Report;
use wsoak::server::ServerStats;

mod common;
use common::{wsoak, FLOW};

/// A `wsoak serve --workers` process, its stdout and stderr read line by line.
struct Server {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    /// `ws://127.0.0.1:PORT/`.
    url: String,
    /// Every process's pid, this one first (from its `workers: N processes, pids …`).
    pids: Vec<u32>,
}

/// Sends every line `from` reads, on a thread of its own, until it closes.
fn lines(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line, waiting at most 20 s.
fn next(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a line within 20s")
}

/// Lines until the one that starts with `prefix`, returning the rest of it.
fn until(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    for _ in 0..20 {
        let line = next(lines);
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    panic!("no line starting with {prefix:?}");
}

impl Server {
    /// Starts `wsoak serve --workers N` on an ephemeral loopback port and waits until it
    /// says it listens.
    fn start(workers: u16) -> Server {
        let mut child = wsoak()
            .args(["serve", "--listen", "127.0.0.1:0", "--duration", "60s"])
            .args(["--workers", &workers.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let url = until(&stdout, "listening on ");
        assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
        let listed = until(&stderr, &format!("workers: {workers} processes, pids "));
        let pids: Vec<u32> = listed.split(' ').map(|p| p.parse().unwrap()).collect();
        assert_eq!(pids.len(), usize::from(workers));
        assert_eq!(pids[0], child.id());
        Server {
            child,
            stdout,
            stderr,
            url,
            pids,
        }
    }

    fn signal(&self, pid: u32, signal: libc::c_int) {
        assert!(self.pids.contains(&pid));
        // SAFETY: kill() only sends a signal, to a process this test started (directly
        // or through the server).
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// Whether process `pid` still runs: it exists and is not a zombie (exited, waiting for
/// whoever adopted it to reap it, as a container's init may never do).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S …`: the state follows the last `)`.
    let state = stat.rsplit_once(')').unwrap().1.trim_start();
    !state.starts_with(['Z', 'X'])
}

/// Waits up to 10 s for every one of `pids` to stop running.
fn all_gone_within_10s(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !pids.iter().any(|p| running(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn write_scenario(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("scenario.yaml");
    std::fs::write(
        &path,
        format!("name: workers\nsessions: 200\nramp_up: 0s\nduration: 1500ms\n{FLOW}"),
    )
    .unwrap();
    path
}

/// 200 sessions against two processes on one port: the kernel spreads the sessions over
/// both, and the one exit line sums what both saw, exactly as the client counted it.
#[test]
fn two_workers_share_one_port_and_their_counts_sum_exactly() {
    let mut server = Server::start(2);
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let out = wsoak()
        .arg("run")
        .arg(write_scenario(dir.path()))
        .args(["--quiet", "--target", &server.url, "--report"])
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();

    // The sessions closed politely before this: every count is final.
    server.signal(server.child.id(), libc::SIGTERM);
    let line = next(&server.stdout);
    assert!(server.child.wait().unwrap().success());
    let stats: ServerStats = serde_json::from_str(&line).unwrap();
    let exit: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(exit["workers"], 2, "{line}");
    assert_eq!(stats.connections, 200);
    assert_eq!(stats.auth_ok, 200);
    assert_eq!(stats.bind_card, 200);
    assert_eq!(report.sessions.bound, 200);
    assert_eq!(stats.heartbeats, report.heartbeats.sent);
    assert_eq!(stats.messages_by_type["heartBeat"], report.heartbeats.sent);
    assert_eq!(stats.close_codes.get(&1000), Some(&200));
    assert_eq!(stats.peers.values().sum::<u64>(), 200);
    // The same keys as a single server's line, and `workers`.
    let single = serde_json::to_value(ServerStats::default()).unwrap();
    let keys: Vec<&str> = single
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .chain(["workers"])
        .collect();
    let got: Vec<&str> = exit
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, keys);

    // Both processes served: each one's connections, this one first.
    let each: Vec<u64> = until(&server.stderr, "workers: connections ")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(each.len(), 2);
    assert_eq!(each.iter().sum::<u64>(), 200);
    assert!(each.iter().all(|n| *n > 0), "{each:?}");
    assert!(!server.pids.iter().any(|p| running(*p)));
}

/// SIGKILL leaves the server no chance to stop its workers: the kernel's parent-death
/// signal and the closed pipe stop them instead.
#[test]
fn killing_the_server_leaves_no_worker_running() {
    let mut server = Server::start(3);
    let workers = server.pids[1..].to_vec();
    assert!(workers.iter().all(|p| running(*p)));
    server.signal(server.child.id(), libc::SIGKILL);
    server.child.wait().unwrap();
    assert!(all_gone_within_10s(&workers), "{workers:?} still run");
}

/// A worker that dies is named, the server goes on with the others, and it still prints
/// their sum, with exit code 3: the sum lacks the dead worker's counts.
#[test]
fn a_dead_worker_is_named_and_the_others_summed() {
    let mut server = Server::start(3);
    let dead = server.pids[2];
    server.signal(dead, libc::SIGKILL);
    let said = until(&server.stderr, "wsoak serve: worker 3 exited with ");
    assert!(said.contains("SIGKILL"), "{said}");
    assert!(said.contains("the exit line sums the others"), "{said}");
    // Still serving: a client is answered by one of the two left.
    let dir = tempfile::tempdir().unwrap();
    let out = wsoak()
        .arg("run")
        .arg(write_scenario(dir.path()))
        .args(["--quiet", "--sessions", "10", "--duration", "300ms"])
        .args(["--target", &server.url, "--report"])
        .arg(dir.path().join("report.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.signal(server.child.id(), libc::SIGTERM);
    let line = next(&server.stdout);
    assert_eq!(server.child.wait().unwrap().code(), Some(3));
    let stats: ServerStats = serde_json::from_str(&line).unwrap();
    assert_eq!(stats.connections, 10);
    let each = until(&server.stderr, "workers: connections ");
    assert!(each.ends_with(" ?"), "{each}");
    assert!(!server.pids.iter().any(|p| running(*p)));
}
