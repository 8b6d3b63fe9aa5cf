//! The parent side of `wsoak run --workers`: starts the worker processes, turns each
//! one's frames into Snapshots for the aggregator (a worker is just another source of
//! Snapshots), tells them `go` and `stop`, and notices when one dies.
//!
//! It owns the workers' lives: their pipes, their exit, and what a death means for the
//! run (the worker's sessions are lost and counted, the run goes on). It must not merge,
//! judge or write anything: the aggregator does that, for workers and threads alike.

use std::io::{BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{aggregate, RunError, RunOptions, RunResult, Source, WorkerSpec};
use crate::metrics::{ErrorKind, Recorder, Snapshot, State, WorkerNews};
use crate::session::{ConnectFailure, Plan};
use crate::wire::{self, Frame};

/// The run's first-connect outcome, sent once, by whichever reader learns it first.
type SharedGate = Arc<Mutex<Option<oneshot::Sender<Result<(), ConnectFailure>>>>>;

/// How long a worker that has sent its last interval (or been told to stop long ago) may
/// take to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Runs the load in worker processes of `exe`, one per spec, and aggregates what they
/// send exactly as this process's own shards would be.
pub fn run_with_workers(
    plan: Arc<Plan>,
    options: RunOptions,
    specs: Vec<WorkerSpec>,
    exe: &Path,
) -> Result<RunResult, RunError> {
    let workers = specs.len();
    let shards = specs.first().map_or(0, |s| s.shards.total);
    let stop = CancellationToken::new();
    let go = CancellationToken::new();
    let (tx, rx) = mpsc::channel::<Snapshot>(workers.max(1) * 4);
    let (gate_tx, gate_rx) = oneshot::channel();
    let gate = Arc::new(Mutex::new(Some(gate_tx)));
    let mut controls: Vec<ChildStdin> = Vec::with_capacity(workers);
    let mut readers = Vec::with_capacity(workers);
    for spec in &specs {
        let (child, stdin) = match start(exe, spec) {
            Ok(started) => started,
            Err(e) => {
                // Those already started hear `stop` (their stdin closes with ours).
                drop(controls);
                return Err(RunError::Start(e));
            }
        };
        controls.push(stdin);
        let (tx, gate) = (tx.clone(), gate.clone());
        let index = spec.index;
        let reader = std::thread::Builder::new()
            .name(format!("wsoak-worker-{index}"))
            .spawn(move || read_worker(index, child, tx, gate))
            .map_err(RunError::Start)?;
        readers.push(reader);
    }
    drop(tx);
    let controller = command_workers(controls, go.clone(), stop.clone());
    let source = Source {
        rx,
        gate: gate_rx,
        count: workers,
        shards,
        workers,
        active: Arc::default(),
    };
    let outcome = aggregate(&plan, options, source, stop.clone(), go);
    stop.cancel();
    if !matches!(&outcome, Ok((_, true))) {
        // Not cut short by a second signal: collect every worker.
        for reader in readers {
            let _ = reader.join();
        }
    }
    // A second signal leaves now: the workers hear their stdin close with this process,
    // and stop (and die with it, by the parent-death signal they asked for).
    let _ = controller.join();
    outcome.map(|(result, _)| result)
}

/// Starts one worker and hands it its spec on the first line of its stdin.
fn start(exe: &Path, spec: &WorkerSpec) -> std::io::Result<(Child, ChildStdin)> {
    let mut child = Command::new(exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut line = serde_json::to_string(spec).map_err(std::io::Error::other)?;
    line.push('\n');
    if let Err(e) = stdin
        .write_all(line.as_bytes())
        .and_then(|()| stdin.flush())
    {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok((child, stdin))
}

/// Tells every worker `go` when the run's first connect has worked, and `stop` when the
/// run ends; on a thread of its own, so that a full pipe never stalls the aggregator.
fn command_workers(
    mut controls: Vec<ChildStdin>,
    go: CancellationToken,
    stop: CancellationToken,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tell = |controls: &mut Vec<ChildStdin>, word: &str| {
            for control in controls.iter_mut() {
                // A worker that is gone cannot hear; its reader reports it.
                let _ = control
                    .write_all(format!("{word}\n").as_bytes())
                    .and_then(|()| control.flush());
            }
        };
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return; // dropping the pipes tells every worker to stop
        };
        runtime.block_on(async {
            tokio::select! {
                _ = go.cancelled() => {}
                _ = stop.cancelled() => {}
            }
            if !stop.is_cancelled() {
                tell(&mut controls, "go");
            }
            stop.cancelled().await;
        });
        tell(&mut controls, "stop");
        // Kept open until every worker has ended: closing would read as a dead parent.
        drop(controls);
    })
}

/// Turns one worker's frames into Snapshots numbered by the worker, until it ends. A
/// worker that ends without its last interval has died: its last Snapshot is made up
/// here, empty, saying so.
fn read_worker(index: usize, mut child: Child, tx: mpsc::Sender<Snapshot>, gate: SharedGate) {
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut news = WorkerNews {
        pid,
        ..WorkerNews::default()
    };
    let mut next_seq = 0;
    let mut ended = false;
    let mut trouble = None;
    let open_gate = |result: Result<(), ConnectFailure>| {
        if let Some(gate) = gate.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = gate.send(result);
        }
    };
    while !ended {
        match wire::read_frame(&mut out) {
            Ok(Some(Frame::Hello { .. })) => {}
            Ok(Some(Frame::Gate(result))) => open_gate(result.map_err(|f| {
                ConnectFailure {
                    kind: ErrorKind::ALL
                        .iter()
                        .copied()
                        .find(|k| k.name() == f.kind)
                        .unwrap_or(ErrorKind::Internal),
                    detail: f.detail,
                }
            })),
            Ok(Some(Frame::Interval(interval))) => {
                news.peak_rss_kib = interval.peak_rss_kib;
                news.cpu_s = interval.cpu_s;
                next_seq = interval.seq + 1;
                ended = interval.last;
                let snapshot = Snapshot {
                    shard: index,
                    recorder: interval.recorder,
                    gauges: interval.gauges,
                    seq: interval.seq,
                    last: interval.last,
                    peak_active: Some(interval.peak_active),
                    worker: Some(news.clone()),
                };
                if tx.blocking_send(snapshot).is_err() {
                    break; // the aggregator is gone: the run is over
                }
            }
            Ok(Some(Frame::Fatal(message))) => {
                note!("wsoak: worker {index}: {message}");
                trouble = Some(message);
            }
            Ok(None) => break,
            Err(e) => {
                trouble = Some(format!("its output could not be read: {e}"));
                break;
            }
        }
    }
    let status = wait_or_kill(&mut child);
    if ended {
        return;
    }
    let cause = match (trouble, status) {
        (Some(message), _) => message,
        (None, Some(status)) => format!("{status}"),
        (None, None) => "it did not exit and was killed".to_string(),
    };
    note!("wsoak: worker {index} (pid {pid}) is gone: {cause}; its sessions are lost");
    open_gate(Err(ConnectFailure {
        kind: ErrorKind::Internal,
        detail: format!("worker {index} (pid {pid}) ended before the first connect: {cause}"),
    }));
    news.lost = Some(cause);
    let _ = tx.blocking_send(Snapshot {
        shard: index,
        recorder: Recorder::new(),
        gauges: [0; State::COUNT],
        seq: next_seq,
        last: true,
        peak_active: Some(0),
        worker: Some(news),
    });
}

/// Waits for a worker to exit, for at most [`EXIT_WAIT`]; then kills it. Killing through
/// the handle, before it is reaped, can never reach another process.
fn wait_or_kill(child: &mut Child) -> Option<std::process::ExitStatus> {
    let until = std::time::Instant::now() + EXIT_WAIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
