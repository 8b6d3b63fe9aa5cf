//! `wsoak run --workers`: sessions in worker processes, one report.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::wsoak;
use wsoak::report::Report;

/// A closed-model scenario whose counts are all knowable: every session connects, passes
/// both steps once and heartbeats until the end.
fn scenario(dir: &Path, sessions: u32, duration: &str) -> std::path::PathBuf {
    let path = dir.join("s.yaml");
    std::fs::write(
        &path,
        format!(
            "sessions: {sessions}\nduration: {duration}\n{}",
            common::FLOW
                .replace("interval: 100ms", "interval: 200ms")
                .replace("timeout: 90ms", "timeout: 190ms")
        ),
    )
    .unwrap();
    path
}

fn run(dir: &Path, name: &str, scenario: &Path, extra: &[&str]) -> (Output, Report) {
    let report = dir.join(name).join("report.json");
    let out = wsoak()
        .arg("run")
        .arg(scenario)
        .args(["--quiet", "--report"])
        .arg(&report)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(common::schema::errors_of(&json), Vec::<String>::new());
    (out, serde_json::from_str(&text).unwrap())
}

#[test]
fn two_workers_and_one_process_give_identical_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), 60, "1500ms");
    let (_, one) = run(
        dir.path(),
        "one",
        &path,
        &["--workers", "0", "--shards", "2"],
    );
    let (_, two) = run(
        dir.path(),
        "two",
        &path,
        &["--workers", "2", "--shards", "1"],
    );
    for r in [&one, &two] {
        let server = r.server.as_ref().unwrap();
        // Each run agrees exactly with the server it ran against.
        assert_eq!(server.connections, 60);
        assert_eq!(r.connects.succeeded, server.connections);
        assert_eq!(r.steps.get("auth").unwrap().accepted, server.auth_ok);
        assert_eq!(r.steps.get("bind_card").unwrap().reached, server.bind_card);
        assert_eq!(r.heartbeats.sent, server.heartbeats);
        assert_eq!(r.heartbeats.failed, 0);
        assert_eq!(r.sessions.closed, 60);
        assert_eq!(r.sessions.peak_active, 60);
        assert_eq!(r.tester.shards, 2);
    }
    assert_eq!((one.tester.workers, two.tester.workers), (0, 2));
    // And the two runs agree with each other wherever the counts are knowable.
    assert_eq!(one.sessions, two.sessions);
    assert_eq!(one.steps, two.steps);
    assert_eq!(one.connects, two.connects);
    assert_eq!(one.reconnects, two.reconnects);
    assert_eq!(one.errors, two.errors);
    assert_eq!(one.latency_ms["auth"].count, two.latency_ms["auth"].count);
    assert!(two.lost_workers.is_empty());
    assert_eq!(two.sessions.lost, 0);
}

/// The process ids of `parent`'s children.
fn children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: the command may hold spaces, the fields after it not.
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let ppid = after.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pid`.
fn signal(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Starts `wsoak run` with two workers on `sessions` sessions, its report in `dir/run`,
/// and waits until both workers run and every session is bound (the interval log says
/// so). Returns the parent and the workers' pids.
// The child is handed to the caller, which waits for it; clippy cannot follow it there.
#[allow(clippy::zombie_processes)]
fn start_bound(dir: &Path, sessions: u32, duration: &str) -> (std::process::Child, Vec<u32>) {
    let path = scenario(dir, sessions, duration);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsoak"))
        .arg("run")
        .arg(&path)
        .args(["--quiet", "--workers", "2", "--shards", "1", "--report"])
        .arg(dir.join("run").join("report.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let intervals = dir.join("run").join("intervals.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let workers = children(child.id());
        let bound = std::fs::read_to_string(&intervals)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["states"]["bound"] == sessions);
        if workers.len() == 2 && bound {
            return (child, workers);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("workers never ran: {workers:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_worker_is_reported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run").join("report.json");
    let (child, workers) = start_bound(dir.path(), 40, "4s");
    // Which worker holds which sessions does not matter: each holds 20.
    let victim = workers[1];
    signal("-KILL", victim);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // No threshold failed: the run's verdict is the thresholds', as usual.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("(pid {victim}) is gone")),
        "{stderr}"
    );
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r.lost_workers.len(), 1, "{:?}", r.lost_workers);
    let lost = &r.lost_workers[0];
    assert_eq!(lost.pid, victim);
    assert_eq!(lost.sessions, 20);
    assert!(lost.cause.contains("9"), "{}", lost.cause);
    assert_eq!(r.sessions.lost, 20);
    // The other worker's sessions ran to the end and closed politely.
    assert_eq!(r.sessions.closed, 20);
    // No process is left behind.
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the run");
    }
}

#[test]
fn workers_spread_over_the_source_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), 20, "600ms");
    let (_, r) = run(
        dir.path(),
        "run",
        &path,
        &[
            "--workers",
            "2",
            "--shards",
            "1",
            "--source-addrs",
            "127.0.0.1,127.0.0.2",
        ],
    );
    let peers = &r.server.as_ref().unwrap().peers;
    // Sessions pick their address by id, whatever worker runs them: 10 each.
    assert_eq!(peers.get("127.0.0.1"), Some(&10), "{peers:?}");
    assert_eq!(peers.get("127.0.0.2"), Some(&10), "{peers:?}");
}

#[test]
fn sigterm_on_the_parent_stops_every_worker_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run").join("report.json");
    let (child, workers) = start_bound(dir.path(), 30, "60s");
    let parent = child.id();
    let asked = Instant::now();
    signal("-TERM", parent);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(r.interrupted);
    // Every session, in both workers, closed politely and was counted.
    assert_eq!(r.sessions.closed, 30);
    assert_eq!(r.server.as_ref().unwrap().close_codes.get(&1000), Some(&30));
    assert!(r.lost_workers.is_empty(), "{:?}", r.lost_workers);
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the run");
    }
}

#[test]
fn workers_do_not_outlive_a_killed_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), 10, "60s");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsoak"))
        .arg("run")
        .arg(&path)
        .args([
            "--quiet",
            "--workers",
            "2",
            "--shards",
            "1",
            "--grace",
            "1s",
        ])
        .arg("--report")
        .arg(dir.path().join("run").join("report.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let parent = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers = loop {
        let workers = children(parent);
        if workers.len() == 2 {
            break workers;
        }
        assert!(Instant::now() < deadline, "workers never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    // They hear their parent go (a signal, and their pipe closing) and stop: within the
    // grace period and a little more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "workers outlived their parent: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn abort_thresholds_and_metrics_work_on_the_workers_merged_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        format!(
            "sessions: 20\nduration: 30s\nthresholds:\n  - {{check: \"heartbeats.acked > 1000000\", \
             abort_on_fail: true, delay: 800ms}}\n{}",
            common::FLOW
        ),
    )
    .unwrap();
    let started = Instant::now();
    let report = dir.path().join("run").join("report.json");
    let out = wsoak()
        .arg("run")
        .arg(&path)
        .args([
            "--quiet",
            "--workers",
            "2",
            "--shards",
            "1",
            "--interval",
            "200ms",
        ])
        .args(["--metrics-listen", "127.0.0.1:0", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r.aborted_by.as_deref(), Some("heartbeats.acked > 1000000"));
    assert_eq!(r.sessions.closed, 20);
    // The final exposition is the merged one: both workers' heartbeats.
    let prom = std::fs::read_to_string(dir.path().join("run").join("metrics.prom")).unwrap();
    let acked = format!(
        "wsoak_heartbeats_acked_total{{run=\"run\",scenario=\"s\",shard=\"0\"}} {}\n",
        r.heartbeats.acked
    );
    assert!(prom.contains(&acked), "{acked}");
    assert!(r.heartbeats.acked > 20, "{:?}", r.heartbeats);
    // intervals.jsonl adds up to the report.
    let sent: u64 = std::fs::read_to_string(dir.path().join("run").join("intervals.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| l["counts"]["heartbeats.sent"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(sent, r.heartbeats.sent);
}
