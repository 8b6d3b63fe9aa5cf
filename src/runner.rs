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
use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::load::Shape;
use crate::metrics::{Active, Counter, Gauges, Recorder, Snapshot, State};
use crate::progress::{Progress, View};
use crate::report::{hlog, prometheus, IntervalLine, Meta};
use crate::session::{self, ConnectFailure, Context, Plan};

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
    let running = Arc::new(AtomicU32::new(0));
    let active = Arc::new(Active::default());
    let (tx, rx) = mpsc::channel::<Snapshot>(shards * 4);
    let (gate_tx, gate_rx) = oneshot::channel();
    let mut gate_tx = Some(gate_tx);
    let mut threads = Vec::with_capacity(shards);
    for shard in 0..shards {
        let shard_args = ShardArgs {
            shard,
            shards,
            plan: plan.clone(),
            interval: options.interval,
            stop: stop.clone(),
            go: go.clone(),
            running: running.clone(),
            active: active.clone(),
            tx: tx.clone(),
            gate: if shard == 0 { gate_tx.take() } else { None },
        };
        let spawned = std::thread::Builder::new()
            .name(format!("wsoak-shard-{shard}"))
            .stack_size(crate::script::STACK_SIZE) // Rhai hooks recurse on this stack
            .spawn(move || run_shard(shard_args));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                stop.cancel();
                return Err(RunError::Start(e));
            }
        }
    }
    drop(tx);
    let writer = options.logs.map(IntervalWriter::start).transpose()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let aggregator = Aggregator {
        plan: &plan,
        shards,
        target: options.target,
        progress: options.progress,
        grace: options.grace,
        stop: stop.clone(),
        go,
        writer,
        metrics: options.metrics,
        active,
    };
    let outcome = runtime.block_on(aggregator.run(rx, gate_rx));
    stop.cancel();
    if let Ok((_, true, _)) = &outcome {
        // A second signal: leave the shards behind, the process is about to exit.
    } else {
        for thread in threads {
            let _ = thread.join();
        }
    }
    outcome.map(|(mut result, _, writer)| {
        // Waiting for the log writer blocks, so it happens here, off the runtime.
        result.lost_intervals = writer.map_or(0, IntervalWriter::finish);
        result
    })
}

/// Merges shard snapshots into intervals and totals; owns the deadline and signals.
struct Aggregator<'a> {
    plan: &'a Plan,
    shards: usize,
    target: String,
    progress: Progress,
    grace: Duration,
    stop: CancellationToken,
    go: CancellationToken,
    writer: Option<IntervalWriter>,
    metrics: Option<std::net::TcpListener>,
    /// Open sockets across the shards, for the exact peak.
    active: Arc<Active>,
}

/// One interval, while its shards' snapshots arrive.
struct Pending {
    recorder: Recorder,
    shards: usize,
    /// Sessions per state at the end of this interval, summed over the shards that
    /// reported it (a shard that has ended has none).
    gauges: Gauges,
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
        let entry = self.pending.entry(snapshot.seq).or_insert_with(|| Pending {
            // The steps are taken on from the snapshots, by name.
            recorder: Recorder::new(),
            shards: 0,
            gauges: [0; State::COUNT],
        });
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
    /// When the load started.
    started: Instant,
    /// The same, on the wall clock, for the hlog's `StartTime`.
    started_at: SystemTime,
    /// Run time at the end of the previous interval: the next one's start.
    last_emitted: Duration,
    /// The process's CPU time at the end of the previous interval.
    cpu_before: Option<Duration>,
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
            let text = prometheus::render(total, gauges);
            if let Ok(mut shared) = exposition.lock() {
                *shared = text;
            }
        }
        if let Some(writer) = &self.writer {
            let line = IntervalLine::build(seq, elapsed, recorder, gauges, peak, cpu);
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
        let mut view = self.progress.start(scenario.sessions, scenario.duration);
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
            scenario: scenario.name.clone(),
            target: self.target.clone(),
            planned: scenario.sessions,
            shards: self.shards,
            started_at: SystemTime::now(),
            elapsed: Duration::ZERO,
            peak_active: 0,
            interrupted: self.stop.is_cancelled(),
            aborted_by: None,
        };
        let deadline = tokio::time::sleep(scenario.duration);
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
            started: Instant::now(),
            started_at: meta.started_at,
            last_emitted: Duration::ZERO,
            cpu_before: crate::report::process_cpu(),
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
                    assembler.add(&snapshot);
                    while let Some((seq, interval)) = assembler.next_complete() {
                        let peak = self.active.take_interval_peak();
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
            let peak = self.active.take_interval_peak();
            let level = scenario.shape.level_at(sinks.started.elapsed());
            sinks.emit(seq, &interval, peak, &total, level);
        }
        let Sinks {
            writer,
            mut view,
            exposition,
            started,
            ..
        } = sinks;
        view.finish();
        if let Some(task) = metrics_task {
            task.abort();
        }
        meta.elapsed = started.elapsed();
        meta.peak_active = meta.peak_active.max(self.active.run_peak());
        let exposition = exposition.map(|_| prometheus::render(&total, &gauges_now));
        Ok((
            RunResult {
                total,
                meta,
                lost_intervals: 0,
                exposition,
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

/// The run's interval logs.
#[derive(Debug)]
pub struct Logs {
    /// `intervals.jsonl`: one JSON line per interval.
    pub intervals: std::fs::File,
    /// `latency.hlog`: every interval's histograms, one tag per metric.
    pub hlog: std::fs::File,
}

/// Histograms with samples, tagged by metric or step name (`custom.<name>` for
/// scripts').
pub fn tagged_histograms(r: &Recorder) -> Vec<(String, hdrhistogram::Histogram<u64>)> {
    let builtin = r
        .latencies()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (name.to_string(), h.clone()));
    let custom = r
        .custom_latencies
        .iter()
        .map(|(name, h)| (format!("custom.{name}"), h.clone()));
    builtin.chain(custom).collect()
}

/// One interval for the writer thread.
struct Entry {
    line: IntervalLine,
    histograms: hlog::Interval,
    started_at: SystemTime,
}

/// Writes the interval logs on a thread of its own, so the aggregator never blocks on
/// the disk. Each interval is written and flushed as it comes: a crash, even `kill -9`,
/// loses nothing before the last interval.
struct IntervalWriter {
    tx: std::sync::mpsc::SyncSender<Entry>,
    thread: std::thread::JoinHandle<u64>,
    /// Entries dropped because the queue was full (the disk far behind).
    dropped: std::cell::Cell<u64>,
}

impl IntervalWriter {
    fn start(logs: Logs) -> std::io::Result<IntervalWriter> {
        // Bounded: a stalled disk must not grow memory. 1024 intervals is 17 minutes of
        // 1 s intervals; entries that do not fit are counted as lost, never queued forever.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Entry>(1024);
        let Logs {
            mut intervals,
            hlog,
        } = logs;
        let thread = std::thread::Builder::new()
            .name("wsoak-intervals".into())
            .spawn(move || {
                let mut lost = 0;
                let mut latency: Option<hlog::Writer<std::fs::File>> = None;
                let mut hlog_file = Some(hlog);
                for entry in rx {
                    let mut text = serde_json::to_string(&entry.line).expect("lines serialise");
                    text.push('\n');
                    let written = intervals
                        .write_all(text.as_bytes())
                        .and_then(|_| intervals.flush());
                    if latency.is_none() {
                        latency = hlog_file
                            .take()
                            .map(|file| hlog::Writer::new(file, entry.started_at));
                    }
                    let logged = latency
                        .as_mut()
                        .map_or(Ok(()), |log| log.write(&entry.histograms));
                    if written.is_err() || logged.is_err() {
                        lost += 1;
                    }
                }
                lost
            })?;
        Ok(IntervalWriter {
            tx,
            thread,
            dropped: std::cell::Cell::new(0),
        })
    }

    fn write(&self, line: IntervalLine, histograms: hlog::Interval, started_at: SystemTime) {
        // A full queue means the disk is far behind; the entry is lost, and counted.
        let sent = self.tx.try_send(Entry {
            line,
            histograms,
            started_at,
        });
        if sent.is_err() {
            self.dropped.set(self.dropped.get() + 1);
        }
    }

    /// Waits for the writer to finish the queue; returns the entries lost. Blocks: call
    /// it outside any async runtime.
    fn finish(self) -> u64 {
        drop(self.tx);
        self.dropped.get() + self.thread.join().unwrap_or(0)
    }
}

struct ShardArgs {
    shard: usize,
    shards: usize,
    plan: Arc<Plan>,
    interval: Duration,
    stop: CancellationToken,
    go: CancellationToken,
    running: Arc<AtomicU32>,
    active: Arc<Active>,
    tx: mpsc::Sender<Snapshot>,
    gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>,
}

fn run_shard(args: ShardArgs) {
    let (shard, tx) = (args.shard, args.tx.clone());
    // The last snapshot of a shard that failed: counted as an internal error, numbered
    // as the next interval it owed, so that the aggregator stops waiting for it there.
    let failed = |seq: u64, message: String| {
        let mut recorder = Recorder::new();
        recorder.internal(format!("shard {shard}: {message}"));
        let _ = tx.blocking_send(Snapshot {
            shard,
            recorder,
            gauges: [0; State::COUNT],
            seq,
            last: true,
        });
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start its runtime: {e}");
            if let Some(gate) = args.gate {
                // The run's first session lived here: the run cannot go ahead.
                let _ = gate.send(Err(ConnectFailure {
                    kind: crate::metrics::ErrorKind::Internal,
                    detail: format!("wsoak could not start shard {shard}: {e}"),
                }));
            }
            failed(0, message);
            return;
        }
    };
    // The next interval this shard owes, kept outside `shard_main` so that it survives
    // a panic there.
    let next_seq = Rc::new(std::cell::Cell::new(0));
    let local = tokio::task::LocalSet::new();
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
        local.block_on(&runtime, shard_main(args, next_seq.clone()));
    }));
    if let Err(payload) = ran {
        // The shard itself failed (its tasks' panics are caught in `spawn_contained`):
        // its sessions are gone. Say so, so that the run's report counts it.
        failed(next_seq.get(), panic_message(&*payload));
    }
}

/// Spawns a session (or the shard's spawner) so that a panic in it is caught and counted
/// as an internal error instead of vanishing with the task: a run whose sessions died
/// of a bug must not look like a healthy run.
fn spawn_contained(
    tracker: &TaskTracker,
    ctx: &Rc<Context>,
    task: impl std::future::Future<Output = ()> + 'static,
) {
    let ctx = ctx.clone();
    tracker.spawn_local(async move {
        if let Err(payload) = AssertUnwindSafe(task).catch_unwind().await {
            ctx.recorder.borrow_mut().internal(panic_message(&*payload));
        }
    });
}

/// What a panic said, as far as its payload tells.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// A start is late when it happens this long after it was due.
const LATE: Duration = Duration::from_millis(100);

async fn shard_main(args: ShardArgs, next_seq: Rc<std::cell::Cell<u64>>) {
    let ShardArgs {
        shard,
        shards,
        plan,
        interval,
        stop,
        go,
        running,
        active,
        tx,
        gate,
    } = args;
    let ctx = Rc::new(Context {
        plan: plan.clone(),
        recorder: std::cell::RefCell::new(Recorder::for_steps(&plan.scenario.step_names())),
        gauges: std::cell::Cell::new([0; State::COUNT]),
        stop: stop.clone(),
        running: running.clone(),
        active,
    });
    let tracker = TaskTracker::new();
    let scenario = &plan.scenario;
    let end = scenario.duration;
    // Slot 0 (or arrival 0) connects first and alone: it decides whether the run goes on.
    let first_until = match &scenario.shape {
        Shape::Closed { .. } => scenario.shape.active_intervals(0, end).first().map(|i| i.1),
        Shape::Open { .. } => None,
    };
    if let Some(gate) = gate {
        running.fetch_add(1, Ordering::Relaxed);
        ctx.count(Counter::ArrivalsDue);
        let until = first_until.filter(|u| *u < end).map(|u| Instant::now() + u);
        spawn_contained(
            &tracker,
            &ctx,
            session::run(ctx.clone(), 0, Some(gate), until),
        );
    }
    {
        let (ctx, spawner, stop) = (ctx.clone(), tracker.clone(), stop.clone());
        let spawning = ctx.clone();
        spawn_contained(&tracker, &spawning, async move {
            tokio::select! {
                _ = go.cancelled() => {}
                _ = stop.cancelled() => return,
            }
            spawn_sessions(&ctx, &spawner, shard, shards, &stop).await;
        });
    }
    let take = |seq: u64, last: bool| Snapshot {
        shard,
        recorder: {
            let mut recorder = ctx.recorder.borrow_mut();
            let fresh = recorder.fresh();
            std::mem::replace(&mut *recorder, fresh)
        },
        gauges: ctx.gauges.get(),
        seq,
        last,
    };
    let mut flush = tokio::time::interval(interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.tick().await;
    let mut seq = 0;
    let mut closing = false;
    loop {
        tokio::select! {
            _ = flush.tick() => {
                if tx.send(take(seq, false)).await.is_err() {
                    stop.cancel();
                }
                seq += 1;
                next_seq.set(seq);
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                tracker.close();
            }
            _ = tracker.wait(), if closing => break,
        }
    }
    let _ = tx.send(take(seq, true)).await;
}

/// Starts this shard's share of the load shape's sessions, each at its due time.
async fn spawn_sessions(
    ctx: &Rc<Context>,
    tracker: &TaskTracker,
    shard: usize,
    shards: usize,
    stop: &CancellationToken,
) {
    let scenario = &ctx.plan.scenario;
    let end = scenario.duration;
    let start = Instant::now();
    // Waits until `due` (from the start); false when the run stopped first.
    let wait = |due: Duration| async move {
        let at = start + due;
        if at > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = stop.cancelled() => return false,
            }
        }
        if Instant::now() > at + LATE {
            ctx.count(Counter::ArrivalsLate);
        }
        !stop.is_cancelled()
    };
    match &scenario.shape {
        Shape::Closed { .. } => {
            // (start, slot, end) for every time one of this shard's slots becomes active.
            let mut starts: Vec<(Duration, u32, Duration)> = (shard as u32..scenario.sessions)
                .step_by(shards)
                .flat_map(|slot| {
                    let intervals = scenario.shape.active_intervals(slot, end);
                    // Slot 0's first interval is the gate session's, already running.
                    let skip = usize::from(slot == 0);
                    intervals
                        .into_iter()
                        .skip(skip)
                        .map(move |(a, b)| (a, slot, b))
                })
                .collect();
            starts.sort_by_key(|s| s.0);
            for (n, (due, slot, until)) in starts.into_iter().enumerate() {
                if !wait(due).await {
                    return;
                }
                ctx.count(Counter::ArrivalsDue);
                ctx.running.fetch_add(1, Ordering::Relaxed);
                let until = (until < end).then(|| start + until);
                spawn_contained(tracker, ctx, session::run(ctx.clone(), slot, None, until));
                if n % 256 == 255 {
                    // Let sessions already spawned make progress during a big burst.
                    tokio::task::yield_now().await;
                }
            }
        }
        Shape::Open { max_sessions, .. } => {
            let mut index = shard as u64;
            while let Some(due) = scenario.shape.arrival_due(index, end) {
                let this = index;
                index += shards as u64;
                if this == 0 {
                    continue; // the gate session
                }
                if !wait(due).await {
                    return;
                }
                ctx.count(Counter::ArrivalsDue);
                // One atomic step, so shards admitting at once cannot overshoot the cap.
                let admitted = ctx
                    .running
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < *max_sessions).then_some(n + 1)
                    })
                    .is_ok();
                if !admitted {
                    ctx.count(Counter::ArrivalsDropped);
                    continue;
                }
                let id = u32::try_from(this).unwrap_or(u32::MAX);
                spawn_contained(tracker, ctx, session::run(ctx.clone(), id, None, None));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Rc<Context> {
        Context::for_test("heartbeat:\n  send: {type: heartBeat}\n", Vec::new())
    }

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

    #[test]
    fn a_panicking_task_is_counted_not_lost() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let ctx = context();
        let tracker = TaskTracker::new();
        local.block_on(&runtime, async {
            for i in 0..3 {
                spawn_contained(&tracker, &ctx, async move {
                    if i > 0 {
                        panic!("session {i} broke");
                    }
                });
            }
            tracker.close();
            tracker.wait().await;
        });
        let recorder = ctx.recorder.borrow();
        assert_eq!(
            recorder.errors[crate::metrics::ErrorKind::Internal.index()],
            2
        );
        assert_eq!(
            recorder.internal,
            vec!["session 1 broke", "session 2 broke"]
        );
    }

    #[test]
    fn a_panicking_shard_sends_its_last_snapshot() {
        let (tx, mut rx) = mpsc::channel(4);
        let args = ShardArgs {
            shard: 3,
            shards: 4,
            plan: context().plan.clone(),
            interval: Duration::from_secs(1),
            stop: CancellationToken::new(),
            go: CancellationToken::new(),
            running: Arc::new(AtomicU32::new(0)),
            active: Arc::default(),
            tx,
            gate: None,
        };
        // A shard whose own loop panics: its interval of zero makes `tokio::time::interval`
        // panic, the way a bug in the shard would.
        let args = ShardArgs {
            interval: Duration::ZERO,
            ..args
        };
        std::thread::spawn(move || run_shard(args)).join().unwrap();
        let last = rx.try_recv().expect("a last snapshot");
        assert!(last.last);
        assert_eq!(last.shard, 3);
        // Numbered as the interval it owed (it had sent none), so the aggregator neither
        // waits for it nor opens an interval that was already written.
        assert_eq!(last.seq, 0);
        assert_eq!(
            last.recorder.errors[crate::metrics::ErrorKind::Internal.index()],
            1
        );
        assert!(
            last.recorder.internal[0].starts_with("shard 3: "),
            "{:?}",
            last.recorder.internal
        );
    }
}
