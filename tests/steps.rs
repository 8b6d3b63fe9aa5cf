//! Steps as data: `steps:` runs any number of request/reply steps after auth and bindCard,
//! and every count and latency of a step is named after it, from the scenario.

mod common;

use common::{run, wsoak};
use wsoak::report::Report;

/// Runs a scenario file's text in `dir`, with its report there.
fn run_text(dir: &tempfile::TempDir, yaml: &str, args: &[&str]) -> wsoak::RunOutput {
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, yaml).unwrap();
    let report = dir.path().join("report.json");
    let mut all = vec![path.to_str().unwrap(), "--report", report.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all).unwrap()
}

/// Auth and bindCard as `auth:` and `bind_card:`, then `steps` (YAML list items), with a
/// slow heartbeat that never fails within a short run.
fn flow(steps: &str, extra: &str) -> String {
    format!(
        "auth:\n  send: {{type: auth}}\n  expect: {{code: \"200\", msgType: auth_ack}}\n\
         bind_card:\n  send: {{type: bindCard}}\n  expect: {{msgType: bindCard_ack}}\n\
         steps:\n{steps}\
         heartbeat:\n  interval: 200ms\n  send: {{type: heartBeat}}\n  expect: {{msgType: heartBeat_ack}}\n\
         {extra}"
    )
}

#[test]
fn the_shipped_subscribe_scenario_runs_and_the_server_agrees_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run").join("report.json");
    let out = run(&[
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/subscribe.yaml"),
        "--sessions",
        "200",
        "--duration",
        "2s",
        "--ramp-up",
        "500ms",
        "--report",
        report.to_str().unwrap(),
    ])
    .unwrap();
    let r = &out.report;
    let server = r.server.as_ref().expect("embedded server stats");
    assert!(out.passed, "{:?}", r.thresholds);
    assert_eq!(r.thresholds.len(), 3);
    assert_eq!(r.sessions.bound, 200);
    assert_eq!(r.reconnects.total, 0);
    // One sample per bound session, and the steps in the scenario's order.
    assert_eq!(r.latency_ms["subscribe"].count, r.sessions.bound);
    let names: Vec<&str> = r.steps.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["auth", "bind_card", "subscribe"]);
    // What the client sent of each step is what the server counted of its type.
    for (step, kind) in [
        ("auth", "auth"),
        ("bind_card", "bindCard"),
        ("subscribe", "subscribe"),
    ] {
        let counts = r.steps.get(step).unwrap();
        assert_eq!(counts.reached, server.messages_by_type[kind], "{step}");
        assert_eq!(counts.reached, 200, "{step}");
        assert_eq!(counts.accepted, 200, "{step}");
        assert_eq!(counts.sessions, 200, "{step}");
        assert_eq!(r.latency_ms[step].count, counts.accepted, "{step}");
        assert_eq!((counts.rejected, counts.timed_out), (0, 0), "{step}");
        assert_eq!(r.errors[&format!("{step}_timeout")], 0);
        assert_eq!(r.reconnects.by_cause[&format!("{step}_rejected")], 0);
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(common::schema::errors_of(&written), Vec::<String>::new());

    // The interval log carries the steps by name: `wsoak report` rebuilds them exactly.
    let run_dir = report.parent().unwrap();
    std::fs::remove_file(&report).unwrap();
    let rebuilt = wsoak().arg("report").arg(run_dir).output().unwrap();
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let rebuilt: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rebuilt.steps, r.steps);
    assert_eq!(rebuilt.latency_ms["subscribe"], r.latency_ms["subscribe"]);
    assert_eq!(rebuilt.thresholds.len(), 3);
    assert!(rebuilt.thresholds.iter().all(|v| v.pass));
}

#[test]
fn a_rejected_step_is_counted_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    // The server acks with code 200: a step that wants 201 reads every ack as a rejection.
    let steps = "  - name: subscribe\n    send: {type: subscribe}\n\
                 \x20   expect: {msgType: subscribe_ack, code: \"201\"}\n\
                 \x20   reject: {msgType: subscribe_ack}\n";
    let out = run_text(
        &dir,
        &flow(
            steps,
            "reconnect: {delay: 10s}\nsessions: 20\nduration: 800ms\n",
        ),
        &[],
    );
    let r = &out.report;
    let server = r.server.as_ref().unwrap();
    let s = r.steps.get("subscribe").unwrap();
    assert_eq!(server.messages_by_type["subscribe"], 20);
    assert_eq!(
        (s.reached, s.accepted, s.rejected, s.timed_out),
        (20, 0, 20, 0)
    );
    assert_eq!(s.sessions, 0);
    assert_eq!(r.errors["subscribe_rejected"], 20);
    assert_eq!(r.reconnects.by_cause["subscribe_rejected"], 20);
    assert_eq!(r.reconnects.total, 20);
    // The steps before it passed; no session was bound.
    assert_eq!(r.sessions.authenticated, 20);
    assert_eq!(r.steps.get("bind_card").unwrap().sessions, 20);
    assert_eq!(r.sessions.bound, 0);
    assert_eq!(r.heartbeats.sent, 0);
}

#[test]
fn a_step_without_its_reply_times_out_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let steps = "  - name: profile\n    send: {type: profile}\n    expect: {msgType: never}\n    timeout: 150ms\n";
    let out = run_text(
        &dir,
        &flow(
            steps,
            "reconnect: {delay: 10s}\nsessions: 10\nduration: 700ms\n",
        ),
        &[],
    );
    let r = &out.report;
    let s = r.steps.get("profile").unwrap();
    assert_eq!((s.reached, s.accepted, s.timed_out), (10, 0, 10));
    assert_eq!(r.errors["profile_timeout"], 10);
    assert_eq!(r.reconnects.by_cause["timeout"], 10);
    // The reply came, matched nothing, and was counted as such.
    assert_eq!(r.messages.unmatched, 10);
    assert_eq!(r.latency_ms["profile"].count, 0);
}

#[test]
fn a_step_built_and_judged_by_its_hooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hooks.rhai"),
        r#"
        fn subscribe(session) { #{ type: "subscribe", channel: `orders.${session.id}` } }
        fn subscribe_reply(session, msg) {
            if msg.msgType == "subscribe_ack" { session.count("subscribed"); true } else { () }
        }
        "#,
    )
    .unwrap();
    let steps = "  - name: subscribe\n    timeout: 2s\n";
    let out = run_text(
        &dir,
        &flow(steps, "script: hooks.rhai\nsessions: 15\nduration: 600ms\n"),
        &[],
    );
    let r = &out.report;
    assert_eq!(r.server.as_ref().unwrap().messages_by_type["subscribe"], 15);
    assert_eq!(r.latency_ms["subscribe"].count, 15);
    assert_eq!(r.custom.counters["subscribed"], 15);
    assert_eq!(r.sessions.bound, 15);
}

#[test]
fn step_mistakes_are_explained_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    let check = |yaml: &str| {
        std::fs::write(&path, yaml).unwrap();
        let out = wsoak().arg("check").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let one = |name: &str| format!("  - name: {name}\n    send: {{type: x}}\n");
    // Two steps of one name; line 10 is the second `- name:`.
    let e = check(&flow(&format!("{}{}", one("sub"), one("sub")), ""));
    assert!(
        e.contains(":10:5: steps[1].name: ") && e.contains("a step named `sub` comes earlier"),
        "{e}"
    );
    let e = check(&flow(&one("auth"), ""));
    assert!(
        e.contains("the file's `auth:` is a step of that name"),
        "{e}"
    );
    let e = check(&flow(&one("heartbeat"), ""));
    assert!(e.contains("is a built-in name"), "{e}");
    let e = check(&flow(&one("Sub-Scribe"), ""));
    assert!(e.contains("is not a step name"), "{e}");
    let e = check(&flow("  - name: sub\n", ""));
    assert!(
        e.contains("needs `send`, or a script with `fn sub(session)`"),
        "{e}"
    );
    let e = check(&flow(&one("sub"), "thresholds: [\"subcribe.p99 < 5ms\"]\n"));
    assert!(
        e.contains("names a step `subcribe`") && e.contains("auth, bind_card, sub"),
        "{e}"
    );
    let e = check(&flow(
        "  - name: sub\n    send: {type: x}\n    timeot: 1s\n",
        "",
    ));
    assert!(e.contains("timeot"), "{e}");
}

#[test]
fn a_rhai_scenario_lists_steps_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.rhai");
    std::fs::write(
        &path,
        r#"
        fn scenario() {
            #{
                sessions: 12,
                duration: "600ms",
                auth: #{ send: #{ type: "auth" }, expect: #{ msgType: "auth_ack" } },
                steps: [
                    #{ name: "profile", send: #{ type: "profile" }, expect: #{ msgType: "profile_ack" } },
                    #{ name: "subscribe", timeout: "2s" },
                ],
                heartbeat: #{ interval: "200ms", send: #{ type: "heartBeat" } },
            }
        }
        fn subscribe(session) { #{ type: "subscribe", id: session.id } }
        fn subscribe_reply(session, msg) { if msg.msgType == "subscribe_ack" { true } else { () } }
        "#,
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let out = run(&[path.to_str().unwrap(), "--report", report.to_str().unwrap()]).unwrap();
    let r = &out.report;
    let names: Vec<&str> = r.steps.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["auth", "profile", "subscribe"]);
    let server = r.server.as_ref().unwrap();
    for (step, kind) in [
        ("auth", "auth"),
        ("profile", "profile"),
        ("subscribe", "subscribe"),
    ] {
        assert_eq!(r.latency_ms[step].count, 12, "{step}");
        assert_eq!(server.messages_by_type[kind], 12, "{step}");
    }
    assert_eq!(r.sessions.bound, 12);
}
