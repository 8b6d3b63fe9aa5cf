//! The compiled scenario: the typed, immutable model every shard shares ([`Scenario`]
//! and its parts). Everything here is already checked and compiled; nothing in it is
//! parsed again during the run. It must not read files or know the YAML's shape (that is
//! `raw` and `compile`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::cards::Cards;
use super::matcher::Matcher;
use super::target::Target;
use super::template::Template;
use crate::faults::Faults;
use crate::load::{Churn, Shape};
use crate::script::{Hook, Script};
use crate::threshold::Threshold;

/// One request/reply step (auth, bindCard, or any of `steps:`), run in order after
/// connect and before heartbeats.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its name: the name of its latency, errors, counts and hooks.
    pub name: Arc<str>,
    /// The hook that builds its message, `fn <name>(session)`, used when the script has it.
    pub build: Hook,
    /// The hook that judges replies, `fn <name>_reply(session, msg)`, used when the script
    /// has it.
    pub judge: Hook,
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
#[derive(
    Debug, Clone, Copy, PartialEq, Default, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
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
    /// The request/reply steps, in order: `auth` and `bind_card` (when the file has them),
    /// then `steps:`. Without any, sessions heartbeat right after connecting.
    pub steps: Vec<Step>,
    /// The heartbeat.
    pub heartbeat: Heartbeat,
    /// The reconnect policy.
    pub reconnect: Reconnect,
    /// Faults for the embedded reference server.
    pub server: Faults,
    /// Rhai hooks, compiled once and shared by every shard.
    pub script: Option<Arc<Script>>,
}

impl Scenario {
    /// The steps' names, in order: what every recorder of the run is made for.
    pub fn step_names(&self) -> Vec<Arc<str>> {
        self.steps.iter().map(|s| s.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
