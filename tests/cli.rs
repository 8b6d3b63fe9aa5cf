//! The real binary: exit codes, messages, and `wsoak serve` as a separate process.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use wsoak::report::Report;
use wsoak::server::ServerStats;

mod common;
use common::wsoak;

#[test]
fn check_accepts_the_shipped_scenario() {
    let out = wsoak()
        .args(["check", "scenarios/miniprogram.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(
        stdout.contains("reconnect after 3 consecutive failures"),
        "{stdout}"
    );
}

#[test]
fn check_names_the_line_of_a_broken_scenario_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "sessions: 10\nheartbeat:\n  interval: 1s\n  send: {type: heartBeat}\n  max_failures: -1\n",
    )
    .unwrap();
    let out = wsoak().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("max_failures"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_scenario_file_is_a_usage_error() {
    let out = wsoak()
        .args(["run", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/x.yaml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = wsoak()
        .args(["run", "scenarios/miniprogram.yaml", "--duration", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no unit"));
    let out = wsoak()
        .args([
            "run",
            "scenarios/miniprogram.yaml",
            "--target",
            "http://127.0.0.1/",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `wsoak serve` in one process, `wsoak run` in another: the client's report and the
/// server's exit line agree.
#[test]
fn serve_and_run_as_separate_processes_agree() {
    let mut server = wsoak()
        .args(["serve", "--listen", "127.0.0.1:0", "--duration", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect(&first)
        .to_string();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");

    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let out = wsoak()
        .args([
            "run",
            "scenarios/miniprogram.yaml",
            "--quiet",
            "--sessions",
            "30",
        ])
        .args(["--duration", "2500ms", "--target", &url, "--report"])
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("latency (ms)"), "{summary}");

    // SIGTERM: the server stops and prints what it saw.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let stats: ServerStats = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(server.wait().unwrap().success());

    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert!(report.server.is_none());
    assert_eq!(stats.connections, 30);
    assert_eq!(stats.auth_ok, 30);
    assert_eq!(stats.bind_card, 30);
    assert_eq!(report.sessions.bound, 30);
    assert_eq!(stats.heartbeats, report.heartbeats.sent);
    assert_eq!(stats.close_codes.get(&1000), Some(&30));
}

/// `--source-addrs` is parsed by clap (a bad list is a usage error before anything
/// runs), then checked against this machine and the target before any session starts.
#[test]
fn bad_source_addresses_are_usage_errors_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let run = |list: &str| {
        let out = wsoak()
            .args([
                "run",
                "scenarios/miniprogram.yaml",
                "--quiet",
                "--sessions",
                "1",
            ])
            .args(["--duration", "1s", "--source-addrs", list, "--report"])
            .arg(&report)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{list}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let range = run("127.0.0.9-127.0.0.1");
    assert!(
        range.contains("`127.0.0.9-127.0.0.1` is not a range"),
        "{range}"
    );
    let word = run("127.0.0.1,localhost");
    assert!(word.contains("`localhost` is not an IP address"), "{word}");
    // TEST-NET-1 (RFC 5737): never an address of this machine. Nothing connects to it.
    let foreign = run("127.0.0.1,192.0.2.1");
    assert!(
        foreign
            .contains("--source-addrs: source address 192.0.2.1 cannot be bound on this machine"),
        "{foreign}"
    );
    let family = run("::1");
    assert!(
        family.contains("source address ::1 is IPv6 but the target 127.0.0.1:"),
        "{family}"
    );
    for stderr in [range, word, foreign, family] {
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!report.exists());
}

#[test]
fn help_teaches() {
    let out = wsoak().args(["run", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--sessions",
        "--duration",
        "--target",
        "--report",
        "--ca",
        "--insecure",
        "--source-addrs",
        "127.0.0.1-127.0.0.8",
        "--junit",
        "Examples",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    // Unwrapped: clap breaks lines wherever the terminal width falls.
    let unwrapped = |out: std::process::Output| {
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let help = unwrapped(wsoak().args(["run", "--help"]).output().unwrap());
    for phrase in [
        "classname wsoak.thresholds",
        "classname wsoak.run",
        "--junit junit.xml",
    ] {
        assert!(help.contains(phrase), "{phrase} missing from:\n{help}");
    }
    let help = unwrapped(wsoak().args(["compare", "--help"]).output().unwrap());
    for phrase in [
        "--junit <PATH>",
        "classname wsoak.compare",
        "--format <FORMAT>",
        "\"regressions\"",
        "wsoak compare baseline/ reports/latest --format json",
    ] {
        assert!(help.contains(phrase), "{phrase} missing from:\n{help}");
    }
    let help = unwrapped(wsoak().args(["report", "--help"]).output().unwrap());
    for phrase in [
        "--junit <PATH>",
        "--format <FORMAT>",
        "report.json's content, thresholds judged",
        "--format json",
    ] {
        assert!(help.contains(phrase), "{phrase} missing from:\n{help}");
    }
    let out = wsoak().args(["serve", "--help"]).output().unwrap();
    // Unwrapped: clap breaks lines wherever the terminal width falls.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for flag in [
        "--delay",
        "--drop-after",
        "--stall-after",
        "--reject-auth",
        "--drop-ack-every",
        "--slow-ack-every",
        "--slow-ack ",
        "--tls",
        "--duration",
        "--workers",
        "SO_REUSEPORT",
        "Per process: with --workers N, each process has this cap",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    // A worker's own flags are for `--workers` to pass, not for people.
    for internal in ["--worker ", "--parent-pid"] {
        assert!(!help.contains(internal), "{internal} in:\n{help}");
    }
}

#[test]
fn serve_rejects_ack_faults_that_make_no_sense() {
    for (args, says) in [
        (&["--drop-ack-every", "0"][..], "--drop-ack-every"),
        (
            &["--slow-ack-every", "0", "--slow-ack", "5ms"],
            "--slow-ack-every",
        ),
        (&["--slow-ack", "50ms"], "--slow-ack-every"),
        (&["--slow-ack-every", "2"], "--slow-ack"),
        (
            &["--slow-ack-every", "1", "--slow-ack", "0s"],
            "--slow-ack: must be longer than 0s",
        ),
        (
            &["--slow-ack-every", "1", "--slow-ack", "2h"],
            "--slow-ack: must be at most 1h",
        ),
        (&["--slow-ack-every", "1", "--slow-ack", "50"], "no unit"),
    ] {
        let out = wsoak()
            .args(["serve", "--duration", "1s"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        // Refused before listening.
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn check_names_the_line_of_a_bad_server_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "sessions: 1\nheartbeat:\n  send: {type: heartBeat}\nserver:\n  slow_ack_every: 1\n",
    )
    .unwrap();
    let out = wsoak().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5:3: server.slow_ack_every: needs `slow_ack`",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn completions_and_the_manual_come_from_the_same_definition_as_help() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = wsoak().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [
            "run",
            "check",
            "serve",
            "report",
            "compare",
            "workers",
            "threshold",
        ] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
        // What --help hides, completion does not offer.
        assert!(
            !script.contains("parent-pid"),
            "{shell} offers a hidden flag"
        );
    }
    // The bash script is valid bash, and completes `wsoak r` to the commands.
    let out = wsoak().args(["completions", "bash"]).output().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("wsoak.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(wsoak r); COMP_CWORD=1; _wsoak wsoak r wsoak; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let offered = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&offered.stdout);
    assert_eq!(
        offered.split_whitespace().collect::<Vec<_>>(),
        ["run", "report"],
        "{offered}"
    );

    let out = wsoak().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    assert!(page.contains(".TH wsoak 1"), "{page}");
    assert!(page.contains("completions"), "{page}");
    // groff renders it without complaint, when it is there to ask.
    if let Ok(mut groff) = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write as _;
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let checked = groff.wait_with_output().unwrap();
        assert!(checked.status.success());
        assert_eq!(String::from_utf8_lossy(&checked.stderr), "");
    }
}
