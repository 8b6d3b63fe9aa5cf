//! The raw file model: the serde types a YAML file (or a `.rhai` scenario's `scenario()`
//! map) is read into, with their defaults. `deny_unknown_fields` everywhere, so a typo is
//! an error, not a silently ignored key. It only describes the file's shape: checking
//! values and compiling them is `compile`'s job.
//!
//! The same types generate the scenario files' JSON Schema (`wsoak schema scenario`,
//! committed as `schema/scenario.schema.json`): every field's doc comment is the
//! description an editor shows on hover, so it is written for scenario writers (units,
//! defaults, what it does), and a field read through a `units` module says its written
//! form with `#[schemars(with = ...)]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::Backoff;
use crate::faults::Faults;
use crate::load::{RateStage, Stage};
use crate::script::{Limits, OnError};
use crate::units;

pub(super) fn default_sessions() -> u32 {
    100
}
pub(super) fn default_duration() -> Duration {
    Duration::from_secs(10)
}
fn default_step_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_max_failures() -> u32 {
    2
}
pub(super) fn default_max_delay() -> Duration {
    Duration::from_secs(30)
}

/// A wsoak scenario: what each simulated page does (connect, auth, bind_card, steps,
/// heartbeats, reconnects) and how many pages run, for how long. Only `heartbeat` is
/// required.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Scenario")]
pub(super) struct RawScenario {
    /// The scenario's name, which names its report directory
    /// (`reports/<name>-<UTC time>/`). No slashes. Default: the file's name without its
    /// extension.
    pub(super) name: Option<String>,
    /// Where to connect: a WebSocket URL (`ws://host:port/path` or `wss://…`), or
    /// `embedded` (the default) for the built-in reference server on a loopback port.
    /// `--target` replaces it.
    pub(super) target: Option<String>,
    /// How many pages (sessions) run at once, all started over `ramp_up` and then held.
    /// At least 1; default 100. `--sessions` replaces it. Not with `load`.
    #[schemars(range(min = 1))]
    pub(super) sessions: Option<u32>,
    /// How long the run lasts, from the first connect. Default: 10s, or with `load` the
    /// end of its stages. `--duration` replaces it.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub(super) duration: Option<Duration>,
    /// Spread the first connects of `sessions` evenly over this long instead of one
    /// burst. Default: 0s (all at once). `--ramp-up` replaces it. Not with `load`.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub(super) ramp_up: Option<Duration>,
    /// A load shape instead of `sessions`/`ramp_up`: either `stages` (concurrent
    /// sessions, the closed model) or `arrival` (arrivals per second, the open model).
    pub(super) load: Option<RawLoad>,
    /// Pages that leave and come back, as real users do. Off by default: pages stay for
    /// the whole run.
    pub(super) churn: Option<RawChurn>,
    /// Pass/fail checks on the finished run, e.g. `heartbeat.p99 < 200ms` or
    /// `sessions.bound / sessions.started >= 99%`. A failed one makes `wsoak run` exit 1.
    /// `--threshold` adds more.
    #[serde(default)]
    pub(super) thresholds: Vec<RawThreshold>,
    /// The WebSocket handshake: its timeout, extra headers and subprotocols.
    #[serde(default)]
    pub(super) connect: RawConnect,
    /// Per-session data files, such as the member cards to bind.
    pub(super) data: Option<RawData>,
    /// The first step after connecting, named `auth`: send the identity message and
    /// wait for its ack. Shorthand for a step named `auth` at the head of `steps`.
    pub(super) auth: Option<RawStep>,
    /// The step after `auth`, named `bind_card`: bind the member card. Shorthand for a
    /// step named `bind_card` after `auth`.
    pub(super) bind_card: Option<RawStep>,
    /// More request/reply steps, run in order after `auth` and `bind_card` and before
    /// the heartbeats. Each is measured and counted under its own name.
    #[serde(default)]
    pub(super) steps: Vec<RawNamedStep>,
    /// The heartbeat every session sends on a fixed timetable once its steps are done,
    /// and the ack that makes it healthy. Required (`heartbeat: {}` takes the defaults,
    /// with a script's `heartbeat` hook building the message).
    pub(super) heartbeat: RawHeartbeat,
    /// When and how fast a session reconnects after failed heartbeats, a timeout, a
    /// rejection or a dropped connection.
    #[serde(default)]
    pub(super) reconnect: RawReconnect,
    /// Faults for the embedded reference server to inject (slow or missing acks,
    /// dropped connections, rejected auths, pushes). Only with `target: embedded`; for a
    /// separate server pass them to `wsoak serve`. All off by default.
    #[serde(default)]
    pub(super) server: Faults,
    /// Rhai hooks that build messages and judge replies: the path of a `.rhai` file
    /// (relative to this scenario), or a mapping with `file`, `on_error` and `limits`.
    pub(super) script: Option<RawScript>,
}

/// `script:`, as a path or in full.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Script")]
pub(super) enum RawScript {
    /// The `.rhai` file with the hooks, relative to this scenario.
    File(PathBuf),
    /// The hooks file and how they run.
    Full(RawScriptFull),
}

/// The hooks file and how its hooks run.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ScriptOptions")]
pub(super) struct RawScriptFull {
    /// The `.rhai` file with the hooks, relative to this scenario. Required in a YAML
    /// scenario; a `.rhai` scenario is its own hooks file and leaves it out.
    pub(super) file: Option<PathBuf>,
    /// What a session does when a hook fails at run time. Default: `reconnect`.
    #[serde(default)]
    pub(super) on_error: OnError,
    /// The sandbox's limits on each hook call.
    #[serde(default)]
    pub(super) limits: Option<Limits>,
}

/// `load:`: exactly one of `stages` or `arrival`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Load")]
pub(super) struct RawLoad {
    /// Closed model: concurrent sessions move linearly from 0 through each stage's
    /// `target` over its `duration`, e.g. ramp to 5000 over 2m, hold for 1h, ramp to 0
    /// over 1m. At least one stage with a target above 0.
    pub(super) stages: Option<Vec<Stage>>,
    /// Open model: new pages arrive at a rate (per second), up to a cap on concurrent
    /// sessions.
    pub(super) arrival: Option<RawArrival>,
}

/// `load.arrival:`, the open model.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Arrival")]
pub(super) struct RawArrival {
    /// Arrivals per second at the start. Default 0.
    #[serde(default)]
    pub(super) rate: f64,
    /// The rate moves linearly to each stage's `rate` over its `duration`, and holds at
    /// the last one after it. At least one rate (here or in a stage) above 0.
    #[serde(default)]
    pub(super) stages: Vec<RateStage>,
    /// Most concurrent sessions, at least 1; arrivals beyond it are dropped and counted.
    #[schemars(range(min = 1))]
    pub(super) max_sessions: u32,
}

/// `churn:`: pages leaving and coming back.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Churn")]
pub(super) struct RawChurn {
    /// How long a page stays before its user leaves: a duration (`5m`), a uniform range
    /// (`1m..10m`) or an exponential spread with that mean (`~5m`). At least 1ms.
    pub(super) dwell: String,
    /// How long until the same user (same identity and card) comes back, written as
    /// `dwell` is. Left out: in the open model they do not come back; in the closed
    /// model the page returns at once.
    pub(super) away: Option<String>,
    /// Share of leaves that only open a web-view (`onHide`): the socket stays open and
    /// the page stays. Default 0.
    #[serde(default, with = "units::fraction")]
    #[schemars(with = "units::FractionText")]
    pub(super) hidden: f64,
}

/// One entry of `thresholds:`, as a check or in full.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Threshold")]
pub(super) enum RawThreshold {
    /// A check, `LEFT OP VALUE`: LEFT is a latency statistic in ms (`heartbeat.p99`,
    /// `auth.max`, `subscribe.p50`), a count from the report (`sessions.bound`,
    /// `errors.total`, `reconnects.heartbeat`), `errors.rate`, a script's `custom.NAME`,
    /// or a ratio of two (`sessions.bound / sessions.started`); OP is `<`, `<=`, `>`,
    /// `>=`, `==` or `!=`; VALUE is a number, a duration for latencies (`200ms`) or a
    /// percentage (`99.9%`).
    Check(String),
    /// A check with options.
    Full(RawThresholdFull),
}

/// A threshold with options.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ThresholdOptions")]
pub(super) struct RawThresholdFull {
    /// The check, `LEFT OP VALUE`, e.g. `heartbeat.p99 < 200ms` or `errors.rate < 0.1%`.
    pub(super) check: String,
    /// Stop the run early once the check fails while it runs (the report is still
    /// written). Default false: judged only at the end.
    #[serde(default)]
    pub(super) abort_on_fail: bool,
    /// With `abort_on_fail`, do not judge the check during this first part of the run
    /// (while the load ramps up). Default 0s.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub(super) delay: Option<Duration>,
}

/// `connect:`, the WebSocket handshake.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Connect")]
pub(super) struct RawConnect {
    /// How long the TCP connect, TLS and WebSocket handshake may take before the attempt
    /// fails and the session reconnects. Default 5s.
    #[serde(default = "default_step_timeout", with = "units::duration")]
    #[schemars(with = "units::DurationText")]
    pub(super) timeout: Duration,
    /// Extra HTTP headers on the handshake request, e.g. `User-Agent: my-client`. A value
    /// may use `{{ env.NAME }}` (an environment variable, read once at start and hidden
    /// in reports), and no other placeholder.
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    /// WebSocket subprotocols to offer (`Sec-WebSocket-Protocol`), e.g. `[json]`.
    #[serde(default)]
    pub(super) subprotocols: Vec<String>,
}

impl Default for RawConnect {
    fn default() -> Self {
        RawConnect {
            timeout: default_step_timeout(),
            headers: BTreeMap::new(),
            subprotocols: Vec::new(),
        }
    }
}

/// `data:`, per-session data files.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Data")]
pub(super) struct RawData {
    /// A CSV file with a header row, relative to this scenario: one row per session,
    /// dealt round-robin by session id and kept across reconnects. Templates read a
    /// column as `{{ card.COLUMN }}`.
    pub(super) cards: PathBuf,
}

/// A request/reply step: send a message, then wait for the reply that `expect` matches.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Step")]
pub(super) struct RawStep {
    /// The message to send: a mapping (sent as JSON) or a string (sent as is). Strings in
    /// it may use `{{ session.id }}`, `{{ card.COLUMN }}` and `{{ env.NAME }}`. Required
    /// unless the script defines the step's build hook.
    pub(super) send: Option<serde_json::Value>,
    /// The reply that completes the step: every field listed must match (a dotted key
    /// reaches into nested objects; `"200"` matches 200). Left out: the step completes
    /// once sent, and has no latency.
    pub(super) expect: Option<serde_json::Map<String, serde_json::Value>>,
    /// A reply that rejects the step (e.g. `{msgType: auth_ack}` when `expect` wants
    /// `success: true` too): the session reconnects, counted as `<step>_rejected`. Needs
    /// `expect`.
    pub(super) reject: Option<serde_json::Map<String, serde_json::Value>>,
    /// How long to wait for the `expect`ed reply before the step fails and the session
    /// reconnects. Default 5s.
    #[serde(default = "default_step_timeout", with = "units::duration")]
    #[schemars(with = "units::DurationText")]
    pub(super) timeout: Duration,
}

/// One entry of `steps:`: a step with its name. (The same fields as [`RawStep`]; serde
/// cannot deny unknown fields through `flatten`.)
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NamedStep")]
pub(super) struct RawNamedStep {
    /// The step's name, unique among the steps (`auth` and `bind_card` included): it
    /// names its latency (`latency_ms.NAME`), counts (`steps.NAME`) and errors.
    pub(super) name: String,
    /// The message to send: a mapping (sent as JSON) or a string (sent as is). Strings in
    /// it may use `{{ session.id }}`, `{{ card.COLUMN }}` and `{{ env.NAME }}`. Required
    /// unless the script defines the step's build hook.
    pub(super) send: Option<serde_json::Value>,
    /// The reply that completes the step: every field listed must match (a dotted key
    /// reaches into nested objects; `"200"` matches 200). Left out: the step completes
    /// once sent, and has no latency.
    pub(super) expect: Option<serde_json::Map<String, serde_json::Value>>,
    /// A reply that rejects the step: the session reconnects, counted as
    /// `<name>_rejected`. Needs `expect`.
    pub(super) reject: Option<serde_json::Map<String, serde_json::Value>>,
    /// How long to wait for the `expect`ed reply before the step fails and the session
    /// reconnects. Default 5s.
    #[serde(default = "default_step_timeout", with = "units::duration")]
    #[schemars(with = "units::DurationText")]
    pub(super) timeout: Duration,
}

impl RawNamedStep {
    /// The name, and the step without it.
    pub(super) fn split(self) -> (String, RawStep) {
        let step = RawStep {
            send: self.send,
            expect: self.expect,
            reject: self.reject,
            timeout: self.timeout,
        };
        (self.name, step)
    }
}

/// `heartbeat:`, sent on a fixed timetable once a session's steps are done.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Heartbeat")]
pub(super) struct RawHeartbeat {
    /// Time between heartbeats, at least 1ms. Default 10s. Heartbeats keep to the
    /// timetable: a slow ack does not delay the next one.
    #[serde(default = "default_interval", with = "units::duration")]
    #[schemars(with = "units::DurationText")]
    pub(super) interval: Duration,
    /// The heartbeat message: a mapping (sent as JSON) or a string. Strings in it may use
    /// `{{ heartbeat.seq }}` (the heartbeat's number in its session, from 1) besides
    /// `{{ session.id }}`, `{{ card.COLUMN }}` and `{{ env.NAME }}`. Required unless the
    /// script defines `heartbeat`.
    pub(super) send: Option<serde_json::Value>,
    /// The ack that makes a heartbeat healthy: every field listed must match. One field
    /// may be `"{{ heartbeat.seq }}"` to tell which heartbeat an ack answers. Left out: a
    /// heartbeat is healthy once sent.
    pub(super) expect: Option<serde_json::Map<String, serde_json::Value>>,
    /// How long to wait for the ack before the heartbeat counts as failed. More than 0s
    /// and at most `interval`; default: the interval.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub(super) timeout: Option<Duration>,
    /// Consecutive failed heartbeats tolerated: one more drops the socket and
    /// reconnects. Default 2 (reconnect on the 3rd failure in a row).
    #[serde(default = "default_max_failures")]
    pub(super) max_failures: u32,
}

/// `reconnect:`, the wait before a session connects again.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Reconnect")]
pub(super) struct RawReconnect {
    /// The wait before reconnecting. Default: the heartbeat interval.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub(super) delay: Option<Duration>,
    /// `fixed` (always `delay`, the default) or `exponential` (`delay`, doubled per
    /// consecutive failed attempt, up to `max_delay`).
    #[serde(default)]
    pub(super) backoff: Backoff,
    /// The longest wait with `backoff: exponential`. Default 30s.
    #[serde(default = "default_max_delay_opt", with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub(super) max_delay: Option<Duration>,
    /// Spread each wait randomly by up to this fraction of it, from 0 to 1 (0.2: ±20%),
    /// so that sessions dropped together do not reconnect together. Default 0.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub(super) jitter: f64,
}

fn default_max_delay_opt() -> Option<Duration> {
    Some(default_max_delay())
}
