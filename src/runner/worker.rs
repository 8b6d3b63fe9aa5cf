//! The worker side of `wsoak run --workers`: a worker process runs its slice of the run's
//! shards and streams their measurements to its parent, one merged Snapshot per interval,
//! as [`wire`](crate::wire) frames on a pipe.
//!
//! It owns the worker's obedience and its stream: `go` and `stop` come from the parent
//! as lines on stdin (and end-of-file means the parent is gone: stop), a signal stops it
//! as it stops a run, and every complete interval goes out in order with the worker's
//! own peak of open sockets and footprint. It must not judge, log or print results: the
//! parent aggregates, and a worker's stdout is the frame stream alone.

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::shard::{self, ShardSet};
use super::{Assembler, Pending, RunError, Signals};
use crate::metrics::Active;
use crate::session::Plan;
use crate::wire::{self, Frame, GateFailure, WorkerInterval};

/// What a worker is told to run, beside the `wsoak run` arguments it parses itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerSpec {
    /// Which worker this is (0-based).
    pub index: usize,
    /// The parent's process id: the worker stops when it is gone.
    pub parent: u32,
    /// The `wsoak run` arguments (after `run`) the parent was given, with the target
    /// resolved (the embedded server's address).
    pub run: Vec<String>,
    /// The run's shards this worker runs.
    pub shards: ShardSet,
    /// The open model's cap for this worker's sessions together.
    pub cap: u32,
    /// When the run's load shape starts (the parent's origin), so that every worker's
    /// intervals and due times count from the same moment.
    pub start: std::time::SystemTime,
    /// Whether that start was given ([`super::Origin::fixed`]).
    #[serde(default)]
    pub fixed_start: bool,
}

/// Runs a worker's shards until they end, writing frames to `out`. Returns once every
/// shard has sent its last Snapshot and the last frame is written.
pub fn work(
    plan: Arc<Plan>,
    spec: &WorkerSpec,
    interval: Duration,
    out: impl std::io::Write + Send + 'static,
) -> Result<(), RunError> {
    let stop = CancellationToken::new();
    let go = CancellationToken::new();
    let (gate_tx, gate_rx) = oneshot::channel();
    let has_gate = spec.shards.first == 0;
    let started = shard::start(shard::Start {
        plan,
        set: spec.shards,
        origin: super::Origin {
            fixed: spec.fixed_start,
            ..super::Origin::at(spec.start)
        },
        interval,
        stop: stop.clone(),
        go: go.clone(),
        cap: spec.cap,
        gate: has_gate.then_some(gate_tx),
    })?;

    // Frames are written by a thread of their own: a slow parent must not stall this
    // runtime (a full queue is waited for asynchronously), and a bounded queue keeps a
    // stalled one from growing memory.
    let (frames, mut queue) = tokio::sync::mpsc::channel::<Frame>(64);
    let writer = std::thread::Builder::new()
        .name("wsoak-worker-out".into())
        .spawn(move || {
            let mut out = std::io::BufWriter::new(out);
            while let Some(frame) = queue.blocking_recv() {
                if wire::write_frame(&mut out, &frame).is_err() || out.flush().is_err() {
                    break; // the parent is gone
                }
            }
        })?;
    let _ = frames.blocking_send(Frame::Hello {
        pid: std::process::id(),
        shards: spec.shards.count as u32,
    });
    listen_to_parent(stop.clone(), go);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let active = started.active.clone();
    runtime.block_on(forward(
        started.rx,
        has_gate.then_some(gate_rx),
        spec.shards.count,
        &active,
        &stop,
        &frames,
    ));
    stop.cancel();
    for thread in started.threads {
        let _ = thread.join();
    }
    drop(frames);
    let _ = writer.join();
    Ok(())
}

/// Obeys the parent's lines on stdin: `go` (the first connect worked), `stop` (close
/// politely). End of file means the parent is gone: stop.
fn listen_to_parent(stop: CancellationToken, go: CancellationToken) {
    let stopping = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("wsoak-worker-in".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line.as_deref().map(str::trim) {
                    Ok("go") => go.cancel(),
                    Ok("stop") => stop.cancel(),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            stop.cancel();
        });
    if spawned.is_err() {
        // Without a way to hear the parent, run to the scenario's end is not an option.
        stopping.cancel();
    }
}

/// Forwards the gate's outcome, then every complete interval, in order, until the
/// shards have all ended.
async fn forward(
    mut rx: tokio::sync::mpsc::Receiver<crate::metrics::Snapshot>,
    gate: Option<oneshot::Receiver<Result<(), crate::session::ConnectFailure>>>,
    shards: usize,
    active: &Active,
    stop: &CancellationToken,
    frames: &tokio::sync::mpsc::Sender<Frame>,
) {
    let mut signals = Signals::new();
    // A full queue waits without blocking this runtime: the parent reads as fast as the
    // intervals come. A closed one means the parent is gone; the frame is dropped.
    let send = |frame: Frame| async move {
        let _ = frames.send(frame).await;
    };
    if let Some(gate) = gate {
        let outcome = tokio::select! {
            r = gate => r.unwrap_or(Ok(())),
            _ = signals.next() => {
                stop.cancel();
                Ok(())
            }
        };
        send(Frame::Gate(outcome.map_err(|f| GateFailure {
            kind: f.kind.name().to_string(),
            detail: f.detail,
        })))
        .await;
    }
    let mut assembler = Assembler::new(shards);
    let interval_frame = |seq: u64, interval: Pending, last: bool| {
        let footprint = crate::report::Footprint::measure();
        Frame::Interval(WorkerInterval {
            seq,
            last,
            gauges: interval.gauges,
            peak_active: active.take_interval_peak(),
            peak_rss_kib: footprint.peak_rss_kib,
            cpu_s: footprint.cpu_s,
            recorder: interval.recorder,
        })
    };
    let mut sent_last = false;
    loop {
        tokio::select! {
            snapshot = rx.recv() => {
                let Some(snapshot) = snapshot else { break };
                assembler.add(&snapshot);
                while let Some((seq, interval)) = assembler.next_complete() {
                    let last = assembler.finished_by(seq);
                    sent_last |= last;
                    send(interval_frame(seq, interval, last)).await;
                }
            }
            _ = signals.next() => stop.cancel(),
        }
    }
    // Every shard has ended; anything still incomplete goes out as it is.
    let assembler_next = assembler.next_seq_after_rest();
    let rest: Vec<(u64, Pending)> = assembler.rest().collect();
    let count = rest.len();
    for (i, (seq, interval)) in rest.into_iter().enumerate() {
        let last = i + 1 == count;
        sent_last |= last;
        send(interval_frame(seq, interval, last)).await;
    }
    if !sent_last {
        // Nothing was left to say, but the parent must hear that this is the end.
        send(interval_frame(assembler_next, Pending::empty(), true)).await;
    }
}
