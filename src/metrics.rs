//! What a run measures, and how measurements travel.
//!
//! Each shard owns one [`Recorder`]: sessions on that shard record into it without locks
//! or atomics (the shard is a single thread). Every interval the shard swaps its recorder
//! for a fresh one and sends the old one, as a [`Snapshot`], to the aggregator, which
//! merges snapshots with `+=`. Histograms merge exactly; counters and gauges by sum.
//!
//! This module owns the name of every metric: the report, the summary and the CLI all take
//! their names from here. It must not do I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest value a latency histogram holds, in microseconds (one hour). Larger values are
/// clamped to it rather than dropped, so a stalled server still shows up in `max`.
const HIGHEST_US: u64 = 3_600_000_000;
/// Three significant figures: 0.1% value resolution.
const SIGFIGS: u8 = 3;

/// Declares a fixed set of names with a dense index, so that per-shard arrays can count
/// them without hashing.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// How many values there are.
            pub const COUNT: usize = $name::ALL.len();
            /// The name used in reports, summaries and the CLI.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Dense index into per-shard arrays.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

names! {
    /// A latency histogram. Values are recorded in microseconds.
    Metric {
        /// TCP connect + TLS + WebSocket handshake.
        Connect = "connect",
        /// Heartbeat round trip, measured from the *scheduled* send time. Late acks are
        /// measured too, so slow replies stay in the percentiles: the count is acked + late.
        Heartbeat = "heartbeat",
        /// A reconnect episode: connection lost to session bound again, whatever number of
        /// attempts it took. One sample per completed episode.
        Reconnect = "reconnect",
        /// How late the tester itself sent a heartbeat against its timetable.
        ScheduleLag = "schedule_lag",
    }
}

names! {
    /// A monotonically increasing count.
    Counter {
        /// Sessions that began their first connect.
        SessionsStarted = "sessions.started",
        /// Sessions that connected at least once.
        SessionsConnected = "sessions.connected",
        /// Sessions that passed the scenario's first step at least once (that
        /// connected, when it has no steps): with `auth:`, the sessions authenticated.
        SessionsAuthenticated = "sessions.authenticated",
        /// Sessions that passed every step and began heartbeating at least once.
        SessionsBound = "sessions.bound",
        /// Connect attempts, including reconnects.
        ConnectsAttempted = "connects.attempted",
        /// Heartbeats handed to the socket.
        HeartbeatsSent = "heartbeats.sent",
        /// Heartbeats whose ack matched within the timeout.
        HeartbeatsAcked = "heartbeats.acked",
        /// Heartbeats that failed: send error or no ack within the timeout.
        HeartbeatsFailed = "heartbeats.failed",
        /// Acks that arrived after their heartbeat had timed out (already failed). How acks
        /// without ids are attributed is in [`crate::heartbeat`].
        HeartbeatsLate = "heartbeats.late",
        /// Timetable slots skipped because the tester woke more than an interval late
        /// (it sends one late heartbeat, as a page's timer does, not a burst).
        HeartbeatsSkipped = "heartbeats.skipped",
        /// Text or binary messages received from the server.
        MessagesReceived = "messages.received",
        /// Received messages that no waiting step matched (server pushes, late acks).
        MessagesUnmatched = "messages.unmatched",
        /// Replies a script's `on_message` hook sent.
        MessagesReplied = "messages.replied",
        /// Sessions closed politely with code 1000 at the end of the run.
        SessionsClosed = "sessions.closed",
        /// Pages that left (`onUnload`, close 1000): churn or a ramp down.
        SessionsLeft = "sessions.left",
        /// Leaves that were only a web-view (`onHide`): the socket stayed open.
        SessionsHidden = "sessions.hidden",
        /// Pages that came back after an away time, with the same identity.
        SessionsReturned = "sessions.returned",
        /// Session starts the load shape asked for (closed-model slot starts, or arrivals).
        ArrivalsDue = "arrivals.due",
        /// Arrivals not started because `max_sessions` were already running.
        ArrivalsDropped = "arrivals.dropped",
        /// Starts that happened more than 100 ms after they were due: the tester lagged.
        ArrivalsLate = "arrivals.late",
    }
}

names! {
    /// Why a reconnect episode began: what made the session lose its connection (or
    /// fail its first connect). Failed attempts within an episode are not causes.
    Cause {
        /// More than `max_failures` consecutive heartbeats failed.
        Heartbeat = "heartbeat",
        /// The server closed the socket: a close frame, EOF or reset.
        ServerClose = "server_close",
        /// A WebSocket protocol or I/O error on an open socket.
        SocketError = "socket_error",
        /// The connect (TCP, TLS or handshake) failed or timed out.
        ConnectError = "connect_error",
        /// A step's reply did not arrive in time. (A rejected step is counted under
        /// `<step>_rejected`, one cause per step: [`StepRecord::rejected_reconnects`].)
        Timeout = "timeout",
        /// A script hook asked for it (`session.reconnect()`).
        Script = "script",
        /// A script hook failed and `on_error` is `reconnect`.
        ScriptError = "script_error",
    }
}

names! {
    /// A failure, by kind. Failures are data: counted, never fatal to the run.
    ErrorKind {
        /// TCP connect refused.
        ConnectRefused = "connect_refused",
        /// Connect (TCP + TLS + handshake) did not finish within `connect.timeout`.
        ConnectTimeout = "connect_timeout",
        /// Any other I/O error while connecting.
        ConnectIo = "connect_io",
        /// TCP connect found no free ephemeral port for its (source, destination) pair
        /// (`EADDRNOTAVAIL`): more source addresses (`--source-addrs`), a wider
        /// `ip_local_port_range`, or more machines.
        SourcePortsExhausted = "source_ports_exhausted",
        /// TLS failed: certificate, protocol or alert.
        Tls = "tls",
        /// The HTTP upgrade was answered with something other than 101, or was malformed.
        Handshake = "handshake",
        /// A heartbeat ack did not arrive within `heartbeat.timeout`.
        HeartbeatTimeout = "heartbeat_timeout",
        /// A message could not be sent.
        SendFailed = "send_failed",
        /// The server closed the socket with a close frame.
        ServerClosed = "server_closed",
        /// The server dropped the TCP connection without a close frame.
        ServerReset = "server_reset",
        /// A WebSocket protocol violation or I/O error on an open socket.
        Socket = "socket",
        /// The server sent a frame or message larger than the client accepts (1 MiB): the
        /// socket is dropped, as a page's would be.
        FrameTooLarge = "frame_too_large",
        /// The server sent a text message that is not valid UTF-8: the socket is dropped,
        /// as RFC 6455 requires.
        InvalidUtf8 = "invalid_utf8",
        /// A message arrived that is not JSON, in any state (waiting for a step's reply or
        /// bound). The socket is kept.
        InvalidJson = "invalid_json",
        /// A script hook hit a sandbox limit (operations, sizes, call depth). Also counted
        /// under `script.<hook>`.
        ScriptLimit = "script_limit",
        /// wsoak itself failed: a panic in a session or a shard, caught and counted. The
        /// run's numbers are not to be trusted (exit code 3); the messages are in the
        /// report's `internal_errors`.
        Internal = "internal",
    }
}

names! {
    /// What a live session is doing right now. Gauges are levels, not counts: they are
    /// not reset when a recorder is swapped.
    State {
        /// Opening TCP, TLS and the WebSocket handshake.
        Connecting = "connecting",
        /// Connected, running the scenario's steps (auth, bindCard, …): a step's message
        /// sent, its reply awaited.
        Steps = "steps",
        /// Bound and heartbeating.
        Bound = "bound",
        /// Waiting out the reconnect delay.
        Reconnecting = "reconnecting",
        /// Left, and away until the page comes back (churn).
        Away = "away",
    }
}

impl ErrorKind {
    /// Whether this failure ends a connect attempt (TCP, TLS or the WebSocket handshake):
    /// such failures are `connects.failed`, by kind.
    pub const fn is_connect(self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::ConnectIo
                | ErrorKind::SourcePortsExhausted
                | ErrorKind::Tls
                | ErrorKind::Handshake
        )
    }
}

impl State {
    /// Whether a session in this state is *active*: it holds an open socket (counted in
    /// `peak_active`). The one definition of "active".
    pub const fn is_active(self) -> bool {
        matches!(self, State::Steps | State::Bound)
    }
}

/// Sessions with an open socket across every shard of the process, and the most there
/// have been: updated at each change, not sampled per interval, so a peak between two
/// interval ends (or in a run shorter than one interval) is still seen.
///
/// It is the one measurement shards share through an atomic instead of a [`Snapshot`]:
/// the peak of a sum cannot be rebuilt from per-shard peaks. It changes once per connect
/// and once per close, never per message.
#[derive(Debug, Default)]
pub struct Active {
    /// Open sockets now.
    now: AtomicI64,
    /// The most since the aggregator last took the interval's peak.
    interval_peak: AtomicI64,
    /// The most over the whole run.
    run_peak: AtomicI64,
}

impl Active {
    /// A socket opened (`+1`) or closed (`-1`).
    pub fn add(&self, delta: i64) {
        let now = self.now.fetch_add(delta, Relaxed) + delta;
        if delta > 0 {
            self.interval_peak.fetch_max(now, Relaxed);
            self.run_peak.fetch_max(now, Relaxed);
        }
    }

    /// The most open sockets since the last call, and the next interval starts from
    /// the level now. Every moment falls in exactly one interval, so the largest of the
    /// intervals' peaks is the run's.
    pub fn take_interval_peak(&self) -> i64 {
        let peak = self.interval_peak.swap(self.now.load(Relaxed), Relaxed);
        // An opening between the load and the swap may have raised the old interval's
        // peak; make sure the new interval starts at least at the level now.
        self.interval_peak
            .fetch_max(self.now.load(Relaxed), Relaxed);
        peak
    }

    /// The most open sockets at any moment of the run.
    pub fn run_peak(&self) -> i64 {
        self.run_peak.load(Relaxed)
    }
}

/// Creates an empty latency histogram with the resolution every metric uses.
pub fn new_histogram() -> Histogram<u64> {
    // (`is_wsoak_histogram` reads the same bounds.)
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIGS).expect("constant bounds are valid")
}

/// Whether `h` has [`new_histogram`]'s bounds and precision (one read back from a log
/// wsoak wrote does), so that it merges with any of wsoak's own.
pub fn is_wsoak_histogram(h: &Histogram<u64>) -> bool {
    h.low() == 1 && h.high() == HIGHEST_US && h.sigfig() == SIGFIGS
}

/// Most distinct custom metric names a recorder keeps; a script that invents names
/// without end cannot grow memory without end.
pub const MAX_CUSTOM: usize = 64;

/// `errors["script.fail"]`: a script called `session.fail()`.
pub const SCRIPT_FAIL: &str = "fail";
/// `errors["script.metrics"]`: a script's metric was dropped because [`MAX_CUSTOM`] names
/// were taken.
pub const SCRIPT_METRICS: &str = "metrics";

/// The `&'static str` a recorder keys a script failure by, from its name as written
/// (`errors["script.<name>"]`, or a wire frame): a fixed hook, [`SCRIPT_FAIL`],
/// [`SCRIPT_METRICS`], or the build or reply hook of one of `steps`. `None` for any other
/// name, which is never interned.
pub fn script_error_key(name: &str, steps: &[StepRecord]) -> Option<&'static str> {
    use crate::script::Hook;
    let fixed = Hook::FIXED
        .iter()
        .map(|h| h.name())
        .chain([SCRIPT_FAIL, SCRIPT_METRICS])
        .find(|h| *h == name);
    fixed.or_else(|| {
        steps.iter().find_map(|step| {
            if name == &*step.name {
                Some(Hook::build(&step.name).name())
            } else if name.strip_suffix("_reply") == Some(&*step.name) {
                Some(Hook::judge(&step.name).name())
            } else {
                None
            }
        })
    })
}

/// Most internal-error messages kept: the first ones say what went wrong; a thousand
/// copies of them would say nothing more.
pub const MAX_INTERNAL: usize = 8;

/// Most steps a scenario may have: every step is a histogram in every recorder, and a
/// session keeps how far it got in five bits of a byte (`session::page`).
pub const MAX_STEPS: usize = 16;

/// Names a step may not take: the built-in latencies, the report's sections and the
/// script hooks that are not a step's. A step's name becomes a latency (`<step>`), errors
/// (`<step>_timeout`, `<step>_rejected`), a reconnect cause (`<step>_rejected`), hooks
/// (`<step>`, `<step>_reply`) and threshold paths (`<step>.p99`), so it must not shadow any
/// of those.
const RESERVED_STEP_NAMES: &[&str] = &[
    "sessions",
    "arrivals",
    "connects",
    "heartbeats",
    "messages",
    "reconnects",
    "latency_ms",
    "errors",
    "custom",
    "steps",
    "tester",
    "server",
    "thresholds",
    "on_message",
    "on_start",
    "on_end",
    "scenario",
];

/// Checks a step's name: lowercase letters, digits and `_`, starting with a letter, at
/// most 32 characters, and clashing with no built-in name (the latencies, the report's sections, the fixed hooks, and any `<name>_timeout` or `<name>_rejected` that is already an error kind or a cause).
pub fn check_step_name(name: &str) -> Result<(), String> {
    let well_formed = name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(format!(
            "`{name}` is not a step name: use lowercase letters, digits and `_`, starting \
             with a letter, at most 32 characters (it names a latency, errors and hooks)"
        ));
    }
    let clash = Metric::ALL.iter().any(|m| m.name() == name)
        || RESERVED_STEP_NAMES.contains(&name)
        || ErrorKind::ALL
            .iter()
            .any(|k| k.name() == step_timeout_name(name) || k.name() == step_rejected_name(name))
        || Cause::ALL
            .iter()
            .any(|c| c.name() == step_rejected_name(name));
    if clash {
        return Err(format!(
            "`{name}` is a built-in name (a latency, a report section, a hook or an error \
             kind); give the step another name"
        ));
    }
    Ok(())
}

/// `errors.<step>_timeout`: no reply matched within the step's timeout.
pub fn step_timeout_name(step: &str) -> String {
    format!("{step}_timeout")
}

/// `errors.<step>_rejected` and `reconnects.by_cause.<step>_rejected`: the reply was a
/// rejection.
pub fn step_rejected_name(step: &str) -> String {
    format!("{step}_rejected")
}

/// One request/reply step's measurements, by the step's name (from the scenario).
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// The step's name.
    pub name: Arc<str>,
    /// Its message sent to the reply accepted (or to the send completing, when no reply is
    /// expected), in microseconds. Its count is the times the step was accepted.
    pub latency: Histogram<u64>,
    /// Times a connection reached the step: its message was built and sent (or the send
    /// failed).
    pub reached: u64,
    /// Replies that were a rejection (`errors.<step>_rejected`).
    pub rejected: u64,
    /// Times no reply matched within the step's timeout (`errors.<step>_timeout`).
    pub timed_out: u64,
    /// Reconnect episodes a rejection began (`reconnects.by_cause.<step>_rejected`).
    pub rejected_reconnects: u64,
    /// Sessions that passed the step at least once.
    pub sessions: u64,
}

impl StepRecord {
    /// An empty record for the step `name`.
    pub fn new(name: Arc<str>) -> StepRecord {
        StepRecord {
            name,
            latency: new_histogram(),
            reached: 0,
            rejected: 0,
            timed_out: 0,
            rejected_reconnects: 0,
            sessions: 0,
        }
    }

    /// The counts, by the name each has in a step's report section and in the interval
    /// log (`steps.<step>.<count>`). Accepted is the latency's count.
    pub fn counts(&self) -> [(&'static str, u64); 5] {
        [
            ("reached", self.reached),
            ("accepted", self.latency.len()),
            ("rejected", self.rejected),
            ("timed_out", self.timed_out),
            ("sessions", self.sessions),
        ]
    }

    fn merge(&mut self, other: &StepRecord) {
        self.latency
            .add(&other.latency)
            .expect("histograms share bounds");
        self.reached += other.reached;
        self.rejected += other.rejected;
        self.timed_out += other.timed_out;
        self.rejected_reconnects += other.rejected_reconnects;
        self.sessions += other.sessions;
    }
}

/// A step by its place in the scenario's list, as sessions record it.
pub type StepIndex = usize;

/// One shard's measurements over one interval. Owned by exactly one thread at a time.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// One histogram per [`Metric`], in microseconds.
    pub histograms: Vec<Histogram<u64>>,
    /// One record per step of the scenario, in the scenario's order.
    pub steps: Vec<StepRecord>,
    /// One count per [`Counter`].
    pub counters: [u64; Counter::COUNT],
    /// Reconnects, one count per [`Cause`] (and per step rejected, in `steps`).
    pub reconnects: [u64; Cause::COUNT],
    /// Failures, one count per [`ErrorKind`] (and per step, in `steps`).
    pub errors: [u64; ErrorKind::COUNT],
    /// Script hook failures, by hook name.
    pub script_errors: BTreeMap<&'static str, u64>,
    /// Counters scripts asked for (`session.count(name)`).
    pub custom_counters: BTreeMap<String, u64>,
    /// Latencies scripts recorded (`session.record(name, ms)`), in microseconds.
    pub custom_latencies: BTreeMap<String, Histogram<u64>>,
    /// What the first few internal errors (caught panics) said.
    pub internal: Vec<String>,
}

/// A recorder without steps: a shard's must be made [`Recorder::for_steps`] (or
/// [`Recorder::fresh`]), since sessions record into their steps by place; one that only
/// merges others (the aggregator's) takes the steps on by name as they come.
impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder for a scenario without steps.
    pub fn new() -> Self {
        Self::for_steps(&[])
    }

    /// An empty recorder for a scenario with these steps, in order.
    pub fn for_steps(steps: &[Arc<str>]) -> Self {
        Self {
            histograms: Metric::ALL.iter().map(|_| new_histogram()).collect(),
            steps: steps.iter().cloned().map(StepRecord::new).collect(),
            counters: [0; Counter::COUNT],
            reconnects: [0; Cause::COUNT],
            errors: [0; ErrorKind::COUNT],
            script_errors: BTreeMap::new(),
            custom_counters: BTreeMap::new(),
            custom_latencies: BTreeMap::new(),
            internal: Vec::new(),
        }
    }

    /// An empty recorder for the same steps as this one.
    pub fn fresh(&self) -> Self {
        let names: Vec<Arc<str>> = self.steps.iter().map(|s| s.name.clone()).collect();
        Self::for_steps(&names)
    }

    /// One step's record. Steps are indexed by their place in the scenario, and every
    /// recorder of a run is made for the scenario's steps.
    pub fn step(&mut self, step: StepIndex) -> &mut StepRecord {
        &mut self.steps[step]
    }

    /// Records the latency of a step accepted.
    pub fn step_accepted(&mut self, step: StepIndex, latency: Duration) {
        self.steps[step]
            .latency
            .saturating_record(clamp_us(latency));
    }

    /// Every latency histogram with its name, in report order: connect, the steps in the
    /// scenario's order, then the rest of the built-in metrics.
    pub fn latencies(&self) -> impl Iterator<Item = (&str, &Histogram<u64>)> {
        let connect = std::iter::once(Metric::Connect);
        let rest = Metric::ALL
            .iter()
            .copied()
            .filter(|m| *m != Metric::Connect);
        connect
            .map(|m| (m.name(), self.histogram(m)))
            .chain(self.steps.iter().map(|s| (&*s.name, &s.latency)))
            .chain(rest.map(|m| (m.name(), self.histogram(m))))
    }

    /// Every failure count by its name: each [`ErrorKind`], then each step's
    /// `<step>_timeout` and `<step>_rejected`. Script failures are apart
    /// (`script_errors`).
    pub fn error_counts(&self) -> Vec<(String, u64)> {
        let kinds = ErrorKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), self.errors[k.index()]));
        let steps = self.steps.iter().flat_map(|s| {
            [
                (step_timeout_name(&s.name), s.timed_out),
                (step_rejected_name(&s.name), s.rejected),
            ]
        });
        kinds.chain(steps).collect()
    }

    /// Every reconnect cause by its name: each [`Cause`], then each step's
    /// `<step>_rejected`.
    pub fn reconnect_counts(&self) -> Vec<(String, u64)> {
        let causes = Cause::ALL
            .iter()
            .map(|c| (c.name().to_string(), self.reconnects[c.index()]));
        let steps = self
            .steps
            .iter()
            .map(|s| (step_rejected_name(&s.name), s.rejected_reconnects));
        causes.chain(steps).collect()
    }

    /// Adds a failure or reconnect count read back by its name (from an interval log):
    /// false when no kind, cause or step of this recorder has that name.
    pub fn add_named(&mut self, section: Section, name: &str, n: u64) -> bool {
        match section {
            Section::Errors => {
                if let Some(k) = ErrorKind::ALL.iter().find(|k| k.name() == name) {
                    self.errors[k.index()] += n;
                    return true;
                }
                for s in &mut self.steps {
                    if name == step_timeout_name(&s.name) {
                        s.timed_out += n;
                        return true;
                    }
                    if name == step_rejected_name(&s.name) {
                        s.rejected += n;
                        return true;
                    }
                }
            }
            Section::Reconnects => {
                if let Some(c) = Cause::ALL.iter().find(|c| c.name() == name) {
                    self.reconnects[c.index()] += n;
                    return true;
                }
                for s in &mut self.steps {
                    if name == step_rejected_name(&s.name) {
                        s.rejected_reconnects += n;
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Counts an internal error (a caught panic) and keeps its message, up to
    /// [`MAX_INTERNAL`] of them.
    pub fn internal(&mut self, message: String) {
        self.error(ErrorKind::Internal);
        if self.internal.len() < MAX_INTERNAL {
            self.internal.push(message);
        }
    }

    /// Counts a script failure under `errors["script.<source>"]`: a hook's name, or
    /// [`SCRIPT_FAIL`] or [`SCRIPT_METRICS`].
    pub fn script_error(&mut self, hook: &'static str, limit: bool) {
        *self.script_errors.entry(hook).or_default() += 1;
        if limit {
            self.error(ErrorKind::ScriptLimit);
        }
    }

    /// Adds one to a script's counter. False when the name would exceed [`MAX_CUSTOM`].
    pub fn custom_count(&mut self, name: &str) -> bool {
        if let Some(n) = self.custom_counters.get_mut(name) {
            *n += 1;
            return true;
        }
        if self.custom_counters.len() >= MAX_CUSTOM {
            return false;
        }
        self.custom_counters.insert(name.to_owned(), 1);
        true
    }

    /// Records a script's latency. False when the name would exceed [`MAX_CUSTOM`].
    pub fn custom_record(&mut self, name: &str, latency: Duration) -> bool {
        let us = clamp_us(latency);
        if let Some(h) = self.custom_latencies.get_mut(name) {
            h.saturating_record(us);
            return true;
        }
        if self.custom_latencies.len() >= MAX_CUSTOM {
            return false;
        }
        let mut h = new_histogram();
        h.saturating_record(us);
        self.custom_latencies.insert(name.to_owned(), h);
        true
    }

    /// Records a latency. Sub-microsecond values count as 1 µs; values beyond an hour are
    /// clamped, never dropped.
    pub fn record(&mut self, metric: Metric, latency: Duration) {
        self.histograms[metric.index()].saturating_record(clamp_us(latency));
    }

    /// Adds one to a counter.
    pub fn count(&mut self, counter: Counter) {
        self.counters[counter.index()] += 1;
    }

    /// Counts a reconnect episode by the cause that began it.
    pub fn reconnect(&mut self, cause: Cause) {
        self.reconnects[cause.index()] += 1;
    }

    /// Counts a failure by its kind.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind.index()] += 1;
    }

    /// The value of one counter.
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters[counter.index()]
    }

    /// One metric's histogram.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric.index()]
    }

    /// Total reconnect episodes over all causes.
    pub fn reconnects_total(&self) -> u64 {
        self.reconnects.iter().sum::<u64>()
            + self
                .steps
                .iter()
                .map(|s| s.rejected_reconnects)
                .sum::<u64>()
    }

    /// Adds another recorder into this one. Exact for histograms and counters.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            mine.add(theirs).expect("histograms share bounds");
        }
        // By name: a recorder made before the steps were known (the aggregator's first)
        // takes them on as they come, in the order they come.
        for theirs in &other.steps {
            match self.steps.iter_mut().find(|s| s.name == theirs.name) {
                Some(mine) => mine.merge(theirs),
                None => self.steps.push(theirs.clone()),
            }
        }
        add_into(&mut self.counters, &other.counters);
        add_into(&mut self.reconnects, &other.reconnects);
        add_into(&mut self.errors, &other.errors);
        for message in &other.internal {
            if self.internal.len() < MAX_INTERNAL {
                self.internal.push(message.clone());
            }
        }
        for (hook, n) in &other.script_errors {
            *self.script_errors.entry(hook).or_default() += n;
        }
        // The name limit holds for merged totals too, not only per interval.
        for (name, n) in &other.custom_counters {
            let room = self.custom_counters.len() < MAX_CUSTOM;
            match self.custom_counters.get_mut(name) {
                Some(mine) => *mine += n,
                None if room => {
                    self.custom_counters.insert(name.clone(), *n);
                }
                None => *self.script_errors.entry(SCRIPT_METRICS).or_default() += n,
            }
        }
        for (name, h) in &other.custom_latencies {
            let room = self.custom_latencies.len() < MAX_CUSTOM;
            match self.custom_latencies.get_mut(name) {
                Some(mine) => mine.add(h).expect("histograms share bounds"),
                None if room => {
                    self.custom_latencies.insert(name.clone(), h.clone());
                }
                None => *self.script_errors.entry(SCRIPT_METRICS).or_default() += h.len(),
            }
        }
    }
}

/// The sections whose counts are named either by a fixed kind or by a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `errors`: [`ErrorKind`]s and the steps' timeouts and rejections.
    Errors,
    /// `reconnects.by_cause`: [`Cause`]s and the steps' rejections.
    Reconnects,
}

/// A latency in whole microseconds, as histograms hold it: sub-microsecond values count
/// as 1 µs; values beyond an hour are clamped, never dropped.
fn clamp_us(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, HIGHEST_US)
}

fn add_into<const N: usize>(into: &mut [u64; N], from: &[u64; N]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// Sessions per [`State`] on one shard, or summed over shards.
pub type Gauges = [i64; State::COUNT];

/// What a shard sends to the aggregator every interval.
#[derive(Debug)]
pub struct Snapshot {
    /// Which shard sent it.
    pub shard: usize,
    /// The interval's measurements.
    pub recorder: Recorder,
    /// Live sessions per state at the end of the interval.
    pub gauges: Gauges,
    /// The interval's number, from 0. Snapshots with the same number, one per shard,
    /// cover the same interval.
    pub seq: u64,
    /// True for the shard's last snapshot: all its sessions have ended.
    pub last: bool,
    /// The most sessions with an open socket during the interval, when the sender
    /// measured it: a worker process's. `None` from this process's own shards, whose
    /// peak is the shared [`Active`] gauge.
    pub peak_active: Option<i64>,
    /// What a worker process said of itself, when the Snapshot came from one.
    pub worker: Option<WorkerNews>,
}

/// A worker process's news beside its measurements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerNews {
    /// Its process id.
    pub pid: u32,
    /// Its peak resident memory so far, KiB.
    pub peak_rss_kib: Option<u64>,
    /// Its CPU time so far, seconds.
    pub cpu_s: Option<f64>,
    /// Why it is gone, when it died before its sessions ended (a crash, a kill): this
    /// Snapshot is then the last the run gets from it, made up by the parent.
    pub lost: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_histograms_exactly() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.count(Counter::HeartbeatsSent);
        b.count(Counter::HeartbeatsSent);
        b.count(Counter::HeartbeatsSent);
        a.reconnect(Cause::Heartbeat);
        b.error(ErrorKind::Tls);
        a.record(Metric::Heartbeat, Duration::from_micros(100));
        b.record(Metric::Heartbeat, Duration::from_micros(300));
        a.merge(&b);
        assert_eq!(a.counter(Counter::HeartbeatsSent), 3);
        assert_eq!(a.reconnects_total(), 1);
        assert_eq!(a.errors[ErrorKind::Tls.index()], 1);
        let h = a.histogram(Metric::Heartbeat);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 100);
        assert!(h.equivalent(h.max(), 300));
    }

    #[test]
    fn huge_and_tiny_latencies_are_clamped_not_dropped() {
        let mut r = Recorder::new();
        r.record(Metric::Connect, Duration::from_nanos(10));
        r.record(Metric::Connect, Duration::from_secs(100_000));
        let h = r.histogram(Metric::Connect);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= HIGHEST_US);
    }

    #[test]
    fn the_peak_is_kept_between_interval_ends() {
        let active = Active::default();
        for _ in 0..5 {
            active.add(1);
        }
        for _ in 0..5 {
            active.add(-1);
        }
        // Five were open and closed again before any interval ended.
        assert_eq!(active.take_interval_peak(), 5);
        active.add(1);
        active.add(1);
        active.add(-1);
        assert_eq!(active.take_interval_peak(), 2);
        // Nothing changed: the interval's peak is the level that stayed.
        assert_eq!(active.take_interval_peak(), 1);
        assert_eq!(active.run_peak(), 5);
    }

    #[test]
    fn names_are_unique_and_indexed_densely() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
        }
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|e| e.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::COUNT);
    }
}
