//! Scenario files: the typed model, loading with line/column errors, and validation.
//!
//! A YAML file is parsed into a raw serde model (`deny_unknown_fields`, so a typo is an
//! error, not a silently ignored key), then compiled into a [`Scenario`]: templates
//! compiled, matchers compiled, card data loaded, every value checked. A `Scenario` is
//! immutable and shared by every shard; nothing in it is parsed again during the run.
//!
//! This module must not do network I/O or start anything.

pub mod input;
mod matcher;
mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_tungstenite::tungstenite::http::Uri;

pub use matcher::Matcher;
pub use template::{Template, Vars};

use crate::faults::Faults;
use crate::load::{Churn, RateStage, Shape, Spread, Stage};
use crate::script::{Hook, Limits, OnError, Script};
use crate::threshold::Threshold;
use crate::units;

/// A scenario that could not be loaded. Each variant names the file; where the problem has
/// a place in the file, the line and column too.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file (or a data file it names) could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A problem at a known place in the file.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A problem without a place (a value set from the command line, say).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Where the sessions connect.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Start the reference server in-process on a loopback ephemeral port.
    Embedded,
    /// A `ws://` or `wss://` URL.
    Url(TargetUrl),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Embedded => f.write_str("embedded"),
            Target::Url(url) => f.write_str(&url.redacted()),
        }
    }
}

impl TargetUrl {
    /// The URL as wsoak shows it anywhere (summary, reports, progress, errors): see
    /// [`redact`]. The real URL is used only to connect.
    pub fn redacted(&self) -> String {
        redact(&self.uri.to_string())
    }
}

/// A URL with its secrets hidden: the userinfo (`user:password@`) and every query value
/// become `***`, so `ws://u:p@host/ws?token=abc&v=1` shows as
/// `ws://***@host/ws?token=***&v=***`. Works on text that did not parse, too, so error
/// messages can quote what was given.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = if scheme.is_some() {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
    } else {
        0
    };
    let (authority, rest) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("***@");
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push_str("#***");
    }
    out
}

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetUrl {
    /// The URL as the WebSocket handshake uses it.
    pub uri: Uri,
    /// Host name or address, without brackets.
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// True for `wss://`.
    pub tls: bool,
}

impl Target {
    /// Parses `embedded` or a WebSocket URL.
    /// Messages quote the text [`redact`]ed: it may carry a password.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if text == "embedded" {
            return Ok(Target::Embedded);
        }
        let shown = redact(text);
        let uri: Uri = text.parse().map_err(|e| {
            format!("`{shown}` is not a URL ({e}): write e.g. ws://127.0.0.1:8080/ws or `embedded`")
        })?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => {
                return Err(format!(
                    "`{shown}`: the target must start with ws:// or wss:// (or be `embedded`)"
                ))
            }
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        let host = uri
            .host()
            .filter(|h| !h.is_empty() && *h != "[]")
            .ok_or_else(|| format!("`{shown}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        // `http::Uri` reads a port it cannot fit in 16 bits as no port at all, which
        // would connect to 80: read the port text ourselves.
        let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port_text = match host_and_port.rfind(']') {
            Some(end) => host_and_port[end + 1..].strip_prefix(':'),
            None => host_and_port.split_once(':').map(|(_, p)| p),
        };
        let port = match port_text {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(format!(
                        "`{shown}`: `{p}` is not a port: write a number from 1 to 65535, or \
                         leave it out for {}",
                        if tls { "443" } else { "80" }
                    ))
                }
            },
        };
        Ok(Target::Url(TargetUrl {
            uri,
            host,
            port,
            tls,
        }))
    }
}

/// Card data: one row per session, pinned to that session across reconnects.
#[derive(Debug, Clone, Default)]
pub struct Cards {
    /// Column names, from the header row.
    pub columns: Vec<String>,
    /// Data rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Cards {
    /// Loads a CSV file with a header row.
    /// Only a regular file of at most [`input::DATA_MAX_BYTES`] is read.
    pub fn load(path: &Path) -> Result<Cards, String> {
        let bytes = input::read_capped(path, input::DATA_MAX_BYTES)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(bytes.as_slice());
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
            rows.push(record.iter().map(str::to_owned).collect());
        }
        if rows.is_empty() {
            return Err(format!("{}: has a header but no data rows", path.display()));
        }
        Ok(Cards { columns, rows })
    }

    /// The row for a session: rows are dealt round-robin by session id.
    pub fn row(&self, session_id: u32) -> &[String] {
        &self.rows[session_id as usize % self.rows.len()]
    }
}

/// The error for `{{ heartbeat.seq }}` outside the heartbeat.
const SEQ_ONLY_IN_HEARTBEAT: &str =
    "`{{ heartbeat.seq }}` numbers heartbeats: it can only be used in `heartbeat.send` and \
     `heartbeat.expect`";

/// One request/reply step (auth, bindCard).
#[derive(Debug, Clone)]
pub struct Step {
    /// The message to send; `None` when the script's hook builds it.
    pub send: Option<Template>,
    /// The reply that means success. Without it, a successful send is success.
    pub expect: Option<Matcher>,
    /// A reply that means rejection. Other replies are skipped while waiting.
    pub reject: Option<Matcher>,
    /// How long to wait for a reply matching `expect` or `reject`.
    pub timeout: Duration,
}

/// The heartbeat: a message on a fixed timetable.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Time between scheduled sends (the article's `timeout`).
    pub interval: Duration,
    /// The message to send; `None` when the script's hook builds it.
    pub send: Option<Template>,
    /// The ack that makes a heartbeat healthy. Without it, a successful send does.
    pub expect: Option<Matcher>,
    /// How long after its send an ack may arrive. At most `interval`.
    pub timeout: Duration,
    /// Consecutive failures tolerated; one more drops the socket and reconnects.
    pub max_failures: u32,
}

/// How long to wait before reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Always `delay`.
    #[default]
    Fixed,
    /// `delay`, doubled per consecutive failed attempt, up to `max_delay`.
    Exponential,
}

/// The reconnect policy.
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// The base delay.
    pub delay: Duration,
    /// Fixed or exponential.
    pub backoff: Backoff,
    /// Cap for exponential backoff.
    pub max_delay: Duration,
    /// Random spread, as a fraction of the delay: 0.2 means ±20%.
    pub jitter: f64,
}

impl Reconnect {
    /// The delay before reconnect attempt `attempt` (1 for the first after a failure).
    /// `unit` is a uniform random number in [0, 1).
    pub fn delay_for(&self, attempt: u32, unit: f64) -> Duration {
        let base = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => {
                let shift = attempt.saturating_sub(1).min(30);
                self.delay.saturating_mul(1 << shift).min(self.max_delay)
            }
        };
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        base.mul_f64(spread.max(0.0))
    }
}

/// Connection settings.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// Limit on TCP connect + TLS + WebSocket handshake.
    pub timeout: Duration,
    /// Extra handshake headers, as `wx.connectSocket`'s `header`, with `{{ env.NAME }}`
    /// resolved.
    pub headers: Vec<(String, String)>,
    /// Names of the headers whose value took something from the environment: secrets,
    /// shown as `***` ([`Connect::shown_headers`]).
    pub from_env: Vec<String>,
    /// Requested subprotocols, as `wx.connectSocket`'s `protocols`.
    pub subprotocols: Vec<String>,
}

impl Connect {
    /// The headers as wsoak shows them: `name: value`, with values that took something
    /// from the environment as `***`.
    pub fn shown_headers(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(name, value)| {
                if self.from_env.contains(name) {
                    format!("{name}: ***")
                } else {
                    format!("{name}: {value}")
                }
            })
            .collect()
    }
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

/// A validated, compiled scenario. Immutable; shared by every shard.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name used for the report directory and the summary.
    pub name: String,
    /// The file it came from.
    pub source: PathBuf,
    /// Where sessions connect.
    pub target: Target,
    /// The most sessions that run at once (the closed model's peak, or the open model's
    /// cap).
    pub sessions: u32,
    /// How long the run lasts.
    pub duration: Duration,
    /// When sessions start and stop.
    pub shape: Shape,
    /// Pages leaving and coming back, if they do.
    pub churn: Option<Churn>,
    /// Pass/fail checks on the report.
    pub thresholds: Vec<Threshold>,
    /// Connection settings.
    pub connect: Connect,
    /// Card data, when the scenario has any.
    pub cards: Option<Cards>,
    /// The auth step; without it sessions go straight to bindCard.
    pub auth: Option<Step>,
    /// The bindCard step; without it sessions heartbeat right after auth.
    pub bind_card: Option<Step>,
    /// The heartbeat.
    pub heartbeat: Heartbeat,
    /// The reconnect policy.
    pub reconnect: Reconnect,
    /// Faults for the embedded reference server.
    pub server: Faults,
    /// Rhai hooks, compiled once and shared by every shard.
    pub script: Option<Arc<Script>>,
}

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

// ---- the raw file model -------------------------------------------------------------

fn default_sessions() -> u32 {
    100
}
fn default_duration() -> Duration {
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
fn default_max_delay() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    target: Option<String>,
    sessions: Option<u32>,
    #[serde(default, with = "units::opt_duration")]
    duration: Option<Duration>,
    #[serde(default, with = "units::opt_duration")]
    ramp_up: Option<Duration>,
    load: Option<RawLoad>,
    churn: Option<RawChurn>,
    #[serde(default)]
    thresholds: Vec<RawThreshold>,
    #[serde(default)]
    connect: RawConnect,
    data: Option<RawData>,
    auth: Option<RawStep>,
    bind_card: Option<RawStep>,
    heartbeat: RawHeartbeat,
    #[serde(default)]
    reconnect: RawReconnect,
    #[serde(default)]
    server: Faults,
    script: Option<RawScript>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawScript {
    File(PathBuf),
    Full(RawScriptFull),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScriptFull {
    file: Option<PathBuf>,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    limits: Option<Limits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    stages: Option<Vec<Stage>>,
    arrival: Option<RawArrival>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrival {
    #[serde(default)]
    rate: f64,
    #[serde(default)]
    stages: Vec<RateStage>,
    max_sessions: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChurn {
    dwell: String,
    away: Option<String>,
    #[serde(default, with = "units::fraction")]
    hidden: f64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawThreshold {
    Check(String),
    Full(RawThresholdFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholdFull {
    check: String,
    #[serde(default)]
    abort_on_fail: bool,
    #[serde(default, with = "units::opt_duration")]
    delay: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnect {
    #[serde(default = "default_step_timeout", with = "units::duration")]
    timeout: Duration,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    subprotocols: Vec<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    cards: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    send: Option<serde_json::Value>,
    expect: Option<serde_json::Map<String, serde_json::Value>>,
    reject: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default = "default_step_timeout", with = "units::duration")]
    timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    #[serde(default = "default_interval", with = "units::duration")]
    interval: Duration,
    send: Option<serde_json::Value>,
    expect: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, with = "units::opt_duration")]
    timeout: Option<Duration>,
    #[serde(default = "default_max_failures")]
    max_failures: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconnect {
    #[serde(default, with = "units::opt_duration")]
    delay: Option<Duration>,
    #[serde(default)]
    backoff: Backoff,
    #[serde(default = "default_max_delay_opt", with = "units::opt_duration")]
    max_delay: Option<Duration>,
    #[serde(default)]
    jitter: f64,
}

fn default_max_delay_opt() -> Option<Duration> {
    Some(default_max_delay())
}

// ---- loading ------------------------------------------------------------------------

/// Reads, parses, compiles and validates a scenario file (YAML, or a `.rhai` script whose
/// `scenario()` returns the same settings), then applies `overrides`.
///
/// Only a regular file of at most [`input::SCENARIO_MAX_BYTES`] is read. Parsing runs on
/// a thread with the script stack ([`crate::script::on_script_stack`]): a `.rhai`
/// scenario's `scenario()` runs while loading.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
    let read_error = |source| ScenarioError::Read {
        path: path.display().to_string(),
        source,
    };
    let text = input::read_text_capped(path, input::SCENARIO_MAX_BYTES).map_err(read_error)?;
    crate::script::on_script_stack(|| {
        if path.extension().is_some_and(|e| e == "rhai") {
            parse_rhai(&text, path, overrides)
        } else {
            parse(&text, path, overrides)
        }
    })
    .map_err(read_error)?
}

/// Refuses text past the size cap, for scenarios parsed from memory.
fn check_size(text: &str, shown: &str) -> Result<(), ScenarioError> {
    if text.len() as u64 > input::SCENARIO_MAX_BYTES {
        return Err(ScenarioError::Invalid {
            path: shown.to_owned(),
            message: format!(
                "is {} bytes, over the limit of {} ({} KiB)",
                text.len(),
                input::SCENARIO_MAX_BYTES,
                input::SCENARIO_MAX_BYTES / 1024
            ),
        });
    }
    Ok(())
}

/// The error for sandbox limits out of range, at `script.limits.<name>`.
fn limits_error(
    at: &dyn Fn(&[&str], String) -> ScenarioError,
    limits: Option<&Limits>,
) -> Result<(), ScenarioError> {
    match limits.map(Limits::validate) {
        Some(Err(e)) => Err(at(&["script", "limits", e.name], e.to_string())),
        _ => Ok(()),
    }
}

/// A `.rhai` scenario: `fn scenario()` returns the settings a YAML file would hold, and
/// the same file defines the hooks.
pub fn parse_rhai(
    text: &str,
    path: &Path,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioError> {
    let shown = path.display().to_string();
    check_size(text, &shown)?;
    let compile_error = |e: crate::script::CompileError| match e.line {
        Some(line) => ScenarioError::At {
            path: shown.clone(),
            line,
            column: e.column.unwrap_or(1),
            message: e.message,
        },
        None => ScenarioError::Invalid {
            path: shown.clone(),
            message: e.message,
        },
    };
    let probe =
        Script::compile(text, Limits::default(), OnError::default()).map_err(compile_error)?;
    if !probe.defines("scenario") {
        return Err(ScenarioError::Invalid {
            path: shown,
            message: "a .rhai scenario defines `fn scenario()` returning its settings as a map \
                      (the same keys as a YAML scenario)"
                .into(),
        });
    }
    let settings = probe
        .call_plain("scenario")
        .map_err(|m| ScenarioError::Invalid {
            path: shown.clone(),
            message: format!("scenario(): {m}"),
        })?;
    let raw: RawScenario =
        rhai::serde::from_dynamic(&settings).map_err(|e| ScenarioError::Invalid {
            path: shown.clone(),
            message: format!("scenario(): {e}"),
        })?;
    let options = match &raw.script {
        None => RawScriptFull::default(),
        Some(RawScript::Full(full)) if full.file.is_none() => RawScriptFull {
            file: None,
            on_error: full.on_error,
            limits: full.limits,
        },
        Some(_) => {
            return Err(ScenarioError::Invalid {
                path: shown,
                message: "scenario(): a .rhai scenario is its own script: `script` may set \
                          `on_error` and `limits`, not a file"
                    .into(),
            })
        }
    };
    let at = |field: &[&str], message: String| ScenarioError::Invalid {
        path: shown.clone(),
        message: format!("scenario() → {}: {message}", field.join(".")),
    };
    limits_error(&at, options.limits.as_ref())?;
    let script = Script::compile(text, options.limits.unwrap_or_default(), options.on_error)
        .map_err(compile_error)?;
    compile(raw, path, overrides, &at, Some(script))
}

/// Parses scenario text; `path` names it in errors and anchors relative data files.
pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
    let shown = path.display().to_string();
    check_size(text, &shown)?;
    if let Some((line, column)) = input::too_deep(text, input::MAX_NESTING) {
        return Err(ScenarioError::At {
            path: shown,
            line,
            column,
            message: format!(
                "nests deeper than {} levels (indentation and brackets together): no \
                 scenario needs that",
                input::MAX_NESTING
            ),
        });
    }
    let raw: RawScenario = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(loc) => ScenarioError::At {
            path: shown.clone(),
            line: loc.line(),
            column: loc.column(),
            message: strip_location(&e.to_string()),
        },
        None => ScenarioError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        },
    })?;
    let at = |field: &[&str], message: String| match locate(text, field) {
        Some((line, column)) => ScenarioError::At {
            path: shown.clone(),
            line,
            column,
            message: format!("{}: {message}", field.join(".")),
        },
        None => ScenarioError::Invalid {
            path: shown.clone(),
            message: format!("{}: {message}", field.join(".")),
        },
    };
    let script = match &raw.script {
        None => None,
        Some(RawScript::File(file)) => Some(load_script(path, file, &RawScriptFull::default())?),
        Some(RawScript::Full(full)) => match &full.file {
            Some(file) => {
                limits_error(&at, full.limits.as_ref())?;
                Some(load_script(path, file, full)?)
            }
            None => {
                return Err(at(
                    &["script", "file"],
                    "names the .rhai file with the hooks".into(),
                ))
            }
        },
    };
    compile(raw, path, overrides, &at, script)
}

/// Reads and compiles the hooks file a YAML scenario names.
fn load_script(
    scenario: &Path,
    file: &Path,
    options: &RawScriptFull,
) -> Result<Script, ScenarioError> {
    let (path, text) =
        crate::script::read(scenario, file).map_err(|source| ScenarioError::Read {
            path: scenario
                .parent()
                .unwrap_or(Path::new("."))
                .join(file)
                .display()
                .to_string(),
            source,
        })?;
    Script::compile(&text, options.limits.unwrap_or_default(), options.on_error).map_err(
        |e| match e.line {
            Some(line) => ScenarioError::At {
                path: path.display().to_string(),
                line,
                column: e.column.unwrap_or(1),
                message: e.message,
            },
            None => ScenarioError::Invalid {
                path: path.display().to_string(),
                message: e.message,
            },
        },
    )
}

fn compile(
    raw: RawScenario,
    path: &Path,
    overrides: &Overrides,
    at: &dyn Fn(&[&str], String) -> ScenarioError,
    script: Option<Script>,
) -> Result<Scenario, ScenarioError> {
    let name = raw.name.unwrap_or_else(|| {
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
    let target = match (&overrides.target, &raw.target) {
        (Some(t), _) => t.clone(),
        (None, Some(text)) => Target::parse(text).map_err(|m| at(&["target"], m))?,
        (None, None) => Target::Embedded,
    };
    let shape = match &raw.load {
        None => {
            let sessions = overrides
                .sessions
                .or(raw.sessions)
                .unwrap_or(default_sessions());
            if sessions == 0 {
                return Err(at(&["sessions"], "must be at least 1".into()));
            }
            let ramp_up = overrides.ramp_up.or(raw.ramp_up).unwrap_or_default();
            Shape::ramp_and_hold(sessions, ramp_up)
        }
        Some(load) => {
            if raw.sessions.is_some() || raw.ramp_up.is_some() {
                return Err(at(
                    &["load"],
                    "use either `sessions`/`ramp_up` or `load`, not both".into(),
                ));
            }
            if overrides.sessions.is_some() || overrides.ramp_up.is_some() {
                return Err(at(
                    &["load"],
                    "--sessions and --ramp-up apply to `sessions:` scenarios; this one sets \
                     `load:`"
                        .into(),
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
                    Shape::Closed {
                        stages: stages.clone(),
                    }
                }
                (None, Some(arrival)) => {
                    let rates =
                        std::iter::once(arrival.rate).chain(arrival.stages.iter().map(|s| s.rate));
                    if rates.clone().any(|r| !r.is_finite() || r < 0.0)
                        || rates.clone().all(|r| r == 0.0)
                    {
                        return Err(at(
                            &["load", "arrival"],
                            "rates are arrivals per second: at least one above 0, none negative"
                                .into(),
                        ));
                    }
                    if arrival.max_sessions == 0 {
                        return Err(at(
                            &["load", "arrival", "max_sessions"],
                            "must be at least 1".into(),
                        ));
                    }
                    Shape::Open {
                        start_rate: arrival.rate,
                        stages: arrival.stages.clone(),
                        max_sessions: arrival.max_sessions,
                    }
                }
                _ => {
                    return Err(at(
                        &["load"],
                        "set exactly one of `stages` (closed model) or `arrival` (open model)"
                            .into(),
                    ))
                }
            }
        }
    };
    let sessions = shape.max_sessions();
    let duration = match (overrides.duration, raw.duration) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) if raw.load.is_some() => shape.stages_end(),
        (None, None) => default_duration(),
    };
    if duration.is_zero() {
        return Err(at(&["duration"], "must be longer than 0s".into()));
    }
    let churn = match &raw.churn {
        None => None,
        Some(c) => Some(Churn {
            dwell: Spread::parse(&c.dwell).map_err(|m| at(&["churn", "dwell"], m))?,
            away: c
                .away
                .as_deref()
                .map(Spread::parse)
                .transpose()
                .map_err(|m| at(&["churn", "away"], m))?,
            hidden: c.hidden,
        }),
    };
    let mut thresholds = Vec::new();
    for raw_threshold in &raw.thresholds {
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

    let cards = match &raw.data {
        Some(data) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(&data.cards);
            Some(Cards::load(&file).map_err(|m| at(&["data", "cards"], m))?)
        }
        None => None,
    };
    let columns: &[String] = cards.as_ref().map(|c| c.columns.as_slice()).unwrap_or(&[]);
    let env = |name: &str| std::env::var(name).ok();

    let has = |hook: Hook| script.as_ref().is_some_and(|s| s.has(hook));
    let send = |value: &Option<serde_json::Value>, key: &str, hook: Hook| match value {
        Some(v) => Template::compile(v, columns, env)
            .map(Some)
            .map_err(|m| at(&[key, "send"], m)),
        None if has(hook) => Ok(None),
        None => Err(at(
            &[key],
            format!(
                "needs `send`, or a script with `fn {}(session)`",
                hook.name()
            ),
        )),
    };
    let step = |raw: Option<RawStep>, key: &str| -> Result<Option<Step>, ScenarioError> {
        let Some(raw) = raw else { return Ok(None) };
        let hook = if key == "auth" {
            Hook::Auth
        } else {
            Hook::BindCard
        };
        let send = send(&raw.send, key, hook)?;
        let expect = raw
            .expect
            .as_ref()
            .map(Matcher::compile)
            .transpose()
            .map_err(|m| at(&[key, "expect"], m))?;
        let reject = raw
            .reject
            .as_ref()
            .map(Matcher::compile)
            .transpose()
            .map_err(|m| at(&[key, "reject"], m))?;
        if reject.is_some() && expect.is_none() {
            return Err(at(
                &[key, "reject"],
                "a step with `reject` needs `expect` too".into(),
            ));
        }
        if raw.timeout.is_zero() {
            return Err(at(&[key, "timeout"], "must be longer than 0s".into()));
        }
        if send.as_ref().is_some_and(Template::uses_heartbeat_seq) {
            return Err(at(&[key, "send"], SEQ_ONLY_IN_HEARTBEAT.into()));
        }
        for (matcher, field) in [(&expect, "expect"), (&reject, "reject")] {
            if matcher.as_ref().is_some_and(Matcher::has_seq) {
                return Err(at(&[key, field], SEQ_ONLY_IN_HEARTBEAT.into()));
            }
        }
        Ok(Some(Step {
            send,
            expect,
            reject,
            timeout: raw.timeout,
        }))
    };
    let auth = step(raw.auth, "auth")?;
    let bind_card = step(raw.bind_card, "bind_card")?;

    let hb = raw.heartbeat;
    if hb.interval < Duration::from_millis(1) {
        return Err(at(
            &["heartbeat", "interval"],
            "must be at least 1ms".into(),
        ));
    }
    let hb_timeout = hb.timeout.unwrap_or(hb.interval);
    if hb_timeout.is_zero() || hb_timeout > hb.interval {
        return Err(at(
            &["heartbeat", "timeout"],
            format!(
                "must be longer than 0s and at most the interval ({}), so that one heartbeat's \
                 fate is known before the next is due",
                units::format_duration(hb.interval)
            ),
        ));
    }
    let hb_send = send(&hb.send, "heartbeat", Hook::Heartbeat)?;
    let hb_expect = hb
        .expect
        .as_ref()
        .map(Matcher::compile)
        .transpose()
        .map_err(|m| at(&["heartbeat", "expect"], m))?;
    if hb_expect.as_ref().is_some_and(Matcher::has_seq) {
        if has(Hook::HeartbeatReply) {
            return Err(at(
                &["heartbeat", "expect"],
                "the script's `heartbeat_reply` judges acks, so `expect` cannot match \
                 `{{ heartbeat.seq }}`: read the number in the hook instead"
                    .into(),
            ));
        }
        if !hb_send.as_ref().is_some_and(Template::uses_heartbeat_seq) {
            return Err(at(
                &["heartbeat", "expect"],
                "matches `{{ heartbeat.seq }}`, but `heartbeat.send` does not carry it: \
                 put the placeholder in the message the server echoes"
                    .into(),
            ));
        }
    }
    let heartbeat = Heartbeat {
        interval: hb.interval,
        send: hb_send,
        expect: hb_expect,
        timeout: hb_timeout,
        max_failures: hb.max_failures,
    };

    let rc = raw.reconnect;
    if !(0.0..=1.0).contains(&rc.jitter) {
        return Err(at(
            &["reconnect", "jitter"],
            "must be between 0 and 1".into(),
        ));
    }
    let reconnect = Reconnect {
        // The article has no backoff: its retry rhythm is the heartbeat interval.
        delay: rc.delay.unwrap_or(heartbeat.interval),
        backoff: rc.backoff,
        max_delay: rc.max_delay.unwrap_or_else(default_max_delay),
        jitter: rc.jitter,
    };

    let mut headers = Vec::new();
    let mut from_env = Vec::new();
    for (key, value) in raw.connect.headers {
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
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
    if raw.connect.timeout.is_zero() {
        return Err(at(&["connect", "timeout"], "must be longer than 0s".into()));
    }

    if let Err((key, message)) = raw.server.validate() {
        return Err(at(&["server", key], message));
    }
    if target != Target::Embedded && raw.server.is_active() {
        // Faults only mean something for the embedded server; say so rather than ignore.
        return Err(at(
            &["server"],
            "server faults apply only to `target: embedded`; for a separate server pass them \
             to `wsoak serve`"
                .into(),
        ));
    }

    Ok(Scenario {
        name,
        source: path.to_path_buf(),
        target,
        sessions,
        duration,
        shape,
        churn,
        thresholds,
        connect: Connect {
            timeout: raw.connect.timeout,
            headers,
            from_env,
            subprotocols: raw.connect.subprotocols,
        },
        cards,
        auth,
        bind_card,
        heartbeat,
        reconnect,
        server: raw.server,
        script: script.map(Arc::new),
    })
}

/// serde_yaml appends " at line L column C" to its messages; we print the place first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Finds the line and column of a key path (`["heartbeat", "timeout"]`) in block-style
/// YAML, for errors found after parsing. Falls back to the deepest ancestor found.
fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let mut found = None;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(p) = parent_indent {
            if indent <= p {
                // Left the block of the key we matched last: the path is not below it.
                break;
            }
        }
        let key = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if depth < path.len() && key == path[depth] && trimmed.contains(':') {
            found = Some((number + 1, indent + 1));
            depth += 1;
            if depth == path.len() {
                break;
            }
            parent_indent = Some(indent);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
heartbeat:
  interval: 1s
  send: {type: heartBeat}
";

    fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
        parse(text, Path::new("test.yaml"), &Overrides::default())
    }

    #[test]
    fn minimal_scenario_has_sane_defaults() {
        let s = parse_str(MINIMAL).unwrap();
        assert_eq!(s.name, "test");
        assert_eq!(s.target, Target::Embedded);
        assert_eq!(s.sessions, 100);
        assert_eq!(s.heartbeat.timeout, Duration::from_secs(1));
        assert_eq!(s.heartbeat.max_failures, 2);
        assert_eq!(s.reconnect.delay, Duration::from_secs(1));
        assert!(s.auth.is_none());
    }

    #[test]
    fn unknown_field_names_its_line() {
        let text = "heartbeat:\n  interval: 1s\n  send: {type: heartBeat}\n  intervall: 2s\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:4:"), "{e}");
        assert!(e.contains("intervall"), "{e}");
    }

    #[test]
    fn bad_duration_names_its_line() {
        let text = "duration: 10\nheartbeat:\n  send: {type: heartBeat}\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:1:"), "{e}");
        assert!(e.contains("no unit"), "{e}");
    }

    #[test]
    fn semantic_error_is_located() {
        let text = "heartbeat:\n  interval: 1s\n  send: {type: heartBeat}\n  timeout: 2s\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:4:3: heartbeat.timeout"), "{e}");
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
    fn targets_parse() {
        assert_eq!(Target::parse("embedded").unwrap(), Target::Embedded);
        let Target::Url(u) = Target::parse("wss://[::1]/ws").unwrap() else {
            panic!()
        };
        assert_eq!((u.host.as_str(), u.port, u.tls), ("::1", 443, true));
        assert!(Target::parse("http://127.0.0.1/").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn bad_ports_schemes_and_hosts_are_refused() {
        for (text, says) in [
            ("ws://127.0.0.1:99999/", "`99999` is not a port"),
            ("ws://127.0.0.1:0/", "`0` is not a port"),
            ("ws://127.0.0.1:/", "`` is not a port"),
            ("ws://127.0.0.1:8x/", "not a"),
            ("wss://[::1]:65536/", "`65536` is not a port"),
            ("http://127.0.0.1/", "must start with ws://"),
            ("127.0.0.1:8080", "must start with ws://"),
            ("ws:///path", "not a URL"),
            ("ws://u:secret@:80/", "has no host"),
        ] {
            let e = Target::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
        let Target::Url(u) = Target::parse("ws://127.0.0.1:65535").unwrap() else {
            panic!()
        };
        assert_eq!(u.port, 65535);
        let text = "target: ws://127.0.0.1:99999/\nheartbeat:\n  send: x\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:1:1: target:"), "{e}");
    }

    #[test]
    fn secrets_in_target_urls_are_never_shown() {
        let text = "ws://bob:hunter2@127.0.0.1:9/ws?token=abc&v=1&flag#frag";
        let Target::Url(u) = Target::parse(text).unwrap() else {
            panic!()
        };
        // The real URL connects; what is shown hides the secrets.
        assert!(u.uri.to_string().contains("hunter2"));
        assert_eq!(u.port, 9);
        let shown = "ws://***@127.0.0.1:9/ws?token=***&v=***&***";
        assert_eq!(Target::Url(u.clone()).to_string(), shown);
        assert_eq!(u.redacted(), shown);
        assert_eq!(redact(text), format!("{shown}#***"));
        assert_eq!(redact("ws://h/p"), "ws://h/p");
        assert_eq!(redact("ws://a@b@h?"), "ws://***@h?");
        assert_eq!(redact("garbage?x=1"), "garbage?x=***");
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
    fn script_limits_out_of_range_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h.rhai"), "fn heartbeat(s) { \"x\" }").unwrap();
        let scenario = dir.path().join("s.yaml");
        for (limits, line, says) in [
            (
                "{max_operations: 0}",
                3,
                "max_operations: must be between 100 and 1000000",
            ),
            (
                "\n    max_string_size: 0",
                4,
                "max_string_size: must be between 64",
            ),
            (
                "\n    max_call_levels: 500",
                4,
                "max_call_levels: must be between 1 and 64",
            ),
        ] {
            let text = format!("heartbeat: {{}}\nscript:\n  limits: {limits}\n  file: h.rhai\n");
            std::fs::write(&scenario, &text).unwrap();
            let e = load(&scenario, &Overrides::default())
                .unwrap_err()
                .to_string();
            let place = format!("s.yaml:{line}:");
            assert!(e.contains(&place) && e.contains(says), "{text}\n{e}");
        }
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

    #[test]
    fn oversized_and_overnested_scenarios_are_refused_quickly() {
        let started = std::time::Instant::now();
        let deep = format!("heartbeat:\n  send: {}\n", "[".repeat(200_000));
        let e = parse_str(&deep).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:2:"), "{e}");
        assert!(e.contains("deeper than 64"), "{e}");
        let big = format!("# {}\n{MINIMAL}", "x".repeat(1024 * 1024));
        let e = parse_str(&big).unwrap_err().to_string();
        assert!(e.contains("over the limit of 1048576"), "{e}");
        // A generous bound: the quadratic parse took over 20 s on 200 KB of `[`.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn data_files_must_be_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.yaml");
        std::fs::write(
            &scenario,
            "data: {cards: /dev/zero}\nheartbeat:\n  send: x\n",
        )
        .unwrap();
        let e = load(&scenario, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.yaml:1:1: data.cards: /dev/zero: is a device"),
            "{e}"
        );
        std::fs::write(&scenario, "data: {cards: .}\nheartbeat:\n  send: x\n").unwrap();
        let e = load(&scenario, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let r = Reconnect {
            delay: Duration::from_millis(100),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_millis(350),
            jitter: 0.0,
        };
        assert_eq!(r.delay_for(1, 0.5), Duration::from_millis(100));
        assert_eq!(r.delay_for(2, 0.5), Duration::from_millis(200));
        assert_eq!(r.delay_for(3, 0.5), Duration::from_millis(350));
        let j = Reconnect {
            jitter: 0.5,
            backoff: Backoff::Fixed,
            ..r
        };
        assert_eq!(j.delay_for(9, 0.0), Duration::from_millis(50));
        assert_eq!(j.delay_for(9, 1.0), Duration::from_millis(150));
    }

    #[test]
    fn locate_follows_nesting() {
        let text = "auth:\n  timeout: 1s\nheartbeat:\n  # c\n  timeout: 2s\n";
        assert_eq!(locate(text, &["heartbeat", "timeout"]), Some((5, 3)));
        assert_eq!(locate(text, &["auth", "timeout"]), Some((2, 3)));
        assert_eq!(locate(text, &["heartbeat", "nope"]), Some((3, 1)));
    }
}
