//! The report: a versioned JSON document (`schema: "wsoak.report/1"`, described by
//! `schema/report.schema.json`) and the text summary printed at the end of a run.
//!
//! Latencies are reported in milliseconds with microsecond resolution. A metric with no
//! samples reports `count: 0` and `null` for every statistic, never a made-up zero.

pub mod compare;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod merge;
pub mod prometheus;
pub mod threshold;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{Counter, ErrorKind, Gauges, Metric, Recorder, Section, State, StepRecord};
use crate::server::ServerStats;
use threshold::Verdict;

/// The schema identifier of this report format.
pub const SCHEMA: &str = "wsoak.report/1";

/// A run's report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// What produced the run: wsoak's version, the scenario file's hash, the command.
    #[serde(default)]
    pub wsoak: Identity,
    /// The scenario's name.
    pub scenario: String,
    /// The target URL; `embedded (…)` for the in-process server.
    pub target: String,
    /// RFC 3339 UTC time the load started.
    pub started_at: String,
    /// Seconds from the first connect to the last session closing.
    pub duration_s: f64,
    /// True when Ctrl-C or SIGTERM ended the run before its duration.
    pub interrupted: bool,
    /// The `abort_on_fail` threshold that ended the run early, if one did.
    pub aborted_by: Option<String>,
    /// For one shard of a run spread over several processes or machines (`wsoak run
    /// --shard I/N`): which shard, and the run's shared start. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shard: Option<ShardIdentity>,
    /// For a merged run (`wsoak merge`): the shards merged, and those missing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub merged: Option<Merged>,
    /// Session milestones.
    pub sessions: Sessions,
    /// Session starts the load shape asked for.
    pub arrivals: Arrivals,
    /// Connect attempts.
    pub connects: Connects,
    /// Heartbeats.
    pub heartbeats: Heartbeats,
    /// Messages received.
    pub messages: Messages,
    /// Reconnects.
    pub reconnects: Reconnects,
    /// Latency per metric (connect, each step, heartbeat, …), in milliseconds.
    pub latency_ms: BTreeMap<String, Latency>,
    /// Each request/reply step's counts, by the step's name, in the scenario's order.
    #[serde(default)]
    pub steps: Steps,
    /// Failures by kind (every kind listed, zero or not), plus `script.<hook>` for each
    /// script hook that failed.
    pub errors: BTreeMap<String, u64>,
    /// Metrics scripts recorded.
    pub custom: Custom,
    /// Each threshold's verdict, in the order given.
    pub thresholds: Vec<Verdict>,
    /// Worker processes that died before their sessions ended; empty when none did.
    #[serde(default)]
    pub lost_workers: Vec<LostWorker>,
    /// What the first internal errors (`errors.internal`: wsoak itself failed, a caught
    /// panic) said. Present only when there were any: then the run is not to be trusted.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub internal_errors: Vec<String>,
    /// What the embedded reference server saw; absent for external targets.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server: Option<ServerStats>,
    /// The tester's own footprint.
    pub tester: Tester,
}

/// Sessions that reached each milestone at least once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sessions {
    /// Sessions the scenario asked for.
    pub planned: u64,
    /// Sessions that began connecting.
    pub started: u64,
    /// Sessions that connected at least once.
    pub connected: u64,
    /// Sessions authenticated at least once.
    pub authenticated: u64,
    /// Sessions that bound their card at least once.
    pub bound: u64,
    /// Sessions that closed politely (1000, answered): at the end, or on leaving.
    pub closed: u64,
    /// Pages that left (churn or a ramp down).
    pub left: u64,
    /// Leaves that were only a web-view: the socket stayed open.
    pub hidden: u64,
    /// Pages that came back after an away time.
    pub returned: u64,
    /// Most sessions with an open socket at once (sampled every interval).
    pub peak_active: u64,
    /// Sessions lost with a worker process that died (see `lost_workers`).
    #[serde(default)]
    pub lost: u64,
}

/// Metrics recorded by scripts (`session.count`, `session.record`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Custom {
    /// Counters by name.
    pub counters: BTreeMap<String, u64>,
    /// Latencies by name, in ms.
    pub latency_ms: BTreeMap<String, Latency>,
}

impl Custom {
    fn from_recorder(r: &Recorder) -> Custom {
        Custom {
            counters: r.custom_counters.clone(),
            latency_ms: r
                .custom_latencies
                .iter()
                .map(|(k, h)| (k.clone(), Latency::from_histogram(h)))
                .collect(),
        }
    }
}

/// Failures by kind, every kind listed (each step's `<step>_timeout` and
/// `<step>_rejected` among them), with script hook failures as `script.<hook>`.
fn error_map(t: &Recorder) -> BTreeMap<String, u64> {
    let mut errors: BTreeMap<String, u64> = t.error_counts().into_iter().collect();
    for (hook, n) in &t.script_errors {
        errors.insert(format!("script.{hook}"), *n);
    }
    errors
}

/// One step's counts. Its latency is `latency_ms.<step>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepCounts {
    /// Times a connection reached the step and sent its message.
    pub reached: u64,
    /// Replies accepted (the latency's count).
    pub accepted: u64,
    /// Replies that were a rejection (`errors.<step>_rejected`).
    pub rejected: u64,
    /// No reply in time (`errors.<step>_timeout`).
    pub timed_out: u64,
    /// Sessions that passed the step at least once.
    pub sessions: u64,
}

impl StepCounts {
    fn from_record(s: &StepRecord) -> StepCounts {
        let [reached, accepted, rejected, timed_out, sessions] = s.counts().map(|(_, n)| n);
        StepCounts {
            reached,
            accepted,
            rejected,
            timed_out,
            sessions,
        }
    }
}

/// The steps' counts by name, in the scenario's order: a JSON object whose keys keep the
/// order the steps run in (a map sorted by name would not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steps(pub Vec<(String, StepCounts)>);

impl Steps {
    /// One step's counts, by name.
    pub fn get(&self, name: &str) -> Option<&StepCounts> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

impl Serialize for Steps {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, counts) in &self.0 {
            map.serialize_entry(name, counts)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Steps {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Steps;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of step names to their counts")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Steps, A::Error> {
                let mut steps = Vec::new();
                while let Some(entry) = map.next_entry::<String, StepCounts>()? {
                    steps.push(entry);
                }
                Ok(Steps(steps))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// Session starts the load shape asked for, and whether they kept up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Arrivals {
    /// Starts due (closed-model slot starts and open-model arrivals).
    pub due: u64,
    /// Arrivals dropped because `max_sessions` were running.
    pub dropped: u64,
    /// Starts more than 100 ms late: the tester could not keep up.
    pub late: u64,
}

/// Connect attempts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connects {
    /// Attempts, first connects and reconnects alike.
    pub attempted: u64,
    /// Attempts that completed the WebSocket handshake.
    pub succeeded: u64,
    /// Attempts that failed in TCP, TLS or the handshake (the rest of `attempted` were
    /// cut short by the end of the run).
    #[serde(default)]
    pub failed: u64,
    /// Failed attempts by kind (every connect kind listed).
    #[serde(default)]
    pub failed_by_kind: BTreeMap<String, u64>,
}

impl Connects {
    fn from_recorder(t: &Recorder) -> Connects {
        let failed_by_kind: BTreeMap<String, u64> = ErrorKind::ALL
            .iter()
            .filter(|k| k.is_connect())
            .map(|k| (k.name().to_string(), t.errors[k.index()]))
            .collect();
        Connects {
            attempted: t.counter(Counter::ConnectsAttempted),
            succeeded: t.histogram(Metric::Connect).len(),
            failed: failed_by_kind.values().sum(),
            failed_by_kind,
        }
    }
}

/// Heartbeat counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Heartbeats {
    /// Handed to the socket.
    pub sent: u64,
    /// Acked within the timeout.
    pub acked: u64,
    /// Failed: send error or no ack in time.
    pub failed: u64,
    /// Acks that arrived after their heartbeat had already failed.
    pub late: u64,
    /// Timetable slots skipped because the tester woke more than an interval late.
    pub skipped: u64,
}

/// Message counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Messages {
    /// Data messages received.
    pub received: u64,
    /// Received messages no waiting step matched.
    pub unmatched: u64,
    /// Replies sent by a script's `on_message` hook.
    pub replied: u64,
}

/// Reconnect episodes: a session lost its connection (or its first connect failed), and
/// the episode lasts until it is bound again, however many attempts that takes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reconnects {
    /// All episodes.
    pub total: u64,
    /// Episodes per cause that began them (every cause listed).
    pub by_cause: BTreeMap<String, u64>,
}

/// One latency distribution, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

/// The tester's own footprint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tester {
    /// Shards (threads) that ran sessions, over every process.
    pub shards: u64,
    /// Worker processes that ran the shards (0: the wsoak process itself).
    #[serde(default)]
    pub workers: u64,
    /// Peak resident memory of the wsoak process, KiB (Linux; null elsewhere). Includes
    /// the embedded server when there is one.
    pub peak_rss_kib: Option<u64>,
    /// CPU time (user + system) the wsoak process used, seconds. Includes the embedded
    /// server when there is one.
    pub cpu_s: Option<f64>,
}

impl Latency {
    fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency {
                count: 0,
                min: None,
                mean: None,
                p50: None,
                p90: None,
                p99: None,
                p999: None,
                max: None,
            };
        }
        let ms = |us: u64| Some(round3(us as f64 / 1000.0));
        Latency {
            count: h.len(),
            min: ms(h.min()),
            mean: Some(round3(h.mean() / 1000.0)),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl Latency {
    /// A statistic by the name thresholds use (`p99`, `count`, …).
    pub fn stat(&self, name: &str) -> Option<f64> {
        match name {
            "count" => Some(self.count as f64),
            "min" => self.min,
            "mean" => self.mean,
            "p50" => self.p50,
            "p90" => self.p90,
            "p99" => self.p99,
            "p999" => self.p999,
            "max" => self.max,
            _ => None,
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// What a report is built from besides the measurements.
#[derive(Debug, Clone)]
pub struct Meta {
    /// What produced the run.
    pub identity: Identity,
    /// Scenario name.
    pub scenario: String,
    /// Target, as shown.
    pub target: String,
    /// Most sessions the load shape runs at once.
    pub planned: u32,
    /// Shards used, over every process.
    pub shards: usize,
    /// Worker processes that ran the shards (0: the wsoak process itself).
    pub workers: usize,
    /// Worker processes that died before their sessions ended.
    pub lost_workers: Vec<LostWorker>,
    /// Wall-clock start of the load.
    pub started_at: SystemTime,
    /// How long the load ran.
    pub elapsed: Duration,
    /// Most sessions with an open socket at once.
    pub peak_active: i64,
    /// A signal ended the run.
    pub interrupted: bool,
    /// The threshold that aborted the run.
    pub aborted_by: Option<String>,
    /// Which shard of the run this is, when it is one.
    pub shard: Option<ShardIdentity>,
}

/// A run's start as written in `run.json`, reports and notes: RFC 3339 UTC, to the
/// second when it is a whole second (as people write `--start-at`), else to the
/// millisecond or, failing that, the nanosecond, so that it reads back exactly.
pub fn format_start(at: SystemTime) -> String {
    let nanos = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    match nanos {
        0 => humantime::format_rfc3339_seconds(at).to_string(),
        n if n % 1_000_000 == 0 => humantime::format_rfc3339_millis(at).to_string(),
        _ => humantime::format_rfc3339_nanos(at).to_string(),
    }
}

/// Which shard of a run a run directory holds (`wsoak run --shard I/N`), in `run.json`
/// and `report.json`: what `wsoak merge` checks before it merges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardIdentity {
    /// This shard, from 0.
    pub index: u32,
    /// Shards in the run.
    pub count: u32,
    /// The run's start (RFC 3339), the same on every shard of the run: the moment its
    /// load shape and intervals count from.
    pub start_at: String,
}

/// What `wsoak merge` put together.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Merged {
    /// Shards in the run.
    pub count: u32,
    /// The shards merged, by index.
    pub shards: Vec<u32>,
    /// The shards not merged, by index: not given, or left out by `--allow-partial`.
    /// Empty for a whole run.
    pub missing: Vec<u32>,
    /// Why each run directory given but left out was left out, for people.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub left_out: Vec<String>,
}

/// What produced a run, so that a baseline from last month can be told apart from
/// today's build and today's file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    /// The wsoak version that ran it.
    pub version: String,
    /// SHA-256 of the scenario file's bytes, in hex (null when it could not be read).
    pub scenario_sha256: Option<String>,
    /// The command line, with the target's secrets hidden (`***`).
    pub command: Vec<String>,
}

/// SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A worker process that died before its sessions ended (a crash, a kill, the OOM
/// killer): its sessions are lost to the run, and counted as such.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LostWorker {
    /// Which worker (0-based).
    pub worker: u64,
    /// Its process id.
    pub pid: u32,
    /// Seconds into the run when the parent found it gone.
    pub at_s: f64,
    /// Sessions it held (with an open socket) in its last interval.
    pub sessions: u64,
    /// How it ended, as the parent saw it (`killed by signal 9`, `exit status 101`, …).
    pub cause: String,
}

/// The tester's footprint a report carries, measured (or recovered) by its caller.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Footprint {
    /// Peak resident memory, KiB ([`Tester::peak_rss_kib`]).
    pub peak_rss_kib: Option<u64>,
    /// CPU time, seconds ([`Tester::cpu_s`]).
    pub cpu_s: Option<f64>,
}

impl Footprint {
    /// This process's footprint so far: peak RSS and CPU time.
    pub fn measure() -> Footprint {
        Footprint {
            peak_rss_kib: peak_rss_kib(),
            cpu_s: process_cpu().map(|d| round3(d.as_secs_f64())),
        }
    }
}

impl Report {
    /// Builds a report from merged measurements and the tester's footprint; reads
    /// nothing else. Thresholds are evaluated separately ([`Report::judge`]) because
    /// they read the finished report.
    pub fn build(
        t: &Recorder,
        meta: &Meta,
        server: Option<ServerStats>,
        footprint: Footprint,
    ) -> Report {
        let c = |counter: Counter| t.counter(counter);
        Report {
            schema: SCHEMA.into(),
            wsoak: meta.identity.clone(),
            scenario: meta.scenario.clone(),
            target: meta.target.clone(),
            started_at: humantime::format_rfc3339_seconds(meta.started_at).to_string(),
            duration_s: round3(meta.elapsed.as_secs_f64()),
            interrupted: meta.interrupted,
            aborted_by: meta.aborted_by.clone(),
            shard: meta.shard.clone(),
            merged: None,
            sessions: Sessions {
                planned: u64::from(meta.planned),
                started: c(Counter::SessionsStarted),
                connected: c(Counter::SessionsConnected),
                authenticated: c(Counter::SessionsAuthenticated),
                bound: c(Counter::SessionsBound),
                closed: c(Counter::SessionsClosed),
                left: c(Counter::SessionsLeft),
                hidden: c(Counter::SessionsHidden),
                returned: c(Counter::SessionsReturned),
                peak_active: meta.peak_active.max(0) as u64,
                lost: meta.lost_workers.iter().map(|w| w.sessions).sum(),
            },
            arrivals: Arrivals {
                due: c(Counter::ArrivalsDue),
                dropped: c(Counter::ArrivalsDropped),
                late: c(Counter::ArrivalsLate),
            },
            connects: Connects::from_recorder(t),
            heartbeats: Heartbeats {
                sent: c(Counter::HeartbeatsSent),
                acked: c(Counter::HeartbeatsAcked),
                failed: c(Counter::HeartbeatsFailed),
                late: c(Counter::HeartbeatsLate),
                skipped: c(Counter::HeartbeatsSkipped),
            },
            messages: Messages {
                received: c(Counter::MessagesReceived),
                unmatched: c(Counter::MessagesUnmatched),
                replied: c(Counter::MessagesReplied),
            },
            reconnects: Reconnects {
                total: t.reconnects_total(),
                by_cause: t.reconnect_counts().into_iter().collect(),
            },
            latency_ms: t
                .latencies()
                .map(|(name, h)| (name.to_string(), Latency::from_histogram(h)))
                .collect(),
            steps: Steps(
                t.steps
                    .iter()
                    .map(|s| (s.name.to_string(), StepCounts::from_record(s)))
                    .collect(),
            ),
            errors: error_map(t),
            custom: Custom::from_recorder(t),
            thresholds: Vec::new(),
            internal_errors: t.internal.clone(),
            server,
            lost_workers: meta.lost_workers.clone(),
            tester: Tester {
                shards: meta.shards as u64,
                workers: meta.workers as u64,
                peak_rss_kib: footprint.peak_rss_kib,
                cpu_s: footprint.cpu_s,
            },
        }
    }

    /// An all-zero report as JSON: the shape every threshold path is checked against.
    pub fn empty_json() -> serde_json::Value {
        let meta = Meta {
            identity: Default::default(),
            scenario: String::new(),
            target: String::new(),
            planned: 0,
            shards: 0,
            workers: 0,
            lost_workers: Vec::new(),
            started_at: SystemTime::UNIX_EPOCH,
            elapsed: Duration::ZERO,
            peak_active: 0,
            interrupted: false,
            aborted_by: None,
            shard: None,
        };
        // Measured, not left null: a `tester.*` threshold path is known only where this
        // platform reports a value for it.
        let report = Report::build(&Recorder::new(), &meta, None, Footprint::measure());
        serde_json::to_value(report).expect("reports serialise")
    }

    /// Evaluates thresholds against this report and records the verdicts. Returns true
    /// when all pass.
    pub fn judge(&mut self, thresholds: &[threshold::Threshold]) -> bool {
        let json = serde_json::to_value(&*self).expect("reports serialise");
        self.thresholds = thresholds.iter().map(|t| t.evaluate(&json)).collect();
        self.thresholds.iter().all(|v| v.pass)
    }

    /// The report as report.json holds it: pretty JSON and a newline.
    pub fn to_json_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("reports serialise");
        text.push('\n');
        text
    }

    /// Writes the report as pretty JSON, creating parent directories.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, &self.to_json_text())
    }

    /// The text summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let s = &self.sessions;
        let _ = writeln!(
            out,
            "wsoak · {} · {} · {:.1}s{}",
            self.scenario,
            self.target,
            self.duration_s,
            if self.interrupted {
                " · interrupted"
            } else {
                ""
            }
        );
        let shown_hash = self
            .wsoak
            .scenario_sha256
            .as_deref()
            .map_or("-".to_string(), |h| h.chars().take(12).collect());
        let _ = writeln!(
            out,
            "build       wsoak {}  scenario sha256 {}  command {}",
            if self.wsoak.version.is_empty() {
                "-"
            } else {
                &self.wsoak.version
            },
            shown_hash,
            shell_words(&self.wsoak.command)
        );
        if let Some(shard) = &self.shard {
            let _ = writeln!(
                out,
                "shard       {} of {} (from 0), started at {}: merge the shards with `wsoak merge`",
                shard.index, shard.count, shard.start_at
            );
        }
        if let Some(merged) = &self.merged {
            let missing = if merged.missing.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
                format!("  MISSING {}: this is not the whole run", list.join(", "))
            };
            let _ = writeln!(
                out,
                "shards      {} of {} merged{missing}",
                merged.shards.len(),
                merged.count
            );
        }
        let _ = writeln!(
            out,
            "sessions    planned {}  started {}  connected {}  authenticated {}  bound {}  closed {}  peak active {}",
            s.planned, s.started, s.connected, s.authenticated, s.bound, s.closed, s.peak_active
        );
        if s.left + s.hidden + s.returned > 0 {
            let _ = writeln!(
                out,
                "churn       left {}  hidden {}  returned {}",
                s.left, s.hidden, s.returned
            );
        }
        for (name, st) in &self.steps.0 {
            let _ = writeln!(
                out,
                "step        {name}: reached {}  accepted {}  rejected {}  timed out {}  sessions {}",
                st.reached, st.accepted, st.rejected, st.timed_out, st.sessions
            );
        }
        let a = &self.arrivals;
        let _ = writeln!(
            out,
            "arrivals    due {}  dropped {}  late {}",
            a.due, a.dropped, a.late
        );
        let _ = writeln!(
            out,
            "connects    attempted {}  succeeded {}  failed {}{}",
            self.connects.attempted,
            self.connects.succeeded,
            self.connects.failed,
            nonzero(&self.connects.failed_by_kind)
        );
        let h = &self.heartbeats;
        let _ = writeln!(
            out,
            "heartbeats  sent {}  acked {}  failed {}  late acks {}  skipped slots {}",
            h.sent, h.acked, h.failed, h.late, h.skipped
        );
        let _ = writeln!(
            out,
            "messages    received {}  unmatched {}  replied {}",
            self.messages.received, self.messages.unmatched, self.messages.replied
        );
        let _ = writeln!(
            out,
            "reconnects  {}{}",
            self.reconnects.total,
            nonzero(&self.reconnects.by_cause)
        );
        let _ = writeln!(
            out,
            "\n{:<13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "min", "p50", "p90", "p99", "p99.9", "max"
        );
        // Connect, the steps in their order, then the other built-in latencies.
        let order = std::iter::once(Metric::Connect.name())
            .chain(self.steps.0.iter().map(|(name, _)| name.as_str()))
            .chain(
                Metric::ALL
                    .iter()
                    .filter(|m| **m != Metric::Connect)
                    .map(|m| m.name()),
            );
        let builtin = order.filter_map(|name| Some((name.to_string(), self.latency_ms.get(name)?)));
        let custom = self
            .custom
            .latency_ms
            .iter()
            .map(|(name, l)| (format!("~{name}"), l));
        for (name, l) in builtin.chain(custom) {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            let _ = writeln!(
                out,
                "{:<13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                l.count,
                f(l.min),
                f(l.p50),
                f(l.p90),
                f(l.p99),
                f(l.p999),
                f(l.max)
            );
        }
        if !self.custom.counters.is_empty() {
            let counters: Vec<String> = self
                .custom
                .counters
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(out, "\ncustom      {}", counters.join("  "));
        }
        let errors: u64 = self.errors.values().sum();
        let _ = writeln!(out, "\nerrors      {}{}", errors, nonzero(&self.errors));
        let exhausted = ErrorKind::SourcePortsExhausted.name();
        if self.errors.get(exhausted).is_some_and(|n| *n > 0) {
            let _ = writeln!(
                out,
                "hint        {exhausted}: connects found no free source port. Add source \
                 addresses (--source-addrs), widen net.ipv4.ip_local_port_range, or spread the \
                 load over more machines"
            );
        }
        if let Some(server) = &self.server {
            let _ = writeln!(
                out,
                "server saw  connections {}  auth ok {}  auth rejected {}  bind_card {}  heartbeats {}  dropped {}",
                server.connections,
                server.auth_ok,
                server.auth_rejected,
                server.bind_card,
                server.heartbeats,
                server.dropped
            );
            if !server.messages_by_type.is_empty() {
                let by_type: Vec<String> = server
                    .messages_by_type
                    .iter()
                    .map(|(kind, n)| format!("{kind} {n}"))
                    .collect();
                let _ = writeln!(out, "server saw  messages by type: {}", by_type.join(", "));
            }
            if server.pushes > 0 {
                let _ = writeln!(
                    out,
                    "server saw  pushes sent {}  push acks {}",
                    server.pushes, server.push_acks
                );
            }
            let hold = &server.heartbeat_hold_ms;
            if server.heartbeat_acks_dropped > 0 || hold.count > 0 {
                // The server's own measure of the holds it gave: the truth to read the
                // heartbeat latency row against.
                let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
                let _ = writeln!(
                    out,
                    "server saw  heartbeat acks dropped {}  held {}  hold (ms) count {}  min {}  p50 {}  p99 {}  max {}",
                    server.heartbeat_acks_dropped,
                    server.heartbeat_acks_held,
                    hold.count,
                    ms(hold.min),
                    ms(hold.p50),
                    ms(hold.p99),
                    ms(hold.max)
                );
            }
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(out, "\nthresholds");
            for v in &self.thresholds {
                let observed = v.observed_text();
                let _ = writeln!(
                    out,
                    "  {}  {}  (observed {observed})",
                    if v.pass { "pass" } else { "FAIL" },
                    v.check
                );
            }
        }
        if let Some(rss) = self.tester.peak_rss_kib {
            let _ = writeln!(
                out,
                "tester      {} shards  peak RSS {:.1} MiB",
                self.tester.shards,
                rss as f64 / 1024.0
            );
        }
        out
    }
}

/// Writes `text` to `path` through a temporary file beside it (`<name>.tmp`) and a
/// rename, so that a reader (a CI server picking up results) never sees half a file;
/// creates parent directories.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// A command line as a shell would take it back: words with spaces or quotes are quoted.
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn nonzero(map: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("  ({})", parts.join(", "))
    }
}

/// One line of `intervals.jsonl`: what happened during one interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntervalLine {
    /// Seconds since the load started, at the end of the interval.
    pub t: f64,
    /// The interval's number, from 0.
    pub seq: u64,
    /// Counters over this interval only, by name (zeros left out).
    pub counts: BTreeMap<String, u64>,
    /// Reconnects over this interval, by cause (zeros left out).
    pub reconnects: BTreeMap<String, u64>,
    /// Errors over this interval, by kind (zeros left out).
    pub errors: BTreeMap<String, u64>,
    /// Live sessions per state at the end of the interval.
    pub states: BTreeMap<String, i64>,
    /// The most sessions with an open socket at any moment of the interval (absent in
    /// logs from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_active: Option<i64>,
    /// Latency over this interval, per metric with samples.
    pub latency_ms: BTreeMap<String, Latency>,
    /// Script metrics over this interval.
    #[serde(default)]
    pub custom: Custom,
    /// The tester's resident memory, KiB.
    pub rss_kib: Option<u64>,
    /// CPU time the tester used during this interval, ms.
    #[serde(default)]
    pub cpu_ms: Option<f64>,
}

impl IntervalLine {
    /// Summarises one interval's merged snapshots.
    pub fn build(
        seq: u64,
        t: Duration,
        r: &Recorder,
        gauges: &Gauges,
        peak_active: i64,
        cpu: Option<Duration>,
    ) -> IntervalLine {
        let nonzero = |names: &[(&str, u64)]| -> BTreeMap<String, u64> {
            names
                .iter()
                .filter(|(_, v)| *v > 0)
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        };
        let step_counts: Vec<(String, u64)> = r
            .steps
            .iter()
            .flat_map(|s| {
                // Accepted is the latency's count, and the errors' are in `errors`.
                s.counts()
                    .into_iter()
                    .filter(|(count, _)| matches!(*count, "reached" | "sessions"))
                    .map(|(count, n)| (format!("steps.{}.{count}", s.name), n))
            })
            .collect();
        let counts: Vec<(&str, u64)> = Counter::ALL
            .iter()
            .map(|c| (c.name(), r.counter(*c)))
            .chain(step_counts.iter().map(|(k, v)| (k.as_str(), *v)))
            .collect();
        let all_reconnects = r.reconnect_counts();
        let reconnects: Vec<(&str, u64)> = all_reconnects
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let all_errors = error_map(r);
        let errors: Vec<(&str, u64)> = all_errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        IntervalLine {
            t: round3(t.as_secs_f64()),
            seq,
            counts: nonzero(&counts),
            reconnects: nonzero(&reconnects),
            errors: nonzero(&errors),
            states: State::ALL
                .iter()
                .map(|s| (s.name().to_string(), gauges[s.index()]))
                .collect(),
            peak_active: Some(peak_active),
            latency_ms: r
                .latencies()
                .filter(|(_, h)| !h.is_empty())
                .map(|(name, h)| (name.to_string(), Latency::from_histogram(h)))
                .collect(),
            custom: Custom::from_recorder(r),
            rss_kib: current_rss_kib(),
            cpu_ms: cpu.map(|d| round3(d.as_secs_f64() * 1000.0)),
        }
    }
}

/// CPU time (user + system) this process has used so far.
pub fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes the struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Some(tv(usage.ru_utime) + tv(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Current resident set size of this process (Linux `VmRSS`), KiB.
pub fn current_rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// The default report location: `reports/<scenario>-<UTC timestamp>/report.json`.
pub fn default_path(scenario: &str, at: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    PathBuf::from("reports")
        .join(format!("{scenario}-{stamp}"))
        .join("report.json")
}

/// Where the interval log goes: `intervals.jsonl` beside `report.json`, or
/// `<name>.intervals.jsonl` beside a report with another name.
pub fn intervals_path(report: &Path) -> PathBuf {
    sibling(report, "intervals.jsonl")
}

/// A file that belongs with a report: `<file>` beside `report.json`, or
/// `<stem>.<file>` beside a report with another name (so that two reports written to one
/// directory keep their files apart).
pub fn sibling(report: &Path, file: &str) -> PathBuf {
    let name = report
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report.json");
    if name == "report.json" {
        report.with_file_name(file)
    } else {
        let stem = report
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("report");
        report.with_file_name(format!("{stem}.{file}"))
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn empty_latency_is_null_not_zero() {
        let l = Latency::from_histogram(&crate::metrics::new_histogram());
        assert_eq!(l.count, 0);
        assert!(l.p99.is_none());
    }

    #[test]
    fn default_path_is_stamped() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            default_path("mini", at),
            PathBuf::from("reports/mini-20231114T221320Z/report.json")
        );
    }

    #[test]
    fn the_summary_hints_at_a_fix_when_source_ports_run_out() {
        let meta = Meta {
            identity: Default::default(),
            scenario: "t".into(),
            target: "ws://127.0.0.1:1/".into(),
            planned: 1,
            shards: 1,
            workers: 0,
            lost_workers: Vec::new(),
            started_at: UNIX_EPOCH,
            elapsed: Duration::from_secs(1),
            peak_active: 0,
            interrupted: false,
            aborted_by: None,
            shard: None,
        };
        let mut recorder = Recorder::new();
        let quiet = Report::build(&recorder, &meta, None, Footprint::default()).summary();
        assert!(!quiet.contains("hint"), "{quiet}");
        recorder.error(ErrorKind::SourcePortsExhausted);
        let report = Report::build(&recorder, &meta, None, Footprint::default());
        assert_eq!(report.errors["source_ports_exhausted"], 1);
        let summary = report.summary();
        assert!(
            summary.contains(
                "errors      1  (source_ports_exhausted 1)\nhint        source_ports_exhausted: "
            ),
            "{summary}"
        );
        assert!(summary.contains("--source-addrs"), "{summary}");
    }

    #[test]
    fn latency_is_in_milliseconds() {
        let mut h = crate::metrics::new_histogram();
        h.record(1500).unwrap();
        let l = Latency::from_histogram(&h);
        assert_eq!((l.count, l.min, l.max), (1, Some(1.5), Some(1.5)));
    }
}

/// `run.json`: what a run was, written before it starts, so that `wsoak report` can
/// rebuild the report from the interval logs if the run never finished.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// Always `wsoak.run/1`.
    pub schema: String,
    /// What produced the run.
    #[serde(default)]
    pub wsoak: Identity,
    /// The scenario's name.
    pub scenario: String,
    /// The target, as shown.
    pub target: String,
    /// The load shape, for people.
    pub shape: String,
    /// Most sessions the shape runs at once.
    pub planned: u32,
    /// Shards used, over every process.
    pub shards: usize,
    /// Worker processes (0: the shards ran in the wsoak process itself).
    #[serde(default)]
    pub workers: usize,
    /// Seconds per interval.
    pub interval_s: f64,
    /// Planned duration, seconds.
    pub duration_s: f64,
    /// RFC 3339 time the run was started.
    pub started_at: String,
    /// The thresholds' checks, as written.
    pub thresholds: Vec<String>,
    /// The request/reply steps' names, in order (runs written before steps were a list
    /// always had `auth` and `bind_card`).
    #[serde(default = "legacy_steps")]
    pub steps: Vec<String>,
    /// Which shard of the run this is (`--shard I/N`); absent for a whole run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shard: Option<ShardIdentity>,
}

impl RunInfo {
    /// The run's thresholds, parsed again from their text and checked against its steps.
    pub fn parsed_thresholds(&self) -> Result<Vec<threshold::Threshold>, String> {
        let steps: Vec<&str> = self.steps.iter().map(String::as_str).collect();
        self.thresholds
            .iter()
            .map(|t| {
                let threshold = threshold::Threshold::parse(t)?;
                threshold.check_names(&steps)?;
                Ok(threshold)
            })
            .collect()
    }
}

fn legacy_steps() -> Vec<String> {
    vec!["auth".into(), "bind_card".into()]
}

/// Reads `intervals.jsonl`, ignoring a last line cut short by a crash.
pub fn read_intervals(path: &Path) -> Result<Vec<IntervalLine>, String> {
    read_intervals_prefix(path).map(|(lines, _)| lines)
}

/// Most seconds an interval line's `t` may say: ten years. A larger (or negative, or not
/// finite) value is damage, not a time.
const MAX_T: f64 = 10.0 * 365.0 * 86_400.0;

/// Reads `intervals.jsonl` up to its first damaged line: a line that is not a complete
/// interval (cut short when the process was killed, or corrupted), a `t` that is not a
/// time, or a line out of order ends the valid prefix. Returns the prefix, and what was
/// skipped (for people) when anything was. Only I/O is an error.
pub fn read_intervals_prefix(path: &Path) -> Result<(Vec<IntervalLine>, Option<String>), String> {
    let mut reader = IntervalLines::open(path)?;
    let lines: Vec<IntervalLine> = reader.by_ref().collect::<Result<_, _>>()?;
    Ok((lines, reader.skipped()))
}

/// `intervals.jsonl`'s valid prefix, a line at a time, for logs too long to hold (a
/// merge of day-long shards). The same rules as [`read_intervals_prefix`].
pub struct IntervalLines {
    path: PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    /// Lines read so far.
    read: usize,
    /// The last valid line's `t`.
    last_t: Option<f64>,
    /// Why reading stopped early, once it has.
    skipped: Option<(usize, String)>,
}

impl IntervalLines {
    /// Opens the log.
    pub fn open(path: &Path) -> Result<IntervalLines, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(IntervalLines {
            path: path.to_path_buf(),
            lines: std::io::BufRead::lines(std::io::BufReader::new(file)),
            read: 0,
            last_t: None,
            skipped: None,
        })
    }

    /// What was skipped from the first damaged line on, for people; `None` when nothing
    /// was (or nothing yet).
    pub fn skipped(&mut self) -> Option<String> {
        let (at, problem) = self.skipped.clone()?;
        // What is left is skipped too.
        let rest = 1 + self.lines.by_ref().count();
        self.skipped = Some((at, problem.clone()));
        Some(format!(
            "{}:{at}: {problem}; skipped {rest} line{} from there",
            self.path.display(),
            if rest == 1 { "" } else { "s" }
        ))
    }
}

impl Iterator for IntervalLines {
    type Item = Result<IntervalLine, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.skipped.is_some() {
            return None;
        }
        let text = match self.lines.next()? {
            Ok(text) => text,
            // Not UTF-8, or unreadable: damage from here on, as for a bad line.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => e.to_string(),
            Err(e) => return Some(Err(format!("{}: {e}", self.path.display()))),
        };
        self.read += 1;
        let problem = match serde_json::from_str::<IntervalLine>(&text) {
            Err(e) => e.to_string(),
            Ok(l) if !(l.t.is_finite() && (0.0..=MAX_T).contains(&l.t)) => {
                format!("t = {} is not a time", l.t)
            }
            Ok(l) if self.last_t.is_some_and(|t| l.t < t) => {
                format!("t = {} is before the line above", l.t)
            }
            Ok(l) => {
                self.last_t = Some(l.t);
                return Some(Ok(l));
            }
        };
        self.skipped = Some((self.read, problem));
        None
    }
}

/// Rebuilds a run's measurements from its interval log and latency log: every counter
/// summed, every histogram merged. Exact up to the last interval written. `steps` are the
/// run's step names, in order (from `run.json`).
pub fn rebuild(
    lines: &[IntervalLine],
    totals: &BTreeMap<String, Histogram<u64>>,
    steps: &[String],
) -> Recorder {
    let names: Vec<std::sync::Arc<str>> = steps.iter().map(|s| s.as_str().into()).collect();
    let mut r = Recorder::for_steps(&names);
    for line in lines {
        for (name, n) in &line.counts {
            if let Some(c) = Counter::ALL.iter().find(|c| c.name() == name) {
                r.counters[c.index()] += n;
            } else if let Some((step, count)) = name
                .strip_prefix("steps.")
                .and_then(|rest| rest.rsplit_once('.'))
            {
                if let Some(s) = r.steps.iter_mut().find(|s| &*s.name == step) {
                    match count {
                        "reached" => s.reached += n,
                        "sessions" => s.sessions += n,
                        _ => {}
                    }
                }
            }
        }
        for (name, n) in &line.reconnects {
            r.add_named(Section::Reconnects, name, *n);
        }
        for (name, n) in &line.errors {
            if r.add_named(Section::Errors, name, *n) {
                continue;
            }
            if let Some(hook) = name.strip_prefix("script.") {
                if let Some(hook) = crate::metrics::script_error_key(hook, &r.steps) {
                    *r.script_errors.entry(hook).or_default() += n;
                }
            }
        }
        for (name, n) in &line.custom.counters {
            *r.custom_counters.entry(name.clone()).or_default() += n;
        }
    }
    for (tag, histogram) in totals {
        if let Some(name) = tag.strip_prefix("custom.") {
            r.custom_latencies
                .insert(name.to_string(), histogram.clone());
        } else if let Some(m) = Metric::ALL.iter().find(|m| m.name() == tag) {
            r.histograms[m.index()] = histogram.clone();
        } else if let Some(s) = r.steps.iter_mut().find(|s| &*s.name == tag) {
            s.latency = histogram.clone();
        }
    }
    r
}

/// Most sessions with an open socket at any moment, from the intervals' peaks (or, in
/// logs written before lines carried one, at the end of any interval).
pub fn peak_active(lines: &[IntervalLine]) -> i64 {
    lines
        .iter()
        .map(|l| {
            l.peak_active.unwrap_or_else(|| {
                State::ALL
                    .iter()
                    .filter(|s| s.is_active())
                    .map(|s| l.states.get(s.name()).copied().unwrap_or(0))
                    .sum::<i64>()
            })
        })
        .max()
        .unwrap_or(0)
}
