//! `wsoak run --shard I/N` and `wsoak merge`: one run spread over several processes (as
//! over several machines), merged back into one exact report.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::wsoak;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use wsoak::report::Report;
use wsoak::server::ServerStats;

/// 31 sessions (11 + 10 + 10 over three shards) that all bind and heartbeat every
/// 200 ms until the end.
fn scenario(dir: &Path) -> PathBuf {
    let path = dir.join("s.yaml");
    let flow = common::FLOW
        .replace("interval: 100ms", "interval: 200ms")
        .replace("timeout: 90ms", "timeout: 190ms");
    std::fs::write(
        &path,
        format!(
            "name: sharded\nsessions: 31\nramp_up: 300ms\nduration: 2500ms\n{flow}\
             thresholds:\n  - heartbeat.p99 < 2s\n  - sessions.bound >= 31\n"
        ),
    )
    .unwrap();
    path
}

/// `wsoak serve` on a free loopback port, and its URL.
fn serve() -> (
    Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
    String,
) {
    let mut server = wsoak()
        .args(["serve", "--listen", "127.0.0.1:0", "--duration", "60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect(&first)
        .to_string();
    (server, lines, url)
}

fn stop(
    mut server: Child,
    mut lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
) -> ServerStats {
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let stats = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(server.wait().unwrap().success());
    stats
}

fn merge(args: &[&Path], extra: &[&str]) -> Output {
    wsoak()
        .arg("merge")
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

fn read_report(path: &Path) -> Report {
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(common::schema::errors_of(&json), Vec::<String>::new());
    serde_json::from_str(&text).unwrap()
}

/// One histogram of every `tag` entry in the given latency logs, decoded here with the
/// hdrhistogram crate alone, not with wsoak's reader.
fn histogram_of(logs: &[PathBuf], tag: &str) -> Histogram<u64> {
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    let mut decoder = Deserializer::new();
    for log in logs {
        let bytes = std::fs::read(log).unwrap();
        for entry in IntervalLogIterator::new(&bytes) {
            let LogEntry::Interval(interval) = entry.unwrap() else {
                continue;
            };
            if interval.tag().map(|t| t.as_str()) != Some(tag) {
                continue;
            }
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(interval.encoded_histogram())
                .unwrap();
            let h: Histogram<u64> = decoder.deserialize(&mut raw.as_slice()).unwrap();
            all.add(&h).unwrap();
        }
    }
    all
}

/// Milliseconds as the report rounds them.
fn ms(us: u64) -> Option<f64> {
    Some((us as f64 / 1000.0 * 1000.0).round() / 1000.0)
}

#[test]
fn three_shards_merge_into_the_run_the_server_saw() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path());
    let (server, lines, url) = serve();
    // One start for all three, a little ahead, to the millisecond.
    let start = SystemTime::now() + Duration::from_millis(1500);
    let start = humantime::format_rfc3339_millis(start).to_string();
    let shard_dir = |i: usize| dir.path().join(format!("shard-{i}"));
    let children: Vec<Child> = (0..3)
        .map(|i| {
            wsoak()
                .arg("run")
                .arg(&path)
                .args(["--quiet", "--target", &url, "--start-at", &start])
                .args(["--metrics-listen", "127.0.0.1:0"])
                .args(["--shard", &format!("{i}/3"), "--report"])
                .arg(shard_dir(i).join("report.json"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stats = stop(server, lines);

    let shards: Vec<Report> = (0..3)
        .map(|i| read_report(&shard_dir(i).join("report.json")))
        .collect();
    // Each shard ran its exact share, counted from the one start.
    let planned: Vec<u64> = shards.iter().map(|r| r.sessions.planned).collect();
    assert_eq!(planned, vec![11, 10, 10]);
    for (i, r) in shards.iter().enumerate() {
        let shard = r.shard.as_ref().unwrap();
        assert_eq!((shard.index, shard.count), (i as u32, 3));
        assert_eq!(shard.start_at, start);
        assert_eq!(r.sessions.bound, planned[i]);
        // Its intervals end on the shared boundaries: interval k at (k + 1) s.
        let lines = wsoak::report::read_intervals(&shard_dir(i).join("intervals.jsonl")).unwrap();
        for line in &lines[..lines.len() - 1] {
            let due = (line.seq + 1) as f64;
            assert!(
                (line.t - due).abs() < 0.5,
                "shard {i}: interval {} at {} s",
                line.seq,
                line.t
            );
        }
    }

    // Their live metrics carry one run label, and each its own shard label, so that
    // Prometheus adds them up.
    let labels: Vec<String> = (0..3)
        .map(|i| {
            let text = std::fs::read_to_string(shard_dir(i).join("metrics.prom")).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("wsoak_build_info{"))
                .unwrap()
                .to_string();
            assert!(line.contains(&format!("shard=\"{i}\"")), "{line}");
            let run = line.split("run=\"").nth(1).unwrap();
            run[..run.find('"').unwrap()].to_string()
        })
        .collect();
    assert!(labels[0].starts_with("sharded-"), "{labels:?}");
    assert!(labels.iter().all(|l| *l == labels[0]), "{labels:?}");

    let merged_dir = dir.path().join("merged");
    let runs: Vec<PathBuf> = (0..3).map(shard_dir).collect();
    let run_refs: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
    let out = merge(&run_refs, &["--out", merged_dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("shards      3 of 3 merged"), "{summary}");
    let merged = read_report(&merged_dir.join("report.json"));

    // The merged counts are what the server saw.
    assert_eq!(merged.sessions.planned, 31);
    assert_eq!(merged.connects.succeeded, stats.connections);
    assert_eq!(stats.connections, 31);
    assert_eq!(merged.steps.get("auth").unwrap().accepted, stats.auth_ok);
    assert_eq!(
        merged.steps.get("bind_card").unwrap().reached,
        stats.bind_card
    );
    assert_eq!(merged.sessions.bound, 31);
    assert_eq!(merged.heartbeats.sent, stats.heartbeats);
    assert_eq!(merged.heartbeats.acked, stats.heartbeats);
    assert_eq!(merged.sessions.closed, 31);
    assert_eq!(merged.reconnects.total, 0);
    // And the sums of the shards' own reports.
    let sum = |f: fn(&Report) -> u64| shards.iter().map(f).sum::<u64>();
    assert_eq!(merged.heartbeats.sent, sum(|r| r.heartbeats.sent));
    assert_eq!(merged.messages.received, sum(|r| r.messages.received));
    let m = merged.merged.as_ref().unwrap();
    assert_eq!(
        (m.count, m.shards.clone(), m.missing.clone()),
        (3, vec![0, 1, 2], vec![])
    );
    assert!(
        merged.thresholds.iter().all(|v| v.pass),
        "{:?}",
        merged.thresholds
    );
    assert_eq!(
        merged.started_at,
        start.split('.').next().unwrap().to_string() + "Z"
    );

    // Percentiles: those of one histogram of all three shards' raw latency logs.
    let logs: Vec<PathBuf> = (0..3).map(|i| shard_dir(i).join("latency.hlog")).collect();
    let all = histogram_of(&logs, "heartbeat");
    let hb = &merged.latency_ms["heartbeat"];
    assert_eq!(hb.count, stats.heartbeats);
    assert_eq!(hb.count, all.len());
    assert_eq!(hb.p50, ms(all.value_at_quantile(0.5)));
    assert_eq!(hb.p90, ms(all.value_at_quantile(0.9)));
    assert_eq!(hb.p99, ms(all.value_at_quantile(0.99)));
    assert_eq!(hb.p999, ms(all.value_at_quantile(0.999)));
    assert_eq!(hb.max, ms(all.max()));
    assert_eq!(hb.min, ms(all.min()));
    // The merged run's own latency log holds the same histogram, and its interval log
    // the same counts.
    let again = histogram_of(&[merged_dir.join("latency.hlog")], "heartbeat");
    assert_eq!(again, all);
    let lines = wsoak::report::read_intervals(&merged_dir.join("intervals.jsonl")).unwrap();
    let sent: u64 = lines
        .iter()
        .map(|l| l.counts.get("heartbeats.sent").copied().unwrap_or(0))
        .sum();
    assert_eq!(sent, stats.heartbeats);
    assert_eq!(
        lines.iter().filter_map(|l| l.peak_active).max(),
        Some(merged.sessions.peak_active as i64)
    );
    let html = std::fs::read_to_string(merged_dir.join("report.html")).unwrap();
    assert!(html.contains("<th>shards</th><td>3 of 3 merged</td>"));
    // `wsoak report` reads the merged directory as any run's.
    let out = wsoak().arg("report").arg(&merged_dir).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A shard killed before it wrote its report merges from its logs: the same counts
    // and percentiles, and the run marked interrupted.
    let killed = dir.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    for file in ["run.json", "intervals.jsonl", "latency.hlog"] {
        std::fs::copy(runs[2].join(file), killed.join(file)).unwrap();
    }
    let rebuilt_dir = dir.path().join("rebuilt");
    let with_killed = [runs[0].as_path(), runs[1].as_path(), killed.as_path()];
    let out = merge(&with_killed, &["--out", rebuilt_dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = read_report(&rebuilt_dir.join("report.json"));
    assert!(rebuilt.interrupted && !merged.interrupted);
    assert_eq!(rebuilt.heartbeats, merged.heartbeats);
    assert_eq!(rebuilt.sessions.bound, merged.sessions.bound);
    assert_eq!(
        rebuilt.latency_ms["heartbeat"],
        merged.latency_ms["heartbeat"]
    );

    // Its logs cut short mid-line too (killed while writing): the lines before the
    // damage merge, and the damage is said.
    let text = std::fs::read_to_string(killed.join("intervals.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Cut in the middle of the last line but one: the last two are lost.
    let lost: u64 = lines[lines.len() - 2..]
        .iter()
        .map(|l| {
            let line: wsoak::report::IntervalLine = serde_json::from_str(l).unwrap();
            line.counts.get("heartbeats.sent").copied().unwrap_or(0)
        })
        .sum();
    assert!(lost > 0, "the lines cut hold heartbeats");
    let keep = text.len() - lines[lines.len() - 1].len() - 1 - lines[lines.len() - 2].len() / 2;
    std::fs::write(killed.join("intervals.jsonl"), &text[..keep]).unwrap();
    let hlog = std::fs::read_to_string(killed.join("latency.hlog")).unwrap();
    std::fs::write(killed.join("latency.hlog"), &hlog[..hlog.len() - 20]).unwrap();
    let out = merge(&with_killed, &["--out", rebuilt_dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged log"), "{err}");
    let cut = read_report(&rebuilt_dir.join("report.json"));
    assert_eq!(cut.heartbeats.sent, merged.heartbeats.sent - lost);

    // A missing shard: a clear error, exit 2, unless --allow-partial.
    let partial = dir.path().join("partial");
    let two = [runs[0].as_path(), runs[2].as_path()];
    let out = merge(&two, &["--out", partial.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shard 1 of 3 missing (merging shards 0, 2"),
        "{err}"
    );
    assert!(err.contains("--allow-partial"), "{err}");
    assert!(!partial.join("report.json").exists());
    let junit = dir.path().join("partial.xml");
    let out = merge(
        &two,
        &[
            "--out",
            partial.to_str().unwrap(),
            "--allow-partial",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    // 21 of 31 sessions bound: `sessions.bound >= 31` fails, as it should.
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("shards      2 of 3 merged  MISSING 1"),
        "{summary}"
    );
    let report = read_report(&partial.join("report.json"));
    let m = report.merged.unwrap();
    assert_eq!((m.shards, m.missing), (vec![0, 2], vec![1]));
    assert_eq!(report.sessions.bound, 21);
    // A CI server sees the gap: the `run` test case fails for it.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("partial: shards 1 of 3 are missing"), "{xml}");
    let html = std::fs::read_to_string(partial.join("report.html")).unwrap();
    assert!(html.contains("2 of 3 merged · <b>missing 1</b>"));

    // A shard of another run (another start), and a shard given twice: exit 2, each
    // named; with --allow-partial, left out and said why.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for file in ["report.json", "intervals.jsonl", "latency.hlog"] {
        std::fs::copy(runs[1].join(file), other.join(file)).unwrap();
    }
    let info = std::fs::read_to_string(runs[1].join("run.json")).unwrap();
    std::fs::write(
        other.join("run.json"),
        info.replace(&start, "2026-01-01T00:00:00Z"),
    )
    .unwrap();
    let odd = [
        runs[0].as_path(),
        other.as_path(),
        runs[2].as_path(),
        runs[2].as_path(),
    ];
    let out = merge(&odd, &["--out", partial.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("started at 2026-01-01T00:00:00Z, not"),
        "{err}"
    );
    assert!(err.contains("is shard 2 again"), "{err}");
    let out = merge(
        &odd,
        &["--out", partial.to_str().unwrap(), "--allow-partial"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = read_report(&partial.join("report.json"));
    let m = report.merged.unwrap();
    assert_eq!(
        (m.shards, m.missing, m.left_out.len()),
        (vec![0, 2], vec![1], 2)
    );
}

/// `--shard-count N` takes its index from the JOB_COMPLETION_INDEX a Kubernetes
/// Indexed Job sets; without it, or with a start so long past that the run is over,
/// nothing runs.
#[test]
fn a_shard_count_reads_the_job_completion_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        format!("sessions: 5\nduration: 600ms\n{}", common::FLOW),
    )
    .unwrap();
    let report = dir.path().join("k").join("report.json");
    let out = wsoak()
        .arg("run")
        .arg(&path)
        .args([
            "--quiet",
            "--shard-count",
            "3",
            "--start-in",
            "0s",
            "--report",
        ])
        .arg(&report)
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report);
    let shard = r.shard.unwrap();
    assert_eq!((shard.index, shard.count), (2, 3));
    // Sessions 2 (and no other: 5 is 2, 2, 1 over three shards).
    assert_eq!((r.sessions.planned, r.sessions.bound), (1, 1));
    assert_eq!(r.server.unwrap().connections, 1);

    let run = |env: Option<&str>, extra: &[&str]| {
        let mut cmd: Command = wsoak();
        cmd.arg("run")
            .arg(&path)
            .args(["--quiet", "--report"])
            .arg(&report)
            .args(extra);
        cmd.env_remove("JOB_COMPLETION_INDEX");
        if let Some(index) = env {
            cmd.env("JOB_COMPLETION_INDEX", index);
        }
        cmd.output().unwrap()
    };
    let out = run(None, &["--shard-count", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_COMPLETION_INDEX is not set"));
    let out = run(Some("3"), &["--shard-count", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("numbered 0 to 2"));
    let out = run(
        None,
        &["--shard", "0/2", "--start-at", "2020-01-01T00:00:00Z"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("it is over"));
}

/// The open model over three shards: their arrivals add up to the single run's, and
/// the cap is shared out exactly.
#[test]
fn open_model_shards_add_up_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        format!(
            "load:\n  arrival: {{rate: 20, max_sessions: 1000}}\nduration: 1s\n{}",
            common::FLOW
        ),
    )
    .unwrap();
    let due = |extra: &[&str], name: &str| {
        let report = dir.path().join(name).join("report.json");
        let out = wsoak()
            .arg("run")
            .arg(&path)
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
        let r = read_report(&report);
        (r.arrivals.due, r.sessions.planned)
    };
    let whole = due(&[], "whole");
    let parts: Vec<(u64, u64)> = (0..3)
        .map(|i| due(&["--shard", &format!("{i}/3")], &format!("s{i}")))
        .collect();
    assert_eq!(whole, (20, 1000));
    assert_eq!(parts, vec![(7, 334), (7, 333), (6, 333)]);
}

/// A shard that runs its share in worker processes: the workers deal the shard's ids
/// among themselves, and count from the same start.
#[test]
fn a_shard_in_worker_processes_runs_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        format!(
            "sessions: 40\nramp_up: 300ms\nduration: 2s\n{}",
            common::FLOW
                .replace("interval: 100ms", "interval: 200ms")
                .replace("timeout: 90ms", "timeout: 190ms")
        ),
    )
    .unwrap();
    let report = dir.path().join("w").join("report.json");
    let out = wsoak()
        .arg("run")
        .arg(&path)
        .args([
            "--quiet",
            "--shard",
            "1/3",
            "--workers",
            "2",
            "--shards",
            "2",
        ])
        .args(["--start-in", "1s", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report);
    let server = r.server.as_ref().unwrap();
    // Sessions 1, 4, 7, …, 37: 13 of 40.
    assert_eq!((r.sessions.planned, r.sessions.bound), (13, 13));
    assert_eq!(server.connections, 13);
    assert_eq!(r.heartbeats.sent, server.heartbeats);
    assert_eq!(r.tester.workers, 2);
    let lines =
        wsoak::report::read_intervals(&dir.path().join("w").join("intervals.jsonl")).unwrap();
    for line in &lines[..lines.len() - 1] {
        let due = (line.seq + 1) as f64;
        assert!(
            (line.t - due).abs() < 0.5,
            "interval {} at {} s",
            line.seq,
            line.t
        );
    }
}
