//! The load: shards, session spawning, the deadline and graceful shutdown.
//!
//! Each shard is an OS thread with a current-thread tokio runtime; its sessions are local
//! tasks recording into the shard's own recorder. Every interval a shard swaps its recorder
//! out and sends it to the aggregator (this module's caller thread) as a [`Snapshot`].
//! Shards and the aggregator share nothing else but two cancellation tokens: `go` (the
//! first connect worked, start everyone) and `stop` (the run is over, close politely).
//!
//! The run's first session connects alone. If that connect fails (refused, TLS, HTTP
//! error), the target cannot work and the run ends with a usage error instead of thousands
//! of identical failures.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{Gauges, Recorder, Snapshot, State};
use crate::progress::Progress;
use crate::session::{self, ConnectFailure, Context, Plan};

/// How to run, beyond what the scenario says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Number of shards (threads); at least 1.
    pub shards: usize,
    /// How often shards send snapshots.
    pub interval: Duration,
    /// The live view.
    pub progress: Progress,
}

/// Everything measured in a run.
#[derive(Debug)]
pub struct RunResult {
    /// All snapshots merged.
    pub total: Recorder,
    /// Wall-clock start of the load (after the first connect).
    pub started_at: SystemTime,
    /// How long the load ran, from the first connect to the last session closing.
    pub elapsed: Duration,
    /// Highest number of sessions with an open socket, sampled at each snapshot.
    pub peak_active: i64,
    /// Sessions per state when the last shard finished (all zero after a clean stop).
    pub final_gauges: Gauges,
    /// True when a signal, not the duration, ended the run.
    pub interrupted: bool,
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
    let (tx, mut rx) = mpsc::channel::<Snapshot>(shards * 4);
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
            tx: tx.clone(),
            gate: if shard == 0 { gate_tx.take() } else { None },
        };
        let spawned = std::thread::Builder::new()
            .name(format!("wsoak-shard-{shard}"))
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

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let scenario = &plan.scenario;
    let outcome = runtime.block_on(async {
        let mut progress = options.progress.start(scenario.sessions, scenario.duration);
        // The first connect decides whether the run goes ahead.
        let gate = tokio::select! {
            r = gate_rx => r.unwrap_or(Ok(())),
            _ = shutdown_signal() => {
                stop.cancel();
                Ok(())
            }
        };
        if let Err(failure) = gate {
            stop.cancel();
            while rx.recv().await.is_some() {}
            progress.finish();
            return Err(RunError::FirstConnect {
                target: scenario.target.to_string(),
                failure,
            });
        }
        go.cancel();
        let started_at = SystemTime::now();
        let started = Instant::now();
        let deadline = tokio::time::sleep(scenario.duration);
        tokio::pin!(deadline);
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let mut total = Recorder::new();
        let mut gauges = vec![[0i64; State::COUNT]; shards];
        let mut peak_active = 0;
        let mut interrupted = stop.is_cancelled();
        let mut stopping = stop.is_cancelled();
        loop {
            tokio::select! {
                snapshot = rx.recv() => {
                    let Some(snapshot) = snapshot else { break };
                    gauges[snapshot.shard] = snapshot.gauges;
                    let summed = sum_gauges(&gauges);
                    peak_active = peak_active.max(active(&summed));
                    progress.update(&snapshot.recorder, &summed, started.elapsed());
                    total.merge(&snapshot.recorder);
                }
                _ = &mut deadline, if !stopping => {
                    stopping = true;
                    stop.cancel();
                    progress.stopping();
                }
                _ = &mut signal, if !stopping => {
                    stopping = true;
                    interrupted = true;
                    stop.cancel();
                    progress.stopping();
                }
            }
        }
        progress.finish();
        Ok(RunResult {
            total,
            started_at,
            elapsed: started.elapsed(),
            peak_active,
            final_gauges: sum_gauges(&gauges),
            interrupted,
        })
    });
    stop.cancel();
    for thread in threads {
        let _ = thread.join();
    }
    outcome
}

/// Sessions with an open socket.
fn active(gauges: &Gauges) -> i64 {
    gauges[State::Authenticating.index()]
        + gauges[State::Binding.index()]
        + gauges[State::Bound.index()]
}

fn sum_gauges(per_shard: &[Gauges]) -> Gauges {
    let mut sum = [0i64; State::COUNT];
    for g in per_shard {
        for (s, v) in sum.iter_mut().zip(g) {
            *s += v;
        }
    }
    sum
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct ShardArgs {
    shard: usize,
    shards: usize,
    plan: Arc<Plan>,
    interval: Duration,
    stop: CancellationToken,
    go: CancellationToken,
    tx: mpsc::Sender<Snapshot>,
    gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>,
}

fn run_shard(args: ShardArgs) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return, // the aggregator sees this shard's channel close
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, shard_main(args));
}

async fn shard_main(args: ShardArgs) {
    let ShardArgs {
        shard,
        shards,
        plan,
        interval,
        stop,
        go,
        tx,
        gate,
    } = args;
    let ctx = Rc::new(Context {
        plan: plan.clone(),
        recorder: std::cell::RefCell::new(Recorder::new()),
        gauges: std::cell::Cell::new([0; State::COUNT]),
        stop: stop.clone(),
    });
    let tracker = TaskTracker::new();
    if let Some(gate) = gate {
        tracker.spawn_local(session::run(ctx.clone(), 0, Some(gate)));
    }
    {
        // Spawns this shard's sessions, spread evenly over the ramp-up.
        let (ctx, tracker_inner, stop) = (ctx.clone(), tracker.clone(), stop.clone());
        tracker.spawn_local(async move {
            tokio::select! {
                _ = go.cancelled() => {}
                _ = stop.cancelled() => return,
            }
            let scenario = &ctx.plan.scenario;
            let n = scenario.sessions;
            let start = Instant::now();
            for id in (shard as u32..n).step_by(shards) {
                if id == 0 {
                    continue; // session 0 connected first, alone
                }
                let offset = scenario.ramp_up.mul_f64(f64::from(id) / f64::from(n));
                if !offset.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(start + offset) => {}
                        _ = stop.cancelled() => return,
                    }
                }
                if stop.is_cancelled() {
                    return;
                }
                tracker_inner.spawn_local(session::run(ctx.clone(), id, None));
                if id % 256 == 0 {
                    // Let sessions already spawned make progress during a big burst.
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let take = |last: bool| Snapshot {
        shard,
        recorder: std::mem::take(&mut *ctx.recorder.borrow_mut()),
        gauges: ctx.gauges.get(),
        last,
    };
    let mut flush = tokio::time::interval(interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.tick().await;
    let mut closing = false;
    loop {
        tokio::select! {
            _ = flush.tick() => {
                if tx.send(take(false)).await.is_err() {
                    stop.cancel();
                }
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                tracker.close();
            }
            _ = tracker.wait(), if closing => break,
        }
    }
    let _ = tx.send(take(true)).await;
}
