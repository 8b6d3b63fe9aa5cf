//! The load: shards, session spawning by load shape, the deadline, the interval log,
//! thresholds that abort, and graceful shutdown.
//!
//! Each shard is an OS thread with a current-thread tokio runtime; its sessions are local
//! tasks recording into the shard's own recorder. Every interval a shard swaps its recorder
//! out and sends it to the aggregator (this module's caller thread) as a numbered
//! [`Snapshot`]. When every shard's snapshot for an interval has arrived, the aggregator
//! merges them into one line of `intervals.jsonl`, refreshes the live view and checks the
//! thresholds that may abort the run. Shards and the aggregator share nothing else but two
//! cancellation tokens (`go`: the first connect worked; `stop`: close politely) and the
//! count of running sessions (for the open model's cap).
//!
//! The run's first session connects alone. If that connect fails (refused, TLS, HTTP
//! error), the target cannot work and the run ends with a usage error instead of thousands
//! of identical failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod shard;
mod worker;
mod workers;
mod writer;

pub use shard::ShardSet;
pub use worker::{work, WorkerSpec};
pub use workers::run_with_workers;
pub use writer::{tagged_histograms, Logs};

use crate::load::Slice;
use crate::metrics::{Active, Gauges, Recorder, Snapshot, State, WorkerNews};
use crate::progress::{Progress, View};
use crate::report::{hlog, prometheus, IntervalLine, Meta};
use crate::session::{ConnectFailure, Plan};
use writer::IntervalWriter;

/// When a run's load shape starts, on both clocks: every interval boundary and due time
/// counts from it. Shards of one run (`--shard I/N --start-at T`) share it, so their
/// intervals line up.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// On the wall clock: `started_at` in the report, `StartTime` in the latency log.
    pub wall: SystemTime,
    /// The same moment on the monotonic clock.
    pub instant: Instant,
    /// Whether the moment was given (`--start-at`, `--start-in`): sessions are then due
    /// from it even when the run's first connect takes a while, as on every other shard.
    /// Otherwise they are due from when that first connect has worked, and only
    /// intervals count from the origin.
    pub fixed: bool,
}

impl Origin {
    /// Now.
    pub fn now() -> Origin {
        Origin {
            wall: SystemTime::now(),
            instant: Instant::now(),
            fixed: false,
        }
    }

    /// The moment `wall`, past or future.
    pub fn at(wall: SystemTime) -> Origin {
        let (now, instant) = (SystemTime::now(), Instant::now());
        let instant = match wall.duration_since(now) {
            Ok(ahead) => instant + ahead,
            Err(behind) => instant.checked_sub(behind.duration()).unwrap_or(instant),
        };
        Origin {
            wall,
            instant,
            fixed: true,
        }
    }

    /// Waits on this thread until the origin, unless a signal (Ctrl-C, SIGTERM, SIGHUP)
    /// comes first: then false.
    pub fn wait(&self) -> std::io::Result<bool> {
        if self.instant <= Instant::now() {
            return Ok(true);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep_until(self.instant) => true,
                _ = shutdown_signal() => false,
            }
        }))
    }
}

/// How to run, beyond what the scenario says.
#[derive(Debug)]
pub struct RunOptions {
    /// Number of shards (threads); at least 1.
    pub shards: usize,
    /// How often shards send snapshots and `intervals.jsonl` gets a line.
    pub interval: Duration,
    /// The live view.
    pub progress: Progress,
    /// The open interval logs, if any. They are written by a thread of their own.
    pub logs: Option<Logs>,
    /// The target as shown in reports.
    pub target: String,
    /// How long sessions get to close politely after the run ends.
    pub grace: Duration,
    /// Where to serve `/metrics`, already bound.
    pub metrics: Option<std::net::TcpListener>,
    /// When the load shape starts.
    pub origin: Origin,
    /// The run's shard this process runs (the whole run, normally).
    pub slice: Slice,
    /// The labels every series of `/metrics` carries.
    pub labels: prometheus::Labels,
}

/// Everything measured in a run.
#[derive(Debug)]
pub struct RunResult {
    /// All snapshots merged.
    pub total: Recorder,
    /// How the report describes the run.
    pub meta: Meta,
    /// Intervals whose line could not be written (disk full, say); 0 normally.
    pub lost_intervals: u64,
    /// The final Prometheus exposition, when `/metrics` was served.
    pub exposition: Option<String>,
    /// What each worker process last said of itself (none without workers).
    pub workers: Vec<WorkerNews>,
    /// The largest resident size an interval line of this process recorded.
    pub sampled_rss_kib: Option<u64>,
}

/// Why a run could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The first session's first connect failed: the target is unusable as configured.
    #[error("cannot connect to {target}: {}", .failure.detail)]
    FirstConnect {
        /// The target, for the message.
        target: String,
        /// What failed.
        failure: ConnectFailure,
    },
    /// A thread or runtime could not be created.
    #[error("cannot start the load: {0}")]
    Start(#[from] std::io::Error),
}

/// Runs the load described by `plan` and returns what was measured.
pub fn run(plan: Arc<Plan>, options: RunOptions) -> Result<RunResult, RunError> {
    let shards = options.shards.max(1);
    let stop = CancellationToken::new();
    let go = CancellationToken::new();
    let (gate_tx, gate_rx) = oneshot::channel();
    let cap = options.slice.share(plan.scenario.sessions);
    let started = shard::start(shard::Start {
        plan: plan.clone(),
        set: ShardSet::whole(shards, options.slice),
        origin: options.origin,
        interval: options.interval,
        stop: stop.clone(),
        go: go.clone(),
        cap,
        gate: Some(gate_tx),
    })?;
    let source = Source {
        rx: started.rx,
        gate: gate_rx,
        count: shards,
        shards,
        workers: 0,
        active: started.active,
    };
    let outcome = aggregate(&plan, options, source, stop.clone(), go);
    stop.cancel();
    if let Ok((_, true)) = &outcome {
        // A second signal: leave the shards behind, the process is about to exit.
    } else {
        for thread in started.threads {
            let _ = thread.join();
        }
    }
    outcome.map(|(result, _)| result)
}

/// Where an aggregator's Snapshots come from: this process's shards, or worker
/// processes.
pub(crate) struct Source {
    /// The Snapshots, numbered by source (`0..count`).
    pub(crate) rx: mpsc::Receiver<Snapshot>,
    /// The outcome of the run's first connect.
    pub(crate) gate: oneshot::Receiver<Result<(), ConnectFailure>>,
    /// How many sources send Snapshots: shards, or worker processes.
    pub(crate) count: usize,
    /// Shards in the whole run, for the report.
    pub(crate) shards: usize,
    /// Worker processes (0: the shards run in this process).
    pub(crate) workers: usize,
    /// Open sockets in this process's shards (unused with workers, whose Snapshots carry
    /// their peaks).
    pub(crate) active: Arc<Active>,
}

/// Runs the aggregator on this thread until the run is over: merges the Snapshots,
/// writes the logs, owns the deadline and the signals. `stop` and `go` are what the
/// sources obey. Returns the result and whether a second signal cut the stop short.
pub(crate) fn aggregate(
    plan: &Plan,
    options: RunOptions,
    source: Source,
    stop: CancellationToken,
    go: CancellationToken,
) -> Result<(RunResult, bool), RunError> {
    let writer = options.logs.map(IntervalWriter::start).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let aggregator = Aggregator {
        plan,
        shards: source.count,
        total_shards: source.shards,
        workers: source.workers,
        target: options.target,
        progress: options.progress,
        grace: options.grace,
        stop,
        go,
        writer,
        metrics: options.metrics,
        labels: options.labels,
        active: source.active,
        origin: options.origin,
        planned: options.slice.share(plan.scenario.sessions),
    };
    let outcome = runtime.block_on(aggregator.run(source.rx, source.gate));
    outcome.map(|(mut result, cut_short, writer)| {
        // Waiting for the log writer blocks, so it happens here, off the runtime.
        result.lost_intervals = writer.map_or(0, IntervalWriter::finish);
        (result, cut_short)
    })
}

/// Merges shard snapshots into intervals and totals; owns the deadline and signals.
struct Aggregator<'a> {
    plan: &'a Plan,
    /// Sources of Snapshots: shards, or worker processes.
    shards: usize,
    /// Shards in the whole run.
    total_shards: usize,
    /// Worker processes (0: none).
    workers: usize,
    target: String,
    progress: Progress,
    grace: Duration,
    stop: CancellationToken,
    go: CancellationToken,
    writer: Option<IntervalWriter>,
    metrics: Option<std::net::TcpListener>,
    /// The labels of every series of `/metrics`.
    labels: prometheus::Labels,
    /// Open sockets across the shards, for the exact peak.
    active: Arc<Active>,
    /// When the load shape starts.
    origin: Origin,
    /// This process's share of the scenario's sessions.
    planned: u32,
}

/// One interval, while its shards' snapshots arrive.
struct Pending {
    recorder: Recorder,
    shards: usize,
    /// Sessions per state at the end of this interval, summed over the shards that
    /// reported it (a shard that has ended has none).
    gauges: Gauges,
    /// The sum of the peaks the sources measured themselves (worker processes), if any.
    /// An upper bound of the peak of their sum: worker peaks need not coincide.
    peak: Option<i64>,
}

impl Pending {
    /// An interval nobody reported anything in.
    fn empty() -> Pending {
        Pending {
            recorder: Recorder::new(),
            shards: 0,
            gauges: [0; State::COUNT],
            peak: None,
        }
    }

    /// The most sessions with an open socket during the interval: what the sources
    /// measured, or this process's own gauge.
    fn peak(&self, active: &Active) -> i64 {
        self.peak.unwrap_or_else(|| active.take_interval_peak())
    }
}

/// Puts shards' snapshots together into whole intervals. An interval is complete when
/// every shard still running at it has sent its snapshot; complete intervals come out in
/// order, whatever order the snapshots arrived in. Pure: no clock, no I/O.
struct Assembler {
    /// Intervals some shards have reported, by number.
    pending: BTreeMap<u64, Pending>,
    /// Per shard: the number of its last snapshot, once it has sent it.
    ended_at: Vec<Option<u64>>,
    /// The next interval to come out.
    next_seq: u64,
    /// Per shard: sessions per state in its newest snapshot.
    latest: Vec<Gauges>,
}

impl Assembler {
    fn new(shards: usize) -> Assembler {
        Assembler {
            pending: BTreeMap::new(),
            ended_at: vec![None; shards],
            next_seq: 0,
            latest: vec![[0; State::COUNT]; shards],
        }
    }

    /// Takes in one shard's snapshot.
    fn add(&mut self, snapshot: &Snapshot) {
        self.latest[snapshot.shard] = snapshot.gauges;
        if snapshot.last {
            self.ended_at[snapshot.shard] = Some(snapshot.seq);
        }
        // The steps are taken on from the snapshots, by name.
        let entry = self
            .pending
            .entry(snapshot.seq)
            .or_insert_with(Pending::empty);
        if let Some(peak) = snapshot.peak_active {
            entry.peak = Some(entry.peak.unwrap_or(0) + peak);
        }
        entry.recorder.merge(&snapshot.recorder);
        entry.shards += 1;
        for (sum, v) in entry.gauges.iter_mut().zip(&snapshot.gauges) {
            *sum += v;
        }
    }

    /// The next interval, once every shard still running at it has reported it.
    fn next_complete(&mut self) -> Option<(u64, Pending)> {
        let seq = self.next_seq;
        let expected = self
            .ended_at
            .iter()
            .filter(|e| e.is_none_or(|last| last >= seq))
            .count();
        if self.pending.get(&seq)?.shards < expected {
            return None;
        }
        self.next_seq += 1;
        self.pending.remove(&seq).map(|p| (seq, p))
    }

    /// What is left when the run is cut short: incomplete intervals, in order.
    fn rest(self) -> impl Iterator<Item = (u64, Pending)> {
        self.pending.into_iter()
    }

    /// Whether every shard has ended by interval `seq`: nothing comes after it.
    fn finished_by(&self, seq: u64) -> bool {
        self.ended_at
            .iter()
            .all(|e| e.is_some_and(|last| last <= seq))
    }

    /// The interval after every one this assembler has seen or put out.
    fn next_seq_after_rest(&self) -> u64 {
        let pending = self.pending.keys().next_back().map_or(0, |s| s + 1);
        self.next_seq.max(pending)
    }

    /// Sessions with an open socket in one source's newest snapshot.
    fn active_of(&self, shard: usize) -> i64 {
        let gauges = &self.latest[shard];
        State::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| gauges[s.index()])
            .sum()
    }

    /// Sessions per state now, summed over the shards' newest snapshots.
    fn gauges(&self) -> Gauges {
        sum_gauges(&self.latest)
    }
}

/// Where every complete interval goes: the interval logs, the live view and the
/// Prometheus exposition.
struct Sinks {
    /// `intervals.jsonl` and `latency.hlog`, written by their own thread.
    writer: Option<IntervalWriter>,
    /// The live view.
    view: View,
    /// The text `/metrics` serves, when it is served.
    exposition: Option<prometheus::Exposition>,
    /// The labels of every series it has.
    labels: prometheus::Labels,
    /// When the load started.
    started: Instant,
    /// The same, on the wall clock, for the hlog's `StartTime`.
    started_at: SystemTime,
    /// Run time at the end of the previous interval: the next one's start.
    last_emitted: Duration,
    /// The process's CPU time at the end of the previous interval.
    cpu_before: Option<Duration>,
    /// The largest resident size an interval line recorded. Linux updates the high-water
    /// mark (VmHWM) only at some events, so a sample of VmRSS can read above the
    /// VmHWM read at the end: the run's peak is the larger of the two.
    sampled_rss_kib: Option<u64>,
}

impl Sinks {
    /// Hands one complete interval to every sink. `total` is the run so far, `level` the
    /// load shape's target now.
    fn emit(&mut self, seq: u64, interval: &Pending, peak: i64, total: &Recorder, level: f64) {
        let elapsed = self.started.elapsed();
        let cpu_now = crate::report::process_cpu();
        let cpu = cpu_now
            .zip(self.cpu_before)
            .map(|(now, before)| now.saturating_sub(before));
        self.cpu_before = cpu_now;
        let (recorder, gauges) = (&interval.recorder, &interval.gauges);
        self.view.update(recorder, gauges, elapsed, level);
        if let Some(exposition) = &self.exposition {
            let text = prometheus::render(total, gauges, &self.labels);
            if let Ok(mut shared) = exposition.lock() {
                *shared = text;
            }
        }
        if let Some(writer) = &self.writer {
            let line = IntervalLine::build(seq, elapsed, recorder, gauges, peak, cpu);
            self.sampled_rss_kib = self.sampled_rss_kib.max(line.rss_kib);
            let histograms = hlog::Interval {
                start: self.last_emitted,
                length: elapsed.saturating_sub(self.last_emitted),
                histograms: tagged_histograms(recorder),
            };
            writer.write(line, histograms, self.started_at);
        }
        self.last_emitted = elapsed;
    }
}

impl Aggregator<'_> {
    /// Returns the result, whether a second signal cut the shutdown short, and the
    /// interval log writer, for the caller to finish off the runtime.
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Snapshot>,
        gate_rx: oneshot::Receiver<Result<(), ConnectFailure>>,
    ) -> Result<(RunResult, bool, Option<IntervalWriter>), RunError> {
        let scenario = &self.plan.scenario;
        let (exposition, metrics_task) = match self.metrics.take() {
            Some(listener) => {
                let exposition: prometheus::Exposition =
                    Arc::new(std::sync::Mutex::new(String::new()));
                let task = tokio::net::TcpListener::from_std(listener)
                    .ok()
                    .map(|l| tokio::spawn(prometheus::serve(l, exposition.clone())));
                (Some(exposition), task)
            }
            None => (None, None),
        };
        let mut view = self.progress.start(self.planned, scenario.duration);
        let mut signals = Signals::new();
        // The first connect decides whether the run goes ahead.
        let gate = tokio::select! {
            r = gate_rx => r.unwrap_or(Ok(())),
            _ = signals.next() => {
                self.stop.cancel();
                Ok(())
            }
        };
        if let Err(failure) = gate {
            self.stop.cancel();
            while rx.recv().await.is_some() {}
            view.finish();
            return Err(RunError::FirstConnect {
                target: scenario.target.to_string(),
                failure,
            });
        }
        self.go.cancel();
        let mut meta = Meta {
            identity: Default::default(),
            scenario: scenario.name.clone(),
            target: self.target.clone(),
            planned: self.planned,
            shards: self.total_shards,
            workers: self.workers,
            started_at: self.origin.wall,
            elapsed: Duration::ZERO,
            peak_active: 0,
            interrupted: self.stop.is_cancelled(),
            aborted_by: None,
            lost_workers: Vec::new(),
            shard: None,
        };
        // What each worker process last said of itself.
        let mut workers: BTreeMap<usize, WorkerNews> = BTreeMap::new();
        let deadline = tokio::time::sleep_until(self.origin.instant + scenario.duration);
        tokio::pin!(deadline);
        let grace = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(grace);
        // Made for the scenario's steps, so the report lists them in order whatever
        // the shards send.
        let mut total = Recorder::for_steps(&scenario.step_names());
        let mut assembler = Assembler::new(self.shards);
        let mut sinks = Sinks {
            writer: self.writer.take(),
            view,
            exposition,
            labels: std::mem::take(&mut self.labels),
            started: self.origin.instant,
            started_at: meta.started_at,
            last_emitted: Duration::ZERO,
            cpu_before: crate::report::process_cpu(),
            sampled_rss_kib: None,
        };
        let mut stopping = self.stop.is_cancelled();
        let mut cut_short = false;
        if stopping {
            // A signal came before the first connect finished.
            grace.as_mut().reset(Instant::now() + self.grace);
        }
        let abort_checks: Vec<_> = scenario
            .thresholds
            .iter()
            .filter(|t| t.abort_on_fail)
            .cloned()
            .collect();
        loop {
            tokio::select! {
                snapshot = rx.recv() => {
                    let Some(snapshot) = snapshot else { break };
                    total.merge(&snapshot.recorder);
                    if let Some(news) = &snapshot.worker {
                        let held = assembler.active_of(snapshot.shard);
                        if let Some(why) = &news.lost {
                            meta.lost_workers.push(crate::report::LostWorker {
                                worker: snapshot.shard as u64,
                                pid: news.pid,
                                at_s: (sinks.started.elapsed().as_secs_f64() * 1000.0).round()
                                    / 1000.0,
                                sessions: held.max(0) as u64,
                                cause: why.clone(),
                            });
                        }
                        workers.insert(snapshot.shard, news.clone());
                    }
                    assembler.add(&snapshot);
                    while let Some((seq, interval)) = assembler.next_complete() {
                        let peak = interval.peak(&self.active);
                        meta.peak_active = meta.peak_active.max(peak);
                        let level = scenario.shape.level_at(sinks.started.elapsed());
                        sinks.emit(seq, &interval, peak, &total, level);
                        if !stopping && meta.aborted_by.is_none() {
                            let elapsed = sinks.started.elapsed();
                            if let Some(check) = failing_abort(&abort_checks, &total, &meta, elapsed) {
                                meta.aborted_by = Some(check);
                                stopping = true;
                                self.stop.cancel();
                                grace.as_mut().reset(Instant::now() + self.grace);
                                sinks.view.stopping();
                            }
                        }
                    }
                }
                _ = &mut deadline, if !stopping => {
                    stopping = true;
                    self.stop.cancel();
                    grace.as_mut().reset(Instant::now() + self.grace);
                    sinks.view.stopping();
                }
                _ = signals.next() => {
                    if stopping {
                        // The second signal: stop at once, with what has arrived.
                        cut_short = true;
                        meta.interrupted = true;
                        break;
                    }
                    stopping = true;
                    meta.interrupted = true;
                    self.stop.cancel();
                    grace.as_mut().reset(Instant::now() + self.grace);
                    sinks.view.stopping();
                }
                _ = &mut grace, if stopping => {
                    // Sessions had their grace period; report what arrived.
                    cut_short = true;
                    break;
                }
            }
        }
        let gauges_now = assembler.gauges();
        // Whatever is still incomplete (a cut-short stop) becomes the last lines.
        for (seq, interval) in assembler.rest() {
            let peak = interval.peak(&self.active);
            let level = scenario.shape.level_at(sinks.started.elapsed());
            sinks.emit(seq, &interval, peak, &total, level);
        }
        let Sinks {
            writer,
            mut view,
            exposition,
            labels,
            started,
            sampled_rss_kib,
            ..
        } = sinks;
        view.finish();
        if let Some(task) = metrics_task {
            task.abort();
        }
        meta.elapsed = started.elapsed();
        meta.peak_active = meta.peak_active.max(self.active.run_peak());
        let exposition = exposition.map(|_| prometheus::render(&total, &gauges_now, &labels));
        Ok((
            RunResult {
                total,
                meta,
                lost_intervals: 0,
                exposition,
                workers: workers.into_values().collect(),
                sampled_rss_kib,
            },
            cut_short,
            writer,
        ))
    }
}

/// The first `abort_on_fail` threshold past its delay that fails on the totals so far.
fn failing_abort(
    checks: &[crate::report::threshold::Threshold],
    total: &Recorder,
    meta: &Meta,
    elapsed: Duration,
) -> Option<String> {
    let due: Vec<_> = checks.iter().filter(|t| elapsed >= t.delay).collect();
    if due.is_empty() {
        return None;
    }
    // Read from the totals, not from a report built for the purpose: `tester.*` is the
    // footprint so far, measured as the final report will measure it.
    due.iter()
        .map(|t| t.evaluate_live(total, meta))
        .find(|v| !v.pass)
        .map(|v| v.check)
}

/// Sessions with an open socket.
fn sum_gauges(per_shard: &[Gauges]) -> Gauges {
    let mut sum = [0i64; State::COUNT];
    for g in per_shard {
        for (s, v) in sum.iter_mut().zip(g) {
            *s += v;
        }
    }
    sum
}

/// The signals that stop a run, as a stream: Ctrl-C (SIGINT), SIGTERM, and SIGHUP, which
/// a closed terminal or a restarting supervisor sends and which would otherwise end the
/// process without a report. The first asks for a graceful stop, the second for an
/// immediate one.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            #[cfg(unix)]
            term: signal(SignalKind::terminate()).ok(),
            #[cfg(unix)]
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn on(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = on(&mut self.term) => {}
                _ = on(&mut self.hangup) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP.
pub(crate) async fn shutdown_signal() {
    Signals::new().next().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counter;

    fn snapshot(shard: usize, seq: u64, last: bool, sent: u64) -> Snapshot {
        let mut recorder = Recorder::new();
        for _ in 0..sent {
            recorder.count(Counter::HeartbeatsSent);
        }
        let mut gauges = [0; State::COUNT];
        gauges[State::Bound.index()] = 10 * (shard as i64 + 1);
        Snapshot {
            shard,
            recorder,
            gauges,
            seq,
            last,
            peak_active: None,
            worker: None,
        }
    }

    #[test]
    fn intervals_come_out_whole_and_in_order() {
        let mut a = Assembler::new(2);
        // Shard 1 runs ahead: its intervals 0 and 1 wait for shard 0's.
        a.add(&snapshot(1, 0, false, 5));
        a.add(&snapshot(1, 1, false, 6));
        assert!(a.next_complete().is_none());
        a.add(&snapshot(0, 0, false, 1));
        let (seq, first) = a.next_complete().unwrap();
        assert_eq!((seq, first.shards), (0, 2));
        assert_eq!(first.recorder.counter(Counter::HeartbeatsSent), 6);
        assert_eq!(first.gauges[State::Bound.index()], 30);
        assert!(
            a.next_complete().is_none(),
            "interval 1 still waits for shard 0"
        );
        // Shard 0 ends with interval 1: from interval 2 on, shard 1 alone completes them.
        a.add(&snapshot(0, 1, true, 2));
        let (seq, second) = a.next_complete().unwrap();
        assert_eq!(
            (seq, second.recorder.counter(Counter::HeartbeatsSent)),
            (1, 8)
        );
        a.add(&snapshot(1, 2, false, 7));
        assert_eq!(a.next_complete().unwrap().0, 2);
        // A cut-short stop leaves what never completed, in order.
        a.add(&snapshot(1, 4, false, 1));
        assert!(a.next_complete().is_none(), "interval 3 never came");
        assert_eq!(a.gauges()[State::Bound.index()], 30);
        let rest: Vec<u64> = a.rest().map(|(seq, _)| seq).collect();
        assert_eq!(rest, vec![4]);
    }
}
