//! Raw → model: checks every value of a [`RawScenario`], applies the command line's
//! [`Overrides`], and compiles it into a [`Scenario`] (templates, matchers, card data,
//! load shape, thresholds), one function per section of the file. Errors name the key
//! path; `at` turns it into a place.
//!
//! The sections are compiled in a fixed order, and the first error wins: keep the order
//! when adding one, so a file with two mistakes keeps reporting the same one. It must not
//! read the scenario file itself (the loaders in `mod.rs` do), only the data files it
//! names.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::cards::Cards;
use super::error::ScenarioError;
use super::matcher::Matcher;
use super::model::{Connect, Heartbeat, Reconnect, Scenario, Step};
use super::raw::{
    default_duration, default_max_delay, default_sessions, RawChurn, RawConnect, RawData,
    RawHeartbeat, RawLoad, RawNamedStep, RawReconnect, RawScenario, RawStep, RawThreshold,
};
use super::target::Target;
use super::template::Template;
use crate::faults::Faults;
use crate::load::{Churn, Shape, Spread};
use crate::script::{Hook, Script};
use crate::threshold::Threshold;
use crate::units;

/// Values from the command line that replace the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--sessions`.
    pub sessions: Option<u32>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--target`.
    pub target: Option<Target>,
    /// `--threshold`, added to the file's.
    pub thresholds: Vec<Threshold>,
    /// `--ramp-up`.
    pub ramp_up: Option<Duration>,
}

/// Places an error at a key path (`["heartbeat", "timeout"]`) in the file.
type At<'a> = &'a dyn Fn(&[&str], String) -> ScenarioError;

/// The error for `{{ heartbeat.seq }}` outside the heartbeat.
const SEQ_ONLY_IN_HEARTBEAT: &str =
    "`{{ heartbeat.seq }}` numbers heartbeats: it can only be used in `heartbeat.send` and \
     `heartbeat.expect`";

/// Compiles a parsed file. `path` names the file (its stem is the default name, its
/// folder anchors data files); `script` is the hooks, already compiled.
pub(super) fn compile(
    raw: RawScenario,
    path: &Path,
    overrides: &Overrides,
    at: At,
    script: Option<Script>,
) -> Result<Scenario, ScenarioError> {
    let name = name(raw.name, path, at)?;
    let target = target(raw.target.as_deref(), overrides, at)?;
    let shape = shape(raw.load.as_ref(), raw.sessions, raw.ramp_up, overrides, at)?;
    let duration = duration(raw.duration, raw.load.is_some(), &shape, overrides, at)?;
    let churn = churn(raw.churn.as_ref(), at)?;
    let thresholds = thresholds(&raw.thresholds, overrides, at)?;
    let cards = cards(raw.data.as_ref(), path, at)?;
    let messages = Messages {
        at,
        columns: cards.as_ref().map(|c| c.columns.as_slice()).unwrap_or(&[]),
        script: script.as_ref(),
    };
    let steps = steps(&messages, raw.auth, raw.bind_card, raw.steps)?;
    let thresholds = known_names(thresholds, &steps, at)?;
    let heartbeat = heartbeat(&messages, raw.heartbeat)?;
    let reconnect = reconnect(raw.reconnect, &heartbeat, at)?;
    let connect = connect(raw.connect, at)?;
    faults(&raw.server, &target, at)?;
    Ok(Scenario {
        name,
        source: path.to_path_buf(),
        target,
        sessions: shape.max_sessions(),
        duration,
        shape,
        churn,
        thresholds,
        connect,
        cards,
        steps,
        heartbeat,
        reconnect,
        server: raw.server,
        script: script.map(Arc::new),
    })
}

/// `name`, defaulting to the file's stem: it names the report directory, so no slashes.
fn name(raw: Option<String>, path: &Path, at: At) -> Result<String, ScenarioError> {
    let name = raw.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(at(
            &["name"],
            "must be non-empty and contain no slashes".into(),
        ));
    }
    Ok(name)
}

/// `target`, unless `--target` replaces it; the embedded server without either.
fn target(raw: Option<&str>, overrides: &Overrides, at: At) -> Result<Target, ScenarioError> {
    Ok(match (&overrides.target, raw) {
        (Some(t), _) => t.clone(),
        (None, Some(text)) => Target::parse(text).map_err(|m| at(&["target"], m))?,
        (None, None) => Target::Embedded,
    })
}

/// The load shape: `sessions` and `ramp_up` (which `--sessions` and `--ramp-up`
/// replace), or `load` with closed-model `stages` or an open-model `arrival`.
fn shape(
    load: Option<&RawLoad>,
    sessions: Option<u32>,
    ramp_up: Option<Duration>,
    overrides: &Overrides,
    at: At,
) -> Result<Shape, ScenarioError> {
    let Some(load) = load else {
        let sessions = overrides
            .sessions
            .or(sessions)
            .unwrap_or(default_sessions());
        if sessions == 0 {
            return Err(at(&["sessions"], "must be at least 1".into()));
        }
        let ramp_up = overrides.ramp_up.or(ramp_up).unwrap_or_default();
        return Ok(Shape::ramp_and_hold(sessions, ramp_up));
    };
    if sessions.is_some() || ramp_up.is_some() {
        return Err(at(
            &["load"],
            "use either `sessions`/`ramp_up` or `load`, not both".into(),
        ));
    }
    if overrides.sessions.is_some() || overrides.ramp_up.is_some() {
        return Err(at(
            &["load"],
            "--sessions and --ramp-up apply to `sessions:` scenarios; this one sets `load:`".into(),
        ));
    }
    match (&load.stages, &load.arrival) {
        (Some(stages), None) => {
            if stages.is_empty() || stages.iter().all(|s| s.target == 0) {
                return Err(at(
                    &["load", "stages"],
                    "needs at least one stage with a target above 0".into(),
                ));
            }
            Ok(Shape::Closed {
                stages: stages.clone(),
            })
        }
        (None, Some(arrival)) => {
            let rates = std::iter::once(arrival.rate).chain(arrival.stages.iter().map(|s| s.rate));
            if rates.clone().any(|r| !r.is_finite() || r < 0.0) || rates.clone().all(|r| r == 0.0) {
                return Err(at(
                    &["load", "arrival"],
                    "rates are arrivals per second: at least one above 0, none negative".into(),
                ));
            }
            if arrival.max_sessions == 0 {
                return Err(at(
                    &["load", "arrival", "max_sessions"],
                    "must be at least 1".into(),
                ));
            }
            Ok(Shape::Open {
                start_rate: arrival.rate,
                stages: arrival.stages.clone(),
                max_sessions: arrival.max_sessions,
            })
        }
        _ => Err(at(
            &["load"],
            "set exactly one of `stages` (closed model) or `arrival` (open model)".into(),
        )),
    }
}

/// `duration` (which `--duration` replaces); without either, the end of the `load`
/// stages, or the default.
fn duration(
    raw: Option<Duration>,
    has_load: bool,
    shape: &Shape,
    overrides: &Overrides,
    at: At,
) -> Result<Duration, ScenarioError> {
    let duration = match (overrides.duration, raw) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) if has_load => shape.stages_end(),
        (None, None) => default_duration(),
    };
    if duration.is_zero() {
        return Err(at(&["duration"], "must be longer than 0s".into()));
    }
    Ok(duration)
}

/// `churn`: pages leaving and coming back.
fn churn(raw: Option<&RawChurn>, at: At) -> Result<Option<Churn>, ScenarioError> {
    let Some(c) = raw else { return Ok(None) };
    Ok(Some(Churn {
        dwell: Spread::parse(&c.dwell).map_err(|m| at(&["churn", "dwell"], m))?,
        away: c
            .away
            .as_deref()
            .map(Spread::parse)
            .transpose()
            .map_err(|m| at(&["churn", "away"], m))?,
        hidden: c.hidden,
    }))
}

/// `thresholds`, then those `--threshold` adds.
fn thresholds(
    raw: &[RawThreshold],
    overrides: &Overrides,
    at: At,
) -> Result<Vec<Threshold>, ScenarioError> {
    let mut thresholds = Vec::new();
    for raw_threshold in raw {
        let threshold = match raw_threshold {
            RawThreshold::Check(check) => Threshold::parse(check),
            RawThreshold::Full(full) => Threshold::parse(&full.check).map(|mut t| {
                t.abort_on_fail = full.abort_on_fail;
                t.delay = full.delay.unwrap_or_default();
                t
            }),
        }
        .map_err(|m| at(&["thresholds"], m))?;
        thresholds.push(threshold);
    }
    thresholds.extend(overrides.thresholds.iter().cloned());
    Ok(thresholds)
}

/// `data.cards`, relative to the scenario's folder.
fn cards(raw: Option<&RawData>, path: &Path, at: At) -> Result<Option<Cards>, ScenarioError> {
    let Some(data) = raw else { return Ok(None) };
    let file = path.parent().unwrap_or(Path::new(".")).join(&data.cards);
    Ok(Some(
        Cards::load(&file).map_err(|m| at(&["data", "cards"], m))?,
    ))
}

/// What compiling a step's or the heartbeat's messages needs: where errors go, the card
/// columns templates may name, and which hooks the script defines.
struct Messages<'a> {
    /// Places errors.
    at: At<'a>,
    /// The card data's column names (none without card data).
    columns: &'a [String],
    /// The hooks, when the scenario has a script.
    script: Option<&'a Script>,
}

impl Messages<'_> {
    /// Whether the script defines `hook`.
    fn has(&self, hook: Hook) -> bool {
        self.script.is_some_and(|s| s.has(hook))
    }

    /// A `send` template, or `None` when the script's `hook` builds the message.
    fn send(
        &self,
        value: &Option<serde_json::Value>,
        key: &[&str],
        hook: Hook,
    ) -> Result<Option<Template>, ScenarioError> {
        let mut send_key = key.to_vec();
        send_key.push("send");
        match value {
            Some(v) => Template::compile(v, self.columns, env)
                .map(Some)
                .map_err(|m| (self.at)(&send_key, m)),
            None if self.has(hook) => Ok(None),
            None => Err((self.at)(
                key,
                format!(
                    "needs `send`, or a script with `fn {}(session)`",
                    hook.name()
                ),
            )),
        }
    }
}

/// Environment variables, for `{{ env.NAME }}`.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The request/reply steps, in the order sessions run them: `auth:` and `bind_card:`
/// (shorthand for steps of those names), then each of `steps:`. Names are unique, and
/// each is checked against the built-in names it would shadow.
fn steps(
    messages: &Messages,
    auth: Option<RawStep>,
    bind_card: Option<RawStep>,
    list: Vec<RawNamedStep>,
) -> Result<Vec<Step>, ScenarioError> {
    let at = messages.at;
    let mut steps: Vec<Step> = Vec::new();
    for (key, raw) in [("auth", auth), ("bind_card", bind_card)] {
        if let Some(raw) = raw {
            steps.push(step(messages, raw, key, &[key])?);
        }
    }
    for (i, named) in list.into_iter().enumerate() {
        let (name, raw) = named.split();
        let item = format!("[{i}]");
        crate::metrics::check_step_name(&name).map_err(|m| at(&["steps", &item, "name"], m))?;
        if steps.iter().any(|s| *s.name == *name) {
            let how = if matches!(name.as_str(), "auth" | "bind_card") {
                format!(" (the file's `{name}:` is a step of that name)")
            } else {
                String::new()
            };
            return Err(at(
                &["steps", &item, "name"],
                format!("a step named `{name}` comes earlier{how}; names must be unique"),
            ));
        }
        steps.push(step(messages, raw, &name, &["steps", &item])?);
    }
    if steps.len() > crate::metrics::MAX_STEPS {
        return Err(at(
            &["steps"],
            format!(
                "{} steps; at most {} are allowed",
                steps.len(),
                crate::metrics::MAX_STEPS
            ),
        ));
    }
    Ok(steps)
}

/// One request/reply step named `name`, found in the file at `key`, whose message its
/// build hook may make instead.
fn step(
    messages: &Messages,
    raw: RawStep,
    name: &str,
    key: &[&str],
) -> Result<Step, ScenarioError> {
    let at = |field: &str, m: String| {
        let mut path = key.to_vec();
        if !field.is_empty() {
            path.push(field);
        }
        (messages.at)(&path, m)
    };
    let build = Hook::build(name);
    let judge = Hook::judge(name);
    if let Some(script) = messages.script {
        for hook in [build, judge] {
            script.check_hook(hook).map_err(|e| at("", e.message))?;
        }
    }
    let send = messages.send(&raw.send, key, build)?;
    let expect = raw
        .expect
        .as_ref()
        .map(Matcher::compile)
        .transpose()
        .map_err(|m| at("expect", m))?;
    let reject = raw
        .reject
        .as_ref()
        .map(Matcher::compile)
        .transpose()
        .map_err(|m| at("reject", m))?;
    if reject.is_some() && expect.is_none() {
        return Err(at(
            "reject",
            "a step with `reject` needs `expect` too".into(),
        ));
    }
    if raw.timeout.is_zero() {
        return Err(at("timeout", "must be longer than 0s".into()));
    }
    if send.as_ref().is_some_and(Template::uses_heartbeat_seq) {
        return Err(at("send", SEQ_ONLY_IN_HEARTBEAT.into()));
    }
    for (matcher, field) in [(&expect, "expect"), (&reject, "reject")] {
        if matcher.as_ref().is_some_and(Matcher::has_seq) {
            return Err(at(field, SEQ_ONLY_IN_HEARTBEAT.into()));
        }
    }
    Ok(Step {
        name: name.into(),
        build,
        judge,
        send,
        expect,
        reject,
        timeout: raw.timeout,
    })
}

/// Thresholds may name a step's latency or counts (`subscribe.p99`): now that the steps
/// are known, every name a threshold uses must be one.
fn known_names(
    thresholds: Vec<Threshold>,
    steps: &[Step],
    at: At,
) -> Result<Vec<Threshold>, ScenarioError> {
    let names: Vec<&str> = steps.iter().map(|s| &*s.name).collect();
    for t in &thresholds {
        t.check_names(&names).map_err(|m| at(&["thresholds"], m))?;
    }
    Ok(thresholds)
}

/// `heartbeat`: its timetable, its message and the ack that makes it healthy.
fn heartbeat(messages: &Messages, hb: RawHeartbeat) -> Result<Heartbeat, ScenarioError> {
    let at = messages.at;
    if hb.interval < Duration::from_millis(1) {
        return Err(at(
            &["heartbeat", "interval"],
            "must be at least 1ms".into(),
        ));
    }
    let timeout = hb.timeout.unwrap_or(hb.interval);
    if timeout.is_zero() || timeout > hb.interval {
        return Err(at(
            &["heartbeat", "timeout"],
            format!(
                "must be longer than 0s and at most the interval ({}), so that one heartbeat's \
                 fate is known before the next is due",
                units::format_duration(hb.interval)
            ),
        ));
    }
    let send = messages.send(&hb.send, &["heartbeat"], Hook::HEARTBEAT)?;
    let expect = hb
        .expect
        .as_ref()
        .map(Matcher::compile)
        .transpose()
        .map_err(|m| at(&["heartbeat", "expect"], m))?;
    if expect.as_ref().is_some_and(Matcher::has_seq) {
        if messages.has(Hook::HEARTBEAT_REPLY) {
            return Err(at(
                &["heartbeat", "expect"],
                "the script's `heartbeat_reply` judges acks, so `expect` cannot match \
                 `{{ heartbeat.seq }}`: read the number in the hook instead"
                    .into(),
            ));
        }
        if !send.as_ref().is_some_and(Template::uses_heartbeat_seq) {
            return Err(at(
                &["heartbeat", "expect"],
                "matches `{{ heartbeat.seq }}`, but `heartbeat.send` does not carry it: \
                 put the placeholder in the message the server echoes"
                    .into(),
            ));
        }
    }
    Ok(Heartbeat {
        interval: hb.interval,
        send,
        expect,
        timeout,
        max_failures: hb.max_failures,
    })
}

/// `reconnect`: the delay defaults to the heartbeat interval.
fn reconnect(rc: RawReconnect, heartbeat: &Heartbeat, at: At) -> Result<Reconnect, ScenarioError> {
    if !(0.0..=1.0).contains(&rc.jitter) {
        return Err(at(
            &["reconnect", "jitter"],
            "must be between 0 and 1".into(),
        ));
    }
    Ok(Reconnect {
        // The article has no backoff: its retry rhythm is the heartbeat interval.
        delay: rc.delay.unwrap_or(heartbeat.interval),
        backoff: rc.backoff,
        max_delay: rc.max_delay.unwrap_or_else(default_max_delay),
        jitter: rc.jitter,
    })
}

/// `connect`: the handshake's timeout, headers (with `{{ env.NAME }}` resolved once,
/// here) and subprotocols.
fn connect(raw: RawConnect, at: At) -> Result<Connect, ScenarioError> {
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut headers = Vec::new();
    let mut from_env = Vec::new();
    for (key, value) in raw.headers {
        let (value, secret) = resolve_header(&value, env)
            .map_err(|m| at(&["connect", "headers", &key], format!("`{key}`: {m}")))?;
        if secret {
            from_env.push(key.clone());
        }
        HeaderName::try_from(key.as_str()).map_err(|_| {
            at(
                &["connect", "headers"],
                format!("`{key}` is not a valid header name"),
            )
        })?;
        HeaderValue::try_from(value.as_str()).map_err(|_| {
            at(
                &["connect", "headers"],
                format!("the value of `{key}` is not a valid header value"),
            )
        })?;
        headers.push((key, value));
    }
    if raw.timeout.is_zero() {
        return Err(at(&["connect", "timeout"], "must be longer than 0s".into()));
    }
    Ok(Connect {
        timeout: raw.timeout,
        headers,
        from_env,
        subprotocols: raw.subprotocols,
    })
}

/// `server`: faults for the embedded reference server, which only it can act on.
fn faults(faults: &Faults, target: &Target, at: At) -> Result<(), ScenarioError> {
    if let Err((key, message)) = faults.validate() {
        return Err(at(&["server", key], message));
    }
    if *target != Target::Embedded && faults.is_active() {
        // Faults only mean something for the embedded server; say so rather than ignore.
        return Err(at(
            &["server"],
            "server faults apply only to `target: embedded`; for a separate server pass them \
             to `wsoak serve`"
                .into(),
        ));
    }
    Ok(())
}

/// Resolves `{{ env.NAME }}` in a header value, once, at load. Returns the value and
/// whether any of it came from the environment. Other placeholders mean nothing in a
/// handshake (it is the same for every session), so they are errors.
fn resolve_header(
    value: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(String, bool), String> {
    let mut out = String::new();
    let mut secret = false;
    let mut rest = value;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "has an unclosed `{{`".to_string())?;
        out.push_str(&rest[..open]);
        let name = after[..close].trim();
        match name.split_once('.') {
            Some(("env", var)) if !var.is_empty() => {
                let value = env(var).ok_or_else(|| {
                    format!("`{{{{ {name} }}}}`: environment variable {var} is not set")
                })?;
                out.push_str(&value);
                secret = true;
            }
            _ => {
                return Err(format!(
                    "`{{{{ {name} }}}}`: a header can use only `{{{{ env.NAME }}}}` (headers \
                     are the same for every session)"
                ))
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok((out, secret))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::load::Shape;
    use crate::scenario::tests::{parse_str, MINIMAL};
    use crate::scenario::{parse, Overrides, Target};

    #[test]
    fn minimal_scenario_has_sane_defaults() {
        let s = parse_str(MINIMAL).unwrap();
        assert_eq!(s.name, "test");
        assert_eq!(s.target, Target::Embedded);
        assert_eq!(s.sessions, 100);
        assert_eq!(s.heartbeat.timeout, Duration::from_secs(1));
        assert_eq!(s.heartbeat.max_failures, 2);
        assert_eq!(s.reconnect.delay, Duration::from_secs(1));
        assert!(s.steps.is_empty());
    }
    #[test]
    fn heartbeat_seq_belongs_to_the_heartbeat_only() {
        let ok = "heartbeat:\n  send: {type: heartBeat, seq: \"{{ heartbeat.seq }}\"}\n  \
                  expect: {msgType: heartBeat_ack, seq: \"{{ heartbeat.seq }}\"}\n";
        let s = parse_str(ok).unwrap();
        assert!(s.heartbeat.expect.as_ref().unwrap().has_seq());
        let in_auth = "auth:\n  send: {type: auth, n: \"{{ heartbeat.seq }}\"}\n\
                       heartbeat:\n  send: {type: heartBeat}\n";
        let e = parse_str(in_auth).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:2:3: auth.send"), "{e}");
        let unsent = "heartbeat:\n  send: {type: heartBeat}\n  \
                      expect: {seq: \"{{ heartbeat.seq }}\"}\n";
        let e = parse_str(unsent).unwrap_err().to_string();
        assert!(e.contains("does not carry it"), "{e}");
    }
    #[test]
    fn overrides_win() {
        let o = Overrides {
            sessions: Some(7),
            duration: Some(Duration::from_secs(3)),
            target: Some(Target::parse("ws://127.0.0.1:9/x").unwrap()),
            thresholds: vec![],
            ramp_up: None,
        };
        let s = parse(MINIMAL, Path::new("t.yaml"), &o).unwrap();
        assert_eq!(s.sessions, 7);
        assert_eq!(s.duration, Duration::from_secs(3));
        assert!(matches!(s.target, Target::Url(ref u) if u.port == 9 && !u.tls));
    }
    #[test]
    fn load_shapes_parse() {
        let text =
            "load:\n  stages:\n    - {duration: 2s, target: 50}\n    - {duration: 1s, target: 0}\n\
                    heartbeat:\n  send: {type: heartBeat}\n";
        let s = parse_str(text).unwrap();
        assert_eq!(s.sessions, 50);
        assert_eq!(s.duration, Duration::from_secs(3));
        let text = "load:\n  arrival: {rate: 10, max_sessions: 20}\nduration: 5s\n\
                    churn: {dwell: 1s..2s, away: ~3s, hidden: 10%}\n\
                    thresholds: [\"heartbeat.p99 < 50ms\", {check: \"reconnects.total < 5\", abort_on_fail: true, delay: 1s}]\n\
                    heartbeat:\n  send: {type: heartBeat}\n";
        let s = parse_str(text).unwrap();
        assert!(matches!(
            s.shape,
            Shape::Open {
                max_sessions: 20,
                ..
            }
        ));
        assert_eq!(s.churn.unwrap().hidden, 0.1);
        assert_eq!(s.thresholds.len(), 2);
        assert!(s.thresholds[1].abort_on_fail);
        let both =
            "sessions: 5\nload:\n  stages: [{duration: 1s, target: 5}]\nheartbeat:\n  send: x\n";
        assert!(parse_str(both)
            .unwrap_err()
            .to_string()
            .contains("not both"));
        let bad = "thresholds: [\"heartbeat.p42 < 1s\"]\nheartbeat:\n  send: x\n";
        let e = parse_str(bad).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:1:1: thresholds"), "{e}");
    }
    #[test]
    fn headers_take_env_values_and_hide_them() {
        std::env::set_var("WSOAK_TEST_HEADER_TOKEN", "s3cret");
        let text = "connect:\n  headers:\n    Authorization: \"Bearer {{ env.WSOAK_TEST_HEADER_TOKEN }}\"\n    \
                    X-Plain: visible\nheartbeat:\n  send: x\n";
        let s = parse_str(text).unwrap();
        assert!(s
            .connect
            .headers
            .contains(&("Authorization".into(), "Bearer s3cret".into())));
        assert_eq!(
            s.connect.shown_headers(),
            ["Authorization: ***", "X-Plain: visible"]
        );
        let missing = "connect:\n  headers:\n    X-Key: \"{{ env.WSOAK_TEST_SURELY_UNSET }}\"\n\
                       heartbeat:\n  send: x\n";
        let e = parse_str(missing).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:3:5: connect.headers.X-Key"), "{e}");
        assert!(e.contains("WSOAK_TEST_SURELY_UNSET is not set"), "{e}");
        let other = "connect:\n  headers: {X-Id: \"{{ session.id }}\"}\nheartbeat:\n  send: x\n";
        let e = parse_str(other).unwrap_err().to_string();
        assert!(e.contains("only `{{ env.NAME }}`"), "{e}");
    }
    #[test]
    fn non_finite_thresholds_are_refused() {
        for value in ["NaN", "inf", "-inf", "1e999", "nan%"] {
            let text =
                format!("thresholds: [\"reconnects.total < {value}\"]\nheartbeat:\n  send: x\n");
            let e = parse_str(&text).unwrap_err().to_string();
            assert!(e.starts_with("test.yaml:1:1: thresholds"), "{e}");
            assert!(e.contains("not a finite number"), "{e}");
        }
    }
}
