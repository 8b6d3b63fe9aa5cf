//! Load shapes and soak operation, end to end against the in-process reference server:
//! stages, arrival rates, churn, the interval log, thresholds, signals and the live view.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use wsoak::report::{IntervalLine, Report};

mod common;
use common::{wsoak, FLOW};

fn write_scenario(dir: &Path, head: &str) -> PathBuf {
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, format!("{head}\n{FLOW}")).unwrap();
    path
}

fn run(dir: &Path, head: &str, extra: &[&str]) -> (Report, Vec<IntervalLine>) {
    let path = write_scenario(dir, head);
    let report = dir.join("report.json");
    let mut argv = vec![path.to_str().unwrap(), "--report", report.to_str().unwrap()];
    argv.extend_from_slice(extra);
    let out = common::run(&argv).unwrap();
    (out.report, read_intervals(&out.intervals))
}

fn read_intervals(path: &Path) -> Vec<IntervalLine> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn stages_ramp_up_hold_and_down_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, lines) = run(
        dir.path(),
        "load:\n  stages:\n    - {duration: 400ms, target: 40}\n    - {duration: 400ms, target: 40}\n    - {duration: 400ms, target: 0}\nduration: 1500ms",
        &["--interval", "250ms"],
    );
    let server = r.server.as_ref().unwrap();
    // Each of the 40 slots starts once and is stopped once by the ramp down, politely.
    assert_eq!(r.sessions.planned, 40);
    assert_eq!(r.arrivals.due, 40);
    assert_eq!(r.sessions.started, 40);
    assert_eq!(server.connections, 40);
    assert_eq!(r.sessions.left, 40);
    assert_eq!(server.close_codes.get(&1000), Some(&40));
    assert_eq!(r.sessions.peak_active, 40);
    // The interval log shows the ramp: nobody is bound at the end.
    let last = lines.last().unwrap();
    assert_eq!(last.states["bound"], 0, "{last:?}");
    let most = lines.iter().map(|l| l.states["bound"]).max().unwrap();
    assert_eq!(most, 40);
    let started: u64 = lines
        .iter()
        .map(|l| l.counts.get("sessions.started").copied().unwrap_or(0))
        .sum();
    assert_eq!(started, 40, "intervals add up to the total");
}

#[test]
fn arrival_rate_gives_the_expected_number_of_arrivals() {
    let dir = tempfile::tempdir().unwrap();
    // 40 arrivals per second for 1 s, each page staying 200 ms and not coming back.
    let (r, _) = run(
        dir.path(),
        "load:\n  arrival: {rate: 40, stages: [{duration: 1s, rate: 40}, {duration: 0s, rate: 0}], max_sessions: 100}\nduration: 1400ms\nchurn: {dwell: 200ms}",
        &[],
    );
    let server = r.server.as_ref().unwrap();
    assert_eq!(r.arrivals.due, 40);
    assert_eq!(r.arrivals.dropped, 0);
    assert_eq!(server.connections, 40);
    assert_eq!(r.sessions.left, 40);
    assert_eq!(server.close_codes.get(&1000), Some(&40));
    assert!(r.sessions.peak_active <= 12, "{}", r.sessions.peak_active);
}

#[test]
fn arrivals_beyond_the_cap_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // 50/s for 1 s, pages stay for the whole run, at most 10 at once.
    let (r, _) = run(
        dir.path(),
        "load:\n  arrival: {rate: 50, stages: [{duration: 1s, rate: 50}, {duration: 0s, rate: 0}], max_sessions: 10}\nduration: 1200ms",
        &[],
    );
    assert_eq!(r.arrivals.due, 50);
    assert_eq!(r.arrivals.dropped, 40);
    assert_eq!(r.sessions.started, 10);
    assert_eq!(r.server.as_ref().unwrap().connections, 10);
}

#[test]
fn churned_pages_leave_with_1000_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = run(
        dir.path(),
        "sessions: 10\nduration: 1200ms\nchurn: {dwell: 250ms, away: 100ms}",
        &[],
    );
    let server = r.server.as_ref().unwrap();
    assert!(r.sessions.left >= 20, "{:?}", r.sessions);
    assert!(r.sessions.returned >= 20, "{:?}", r.sessions);
    // Every visit is a connection; every leave and the final stop close with 1000.
    assert_eq!(server.connections, r.connects.succeeded);
    assert_eq!(
        server.close_codes.get(&1000).copied().unwrap_or(0),
        r.sessions.closed
    );
    assert_eq!(r.sessions.started, 10, "returns keep their identity");
}

#[test]
fn hidden_pages_keep_their_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = run(
        dir.path(),
        "sessions: 10\nduration: 800ms\nchurn: {dwell: 100ms, away: 100ms, hidden: 100%}",
        &[],
    );
    assert!(r.sessions.hidden >= 40, "{:?}", r.sessions);
    assert_eq!(r.sessions.left, 0);
    assert_eq!(r.server.as_ref().unwrap().connections, 10);
}

#[test]
fn abort_on_fail_ends_the_run_early() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (r, _) = run(
        dir.path(),
        "sessions: 5\nduration: 30s\nthresholds:\n  - {check: \"heartbeat.p99 < 1us\", abort_on_fail: true, delay: 300ms}",
        &["--interval", "100ms"],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r.aborted_by.as_deref(), Some("heartbeat.p99 < 1us"));
    assert!(!r.thresholds[0].pass);
}

#[test]
fn thresholds_set_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "sessions: 5\nduration: 500ms");
    let report = dir.path().join("r.json");
    let status = |check: &str| {
        wsoak()
            .args(["run", "--quiet"])
            .arg(&path)
            .arg("--report")
            .arg(&report)
            .args(["--threshold", check])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(status("sessions.bound / sessions.started >= 100%"), Some(0));
    assert_eq!(status("reconnects.total > 0"), Some(1));
    // The report is written either way, with the verdict.
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(!r.thresholds[0].pass);
    assert_eq!(status("heartbeat.p42 < 1s"), Some(2));
}

#[test]
fn sigterm_leaves_a_complete_report_and_interval_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "sessions: 20\nduration: 60s");
    let report = dir.path().join("report.json");
    let mut child = wsoak()
        .args(["run", "--quiet", "--interval", "200ms"])
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the run is under way (its handlers are installed by then), however
    // slow the machine.
    wait_for_an_interval(&dir.path().join("intervals.jsonl"));
    std::thread::sleep(Duration::from_millis(1000));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(r.interrupted);
    assert!(r.duration_s < 10.0);
    assert_eq!(r.sessions.bound, 20);
    assert_eq!(
        r.sessions.closed, 20,
        "graceful: every session closed with 1000"
    );
    let lines = read_intervals(&dir.path().join("intervals.jsonl"));
    assert!(lines.len() >= 5, "{} lines", lines.len());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.seq, i as u64);
    }
    let acked: u64 = lines
        .iter()
        .map(|l| l.counts.get("heartbeats.acked").copied().unwrap_or(0))
        .sum();
    assert_eq!(acked, r.heartbeats.acked, "the log adds up to the report");
}

/// Waits (up to 30 s) until a run has written its first interval line: its signal
/// handlers are installed by then.
fn wait_for_an_interval(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(path).map_or(true, |t| !t.contains('\n')) {
        assert!(
            std::time::Instant::now() < deadline,
            "no interval line in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_stops_gracefully_like_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "sessions: 10\nduration: 60s");
    let report = dir.path().join("report.json");
    let mut child = wsoak()
        .args(["run", "--quiet"])
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_an_interval(&dir.path().join("intervals.jsonl"));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(r.interrupted);
    assert!(r.duration_s < 10.0);
    assert_eq!(r.sessions.bound, 10);
    assert_eq!(r.sessions.closed, 10);
}

#[test]
fn closed_stdout_and_stderr_do_not_lose_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "sessions: 10\nduration: 1500ms");
    let report = dir.path().join("report.json");
    // Progress lines every 100 ms go to a stderr nobody reads any more, and the summary
    // to a closed stdout, as with `wsoak run … 2>&1 | head -1`.
    let mut child = wsoak()
        .args(["run", "--interval", "100ms"])
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(!r.interrupted);
    assert_eq!(r.sessions.bound, 10);
    assert_eq!(r.sessions.closed, 10);
    assert!(r.heartbeats.acked > 0);
    let lines = read_intervals(&dir.path().join("intervals.jsonl"));
    assert!(lines.len() >= 14, "{} lines", lines.len());
    assert!(dir.path().join("report.html").exists());
}

#[test]
fn without_a_terminal_progress_is_one_line_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "sessions: 5\nduration: 1100ms");
    let mut child = wsoak()
        .args(["run", "--interval", "250ms"])
        .arg(&path)
        .arg("--report")
        .arg(dir.path().join("r.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!(lines.len() >= 3, "{stderr}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("bound") && l.contains("p99")),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal escapes: {stderr:?}"
    );
}
