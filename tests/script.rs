//! Rhai scenarios end to end, against the in-process reference server.

use std::path::Path;

use wsoak::report::Report;

mod common;

fn run(scenario: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<Report> {
    let report = dir.join(format!(
        "{}.json",
        scenario.file_name().unwrap().to_string_lossy()
    ));
    let mut argv = vec![
        scenario.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    common::run(&argv).map(|out| out.report)
}

#[test]
fn rhai_and_yaml_miniprogram_give_identical_server_counts() {
    let dir = tempfile::tempdir().unwrap();
    // 20 sessions started at once for 850 ms: with heartbeat phases spread over 1 s,
    // exactly 17 are due before the end, whichever file drives them (the next phase,
    // 854 ms, is always past it).
    let load = ["--sessions", "20", "--ramp-up", "0s", "--duration", "850ms"];
    let yaml = run(Path::new("scenarios/miniprogram.yaml"), dir.path(), &load).unwrap();
    let rhai = run(Path::new("scenarios/miniprogram.rhai"), dir.path(), &load).unwrap();
    let (y, r) = (yaml.server.unwrap(), rhai.server.unwrap());
    assert_eq!(y, r);
    assert_eq!(
        (y.connections, y.auth_ok, y.bind_card, y.heartbeats),
        (20, 20, 20, 17)
    );
    assert_eq!(y.close_codes.get(&1000), Some(&20));
    assert_eq!(yaml.sessions.bound, rhai.sessions.bound);
    assert_eq!(yaml.heartbeats.acked, rhai.heartbeats.acked);
}

#[test]
fn replies_to_pushes_reach_the_server_and_state_survives_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped scenario pushes every 500 ms and never drops. This test runs it with
    // pushes every 100 ms and every connection dropped after 350 ms (back after 50 ms),
    // so each session binds several times.
    let cards = std::fs::canonicalize("scenarios/data/cards.csv").unwrap();
    let text = std::fs::read_to_string("scenarios/signed-push.rhai")
        .unwrap()
        .replace(
            r#"server: #{ push_every: "500ms" },"#,
            r#"server: #{ push_every: "100ms", drop_after: "350ms" }, reconnect: #{ delay: "50ms" },"#,
        )
        .replace("data/cards.csv", cards.to_str().unwrap());
    assert!(text.contains("drop_after"));
    let path = dir.path().join("push.rhai");
    std::fs::write(&path, text).unwrap();
    let r = run(
        &path,
        dir.path(),
        &[
            "--sessions",
            "20",
            "--ramp-up",
            "0s",
            "--duration",
            "1500ms",
        ],
    )
    .unwrap();
    let server = r.server.as_ref().unwrap();
    assert!(server.pushes > 100, "{server:?}");
    // Every pushAck the client sent, the server counted; pushes in flight at a drop or
    // at the stop were never answered.
    assert_eq!(server.push_acks, r.messages.replied);
    assert_eq!(r.custom.counters["order_push"], r.messages.replied);
    assert!(server.pushes >= server.push_acks);
    assert_eq!(r.custom.latency_ms["order_push"].count, r.messages.replied);
    // State kept across reconnects: the binds each session counted in its state add up
    // to the binds the server saw, and there were several per session.
    assert!(server.bind_card >= 20 * 3, "{server:?}");
    assert_eq!(r.custom.counters["binds_in_state"], server.bind_card);
    assert!(r.thresholds[0].pass, "{:?}", r.thresholds);
}

#[test]
fn an_endless_loop_is_stopped_counted_and_stalls_nobody() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hooks.rhai"),
        "fn heartbeat(session) {\n  if session.id % 2 == 0 { loop { } }\n  #{ type: \"heartBeat\" }\n}\n",
    )
    .unwrap();
    let scenario = dir.path().join("loop.yaml");
    std::fs::write(
        &scenario,
        "sessions: 10\nduration: 1s\nscript: {file: hooks.rhai, on_error: ignore}\n\
         heartbeat:\n  interval: 100ms\n  send: {type: heartBeat}\n  expect: {msgType: heartBeat_ack}\n",
    )
    .unwrap();
    let r = run(&scenario, dir.path(), &[]).unwrap();
    let server = r.server.as_ref().unwrap();
    let looped = r.errors["script.heartbeat"];
    // Every heartbeat of the 5 even sessions hit the operation limit and fell back to
    // `send` (on_error: ignore); the odd sessions' hooks ran normally.
    assert!(looped >= 5 * 5, "{:?}", r.errors);
    assert_eq!(r.errors["script_limit"], looped);
    assert_eq!(r.heartbeats.sent, server.heartbeats);
    assert!(r.heartbeats.sent >= 2 * looped - 10, "{:?}", r.heartbeats);
    assert_eq!(r.heartbeats.failed, 0);
    assert!(
        r.duration_s < 3.0,
        "the run ended on time: {}",
        r.duration_s
    );
}

#[test]
fn a_script_error_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hooks.rhai"),
        "fn heartbeat(session) {\n  let x = ;\n}\n",
    )
    .unwrap();
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(
        &scenario,
        "script: hooks.rhai\nheartbeat:\n  interval: 100ms\n",
    )
    .unwrap();
    let error = run(&scenario, dir.path(), &[]).unwrap_err();
    let message = format!("{error:#}");
    let expected = format!("{}:2:", dir.path().join("hooks.rhai").display());
    assert!(message.contains(&expected), "{message}");

    // A hook that fails at run time is counted by hook name, and the run goes on.
    std::fs::write(
        dir.path().join("hooks.rhai"),
        "fn heartbeat(session) {\n  let x = 1;\n  x.nope()\n}\n",
    )
    .unwrap();
    std::fs::write(
        &scenario,
        "sessions: 3\nduration: 500ms\nscript: hooks.rhai\nreconnect: {delay: 10s}\nheartbeat:\n  interval: 100ms\n",
    )
    .unwrap();
    let r = run(&scenario, dir.path(), &[]).unwrap();
    // on_error defaults to reconnect: each session's first heartbeat fails once.
    assert_eq!(r.errors["script.heartbeat"], 3);
    assert_eq!(r.reconnects.by_cause["script_error"], 3);
    assert_eq!(r.errors["script_limit"], 0);
}

#[test]
fn session_fail_counts_towards_max_failures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hooks.rhai"),
        "fn on_message(session, msg) {\n  if msg.msgType == \"order_push\" { session.fail(); }\n  ()\n}\n",
    )
    .unwrap();
    let scenario = dir.path().join("fail.yaml");
    std::fs::write(
        &scenario,
        "sessions: 8\nduration: 1s\nscript: hooks.rhai\nserver: {push_every: 50ms}\n\
         reconnect: {delay: 10s}\nbind_card:\n  send: {type: bindCard}\n  expect: {msgType: bindCard_ack}\n\
         heartbeat:\n  interval: 10s\n  send: {type: heartBeat}\n  expect: {msgType: heartBeat_ack}\n",
    )
    .unwrap();
    let r = run(&scenario, dir.path(), &[]).unwrap();
    // Each session: three pushes, three declared failures, then a reconnect (max 2).
    // Heartbeat phases spread over 10 s, so no ack resets the count in between (only
    // session 0's first heartbeat goes out, before the first push).
    assert_eq!(r.reconnects.by_cause["heartbeat"], 8, "{:?}", r.reconnects);
    assert_eq!(r.errors["script.fail"], 24, "{:?}", r.errors);
    assert_eq!(r.heartbeats.failed, 24);
}
