//! Input that cannot hurt, through the real binary: scripts at the sandbox's ceilings,
//! secrets in the target URL and in headers, files that are not files.

use std::path::Path;
use std::process::Output;

mod common;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Recursion as deep as the ceiling allows, with the recursive call inside nested
/// `switch`es (the most stack per level measured): `check` and a run both finish it.
const DEEP: &str = "\
fn f(n) {
  if n <= 1 { 0 } else {
    switch n { _ => switch n { _ => switch n { _ => switch n { _ => switch n { _ =>
    switch n { _ => switch n { _ => switch n { _ => switch n { _ => switch n { _ =>
    switch n { _ => 1 + f(n - 1) } } } } } } } } } } }
  }
}
fn heartbeat(session) { #{ type: \"heartBeat\", depth: f(64) } }
";

fn deep_scenario(dir: &Path, levels: u32) -> std::path::PathBuf {
    std::fs::write(dir.join("deep.rhai"), DEEP).unwrap();
    let path = dir.join("deep.yaml");
    std::fs::write(
        &path,
        format!(
            "sessions: 4\nduration: 1s\nheartbeat:\n  interval: 100ms\n\
             script:\n  file: deep.rhai\n  limits: {{max_call_levels: {levels}, max_operations: 1000000}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn recursion_at_the_ceiling_survives_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = deep_scenario(dir.path(), 64);
    let out = common::wsoak()
        .arg("check")
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("\"depth\":63"), "{}", text(&out));

    let report = dir.path().join("r/report.json");
    let out = common::wsoak()
        .args(["run", "--quiet", "--shards", "2", "--report"])
        .arg(&report)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(json["heartbeats"]["sent"].as_u64().unwrap() > 0, "{json}");
    assert!(json["errors"].get("script.heartbeat").is_none(), "{json}");

    // One level short of what the script needs: a counted error, not an abort.
    let scenario = deep_scenario(dir.path(), 63);
    let out = common::wsoak()
        .arg("check")
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("heartbeat:"), "{}", text(&out));
}

#[test]
fn import_fails_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other.rhai"), "fn x() { 1 }").unwrap();
    let path = dir.path().join("s.rhai");
    std::fs::write(
        &path,
        "fn scenario() { #{ heartbeat: #{ send: \"x\" } } }\nimport \"other\" as o;\n",
    )
    .unwrap();
    let out = common::wsoak().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("s.rhai:2:1: `import` is disabled"),
        "{}",
        text(&out)
    );
}

#[test]
fn target_secrets_appear_nowhere_wsoak_writes() {
    let server = wsoak::server::Embedded::start(
        ([127, 0, 0, 1], 0).into(),
        wsoak::server::Faults::default(),
        false,
    )
    .unwrap();
    let url = server.url().replace("ws://", "ws://bob:hunter2@") + "ws?token=tok3n&v=1";
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        format!("sessions: 2\nduration: 1s\n{}", common::FLOW),
    )
    .unwrap();
    let report = dir.path().join("run/report.json");
    let out = common::wsoak()
        .args(["run", "--quiet", "--target", &url, "--report"])
        .arg(&report)
        .arg(&scenario)
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    // The real URL connected: sessions bound.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(json["heartbeats"]["sent"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(
        json["target"].as_str().unwrap(),
        server.url().replace("ws://", "ws://***@") + "ws?token=***&v=***"
    );
    // The report says what produced it: the version, the file's hash, the command line
    // with the target as shown.
    assert_eq!(json["wsoak"]["version"], env!("CARGO_PKG_VERSION"));
    let sha = std::process::Command::new("sha256sum")
        .arg(&scenario)
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout);
    assert_eq!(
        json["wsoak"]["scenario_sha256"].as_str().unwrap(),
        sha.split_whitespace().next().unwrap()
    );
    let command: Vec<&str> = json["wsoak"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command[..2], ["wsoak", "run"]);
    let at = command.iter().position(|a| *a == "--target").unwrap();
    assert_eq!(command[at + 1], json["target"].as_str().unwrap());
    let run_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.parent().unwrap().join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run_json["wsoak"], json["wsoak"]);
    let mut written = shown.clone();
    for entry in std::fs::read_dir(report.parent().unwrap()).unwrap() {
        written += &String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    for secret in ["hunter2", "tok3n", "bob"] {
        assert!(!written.contains(secret), "{secret} shown");
    }
    assert!(written.contains("token=***"));

    // And when the first connect fails, the error does not show them either.
    let dead = "ws://bob:hunter2@127.0.0.1:1/ws?token=tok3n";
    let out = common::wsoak()
        .args(["run", "--quiet", "--target", dead, "--report"])
        .arg(dir.path().join("dead/report.json"))
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("ws://***@127.0.0.1:1/ws?token=***"));
    assert!(!text(&out).contains("hunter2") && !text(&out).contains("tok3n"));
    server.stop();
}

#[test]
fn check_hides_header_values_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        "connect:\n  headers:\n    Authorization: \"Bearer {{ env.WSOAK_TOKEN }}\"\n\
         heartbeat:\n  send: x\n",
    )
    .unwrap();
    let out = common::wsoak()
        .arg("check")
        .arg(&scenario)
        .env("WSOAK_TOKEN", "t0ps3cret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("headers: Authorization: ***"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("t0ps3cret"));
    let out = common::wsoak()
        .arg("check")
        .arg(&scenario)
        .env_remove("WSOAK_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("s.yaml:3:5: connect.headers.Authorization"),
        "{}",
        text(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_as_data_or_script_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (name, yaml) in [
        ("data.yaml", "data: {cards: fifo}\nheartbeat:\n  send: x\n"),
        ("script.yaml", "script: fifo\nheartbeat:\n  send: x\n"),
    ] {
        let scenario = dir.path().join(name);
        std::fs::write(&scenario, yaml).unwrap();
        let out = common::wsoak()
            .arg("check")
            .arg(&scenario)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains("is a FIFO, not a regular file"),
            "{}",
            text(&out)
        );
    }
    let out = common::wsoak().arg("check").arg(&fifo).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a FIFO"), "{}", text(&out));
}
