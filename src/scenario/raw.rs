//! The raw file model: the serde types a YAML file (or a `.rhai` scenario's `scenario()`
//! map) is read into, with their defaults. `deny_unknown_fields` everywhere, so a typo is
//! an error, not a silently ignored key. It only describes the file's shape: checking
//! values and compiling them is `compile`'s job.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: Option<String>,
    pub(super) target: Option<String>,
    pub(super) sessions: Option<u32>,
    #[serde(default, with = "units::opt_duration")]
    pub(super) duration: Option<Duration>,
    #[serde(default, with = "units::opt_duration")]
    pub(super) ramp_up: Option<Duration>,
    pub(super) load: Option<RawLoad>,
    pub(super) churn: Option<RawChurn>,
    #[serde(default)]
    pub(super) thresholds: Vec<RawThreshold>,
    #[serde(default)]
    pub(super) connect: RawConnect,
    pub(super) data: Option<RawData>,
    pub(super) auth: Option<RawStep>,
    pub(super) bind_card: Option<RawStep>,
    #[serde(default)]
    pub(super) steps: Vec<RawNamedStep>,
    pub(super) heartbeat: RawHeartbeat,
    #[serde(default)]
    pub(super) reconnect: RawReconnect,
    #[serde(default)]
    pub(super) server: Faults,
    pub(super) script: Option<RawScript>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawScript {
    File(PathBuf),
    Full(RawScriptFull),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScriptFull {
    pub(super) file: Option<PathBuf>,
    #[serde(default)]
    pub(super) on_error: OnError,
    #[serde(default)]
    pub(super) limits: Option<Limits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub(super) stages: Option<Vec<Stage>>,
    pub(super) arrival: Option<RawArrival>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArrival {
    #[serde(default)]
    pub(super) rate: f64,
    #[serde(default)]
    pub(super) stages: Vec<RateStage>,
    pub(super) max_sessions: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChurn {
    pub(super) dwell: String,
    pub(super) away: Option<String>,
    #[serde(default, with = "units::fraction")]
    pub(super) hidden: f64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawThreshold {
    Check(String),
    Full(RawThresholdFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholdFull {
    pub(super) check: String,
    #[serde(default)]
    pub(super) abort_on_fail: bool,
    #[serde(default, with = "units::opt_duration")]
    pub(super) delay: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnect {
    #[serde(default = "default_step_timeout", with = "units::duration")]
    pub(super) timeout: Duration,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub(super) cards: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) send: Option<serde_json::Value>,
    pub(super) expect: Option<serde_json::Map<String, serde_json::Value>>,
    pub(super) reject: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default = "default_step_timeout", with = "units::duration")]
    pub(super) timeout: Duration,
}

/// One entry of `steps:`: a step with its name. (The same fields as [`RawStep`]; serde
/// cannot deny unknown fields through `flatten`.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNamedStep {
    pub(super) name: String,
    pub(super) send: Option<serde_json::Value>,
    pub(super) expect: Option<serde_json::Map<String, serde_json::Value>>,
    pub(super) reject: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default = "default_step_timeout", with = "units::duration")]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    #[serde(default = "default_interval", with = "units::duration")]
    pub(super) interval: Duration,
    pub(super) send: Option<serde_json::Value>,
    pub(super) expect: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, with = "units::opt_duration")]
    pub(super) timeout: Option<Duration>,
    #[serde(default = "default_max_failures")]
    pub(super) max_failures: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReconnect {
    #[serde(default, with = "units::opt_duration")]
    pub(super) delay: Option<Duration>,
    #[serde(default)]
    pub(super) backoff: Backoff,
    #[serde(default = "default_max_delay_opt", with = "units::opt_duration")]
    pub(super) max_delay: Option<Duration>,
    #[serde(default)]
    pub(super) jitter: f64,
}

fn default_max_delay_opt() -> Option<Duration> {
    Some(default_max_delay())
}
