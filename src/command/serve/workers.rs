//! The parent's side of `wsoak serve --workers N`: it starts N-1 workers (this same
//! program, `--worker I --parent-pid PID`) on the address it bound, waits until each
//! listens, tells them to stop when it stops, and gathers what each saw. Workers are
//! numbered from 2; this process is worker 1.
//!
//! A worker that dies never hangs the parent: the worker's closed stdout says so at once,
//! the parent names it on stderr with its exit status, and the sum goes on without it.
//! Every wait here is bounded, and a worker that does not stop in time is killed.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Hello, Report};
use crate::cli::ServeArgs;
use crate::server::{Limits, SelfSigned, Tally};

/// How long workers get to start listening. A worker binds and says so in milliseconds;
/// this is for a machine loaded with the very connections the workers are for.
const START_WAIT: Duration = Duration::from_secs(20);

/// How long workers get, once told to stop, to close their connections (at most ~2 s
/// each, as `server::run` allows) and report. Then they are killed.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How long a worker whose stdout has closed gets to exit (it is on its way) before it
/// is killed.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The worker processes, from the start until they have stopped and been reaped.
pub(super) struct Workers {
    /// The processes, worker 2 first.
    children: Vec<Child>,
    /// Their stdins, by the same index: closing one tells its worker to stop.
    stdins: Vec<ChildStdin>,
    /// What the workers say, by index, from one reader thread each.
    events: mpsc::UnboundedReceiver<(usize, Event)>,
}

/// One thing a worker's stdout said.
enum Event {
    /// A report line.
    Said(Report),
    /// A line that is not a report (a bug, named on stderr).
    Garbled(String),
    /// The end of its stdout: the worker has exited, or is exiting.
    Closed,
}

/// Tells the workers to stop: drop it, or call [`Stop::stop`].
pub(super) struct Stop {
    /// Closed to say stop.
    stdins: Vec<ChildStdin>,
    /// Cancelled when the workers are told to stop: from then on they have
    /// [`STOP_WAIT`] to report.
    stopping: CancellationToken,
}

impl Stop {
    /// Tells every worker to stop.
    pub fn stop(self) {
        self.stopping.cancel();
        drop(self.stdins);
    }
}

/// Worker `i`'s number for people (index 0 is worker 2).
fn number(i: usize) -> usize {
    i + 2
}

impl Workers {
    /// Starts `args.workers - 1` workers serving `addr` (already bound by this process
    /// with `SO_REUSEPORT`) and returns once each of them listens.
    ///
    /// Must run on the main thread: a worker's `PR_SET_PDEATHSIG` fires when the thread
    /// that started it ends, not the process, so workers started from a runtime thread
    /// that the runtime later retires would be told their parent died.
    pub async fn start(
        args: &ServeArgs,
        addr: SocketAddr,
        certificate: Option<&SelfSigned>,
        limits: Limits,
    ) -> anyhow::Result<Workers> {
        let exe = std::env::current_exe().context("--workers: cannot find this program")?;
        let hello = serde_json::to_string(&Hello {
            certificate: certificate.cloned(),
        })?;
        let (tx, events) = mpsc::unbounded_channel();
        let mut workers = Workers {
            children: Vec::new(),
            stdins: Vec::new(),
            events,
        };
        // On any error below, dropping `workers` kills the ones already started.
        for i in 0..usize::from(args.workers - 1) {
            let n = number(i);
            let argv = worker_argv(args, addr, limits, n, std::process::id());
            let mut child = Command::new(&exe)
                .args(&argv)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("cannot start worker {n}"))?;
            let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                unreachable!("both are piped");
            };
            workers.children.push(child);
            // A worker that failed at once has closed its stdin; its status says why.
            let said = writeln!(stdin, "{hello}").and_then(|()| stdin.flush());
            workers.stdins.push(stdin);
            if said.is_err() {
                let status = workers.reap(i, EXIT_WAIT).await;
                bail!("worker {n} exited with {status} before it could be started");
            }
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("wsoak-worker-{n}"))
                .spawn(move || {
                    // Ends when the worker's stdout closes: when it exits.
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let event = match serde_json::from_str(&line) {
                            Ok(report) => Event::Said(report),
                            Err(_) => Event::Garbled(line),
                        };
                        if tx.send((i, event)).is_err() {
                            return;
                        }
                    }
                    let _ = tx.send((i, Event::Closed));
                })
                .with_context(|| format!("cannot start a thread for worker {n}"))?;
        }
        let deadline = Instant::now() + START_WAIT;
        let mut listening = vec![false; workers.children.len()];
        while let Some(waiting) = listening.iter().position(|l| !l) {
            let Ok(event) = tokio::time::timeout_at(deadline, workers.events.recv()).await else {
                bail!(
                    "worker {} did not listen within {}s",
                    number(waiting),
                    START_WAIT.as_secs()
                );
            };
            // `tx` is still held here, so the channel cannot have closed.
            let Some(event) = event else {
                bail!("the workers' pipes closed")
            };
            match event {
                (i, Event::Said(Report::Listening)) => listening[i] = true,
                (i, Event::Closed) => {
                    let status = workers.reap(i, EXIT_WAIT).await;
                    bail!("worker {} exited with {status} before listening", number(i));
                }
                (i, Event::Said(report)) => {
                    bail!("worker {} said {report:?} before listening", number(i))
                }
                (i, Event::Garbled(line)) => {
                    bail!("worker {} said {line:?} before listening", number(i))
                }
            }
        }
        Ok(workers)
    }

    /// The workers' process ids, worker 2 first.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.children.iter().map(Child::id)
    }

    /// Gathers what the workers report, on a task of its own, and returns what tells them
    /// to stop. The task resolves, once they have stopped (or [`STOP_WAIT`] after being
    /// told to, killing the rest), with each worker's tally, worker 2 first: `None` for
    /// one that died or did not report, which is named on stderr as soon as known.
    pub fn collect(mut self) -> (Stop, JoinHandle<Vec<Option<Tally>>>) {
        let stopping = CancellationToken::new();
        let stop = Stop {
            stdins: std::mem::take(&mut self.stdins),
            stopping: stopping.clone(),
        };
        let collecting = tokio::spawn(async move {
            let count = self.children.len();
            let mut tallies: Vec<Option<Tally>> = vec![None; count];
            let mut closed = vec![false; count];
            let too_late = async {
                stopping.cancelled().await;
                tokio::time::sleep(STOP_WAIT).await;
            };
            tokio::pin!(too_late);
            // Bounded: each worker closes its stdout once, and STOP_WAIT after the stop.
            while closed.iter().any(|c| !c) {
                let event = tokio::select! {
                    event = self.events.recv() => event,
                    _ = &mut too_late => break,
                };
                let Some((i, event)) = event else { break };
                let n = number(i);
                match event {
                    Event::Said(Report::Stopped {
                        stats,
                        heartbeat_holds,
                    }) => match wire::tally(stats, heartbeat_holds) {
                        Ok(tally) => tallies[i] = Some(tally),
                        Err(e) => note!("wsoak serve: worker {n}'s counts are unusable: {e}"),
                    },
                    Event::Said(Report::Listening) => {}
                    Event::Garbled(line) => note!("wsoak serve: worker {n} said {line:?}"),
                    Event::Closed => {
                        closed[i] = true;
                        let status = self.reap(i, EXIT_WAIT).await;
                        if tallies[i].is_none() {
                            note!(
                                "wsoak serve: worker {n} exited with {status} without its \
                                 counts; the exit line sums the others"
                            );
                        }
                    }
                }
            }
            for i in (0..count).filter(|i| !closed[*i]) {
                let status = self.reap(i, Duration::ZERO).await;
                let n = number(i);
                let counts = match tallies[i] {
                    Some(_) => "its counts, reported, are summed",
                    None => "the exit line sums the others",
                };
                note!(
                    "wsoak serve: worker {n} did not stop within {}s; killed ({status}); \
                     {counts}",
                    STOP_WAIT.as_secs()
                );
            }
            tallies
        });
        (stop, collecting)
    }

    /// Waits up to `patience` for worker `i` to exit, then kills it; returns how it
    /// ended.
    async fn reap(&mut self, i: usize, patience: Duration) -> String {
        let child = &mut self.children[i];
        let poll = Duration::from_millis(20);
        for _ in 0..=patience.as_millis() / poll.as_millis() {
            match child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if !patience.is_zero() => tokio::time::sleep(poll).await,
                Ok(None) => break,
                Err(e) => return format!("an unknown status ({e})"),
            }
        }
        let _ = child.kill();
        match child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("an unknown status ({e})"),
        }
    }
}

impl Drop for Workers {
    /// Kills and reaps every worker still running: a start that failed half way leaves
    /// none behind.
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The command line of worker `n`: `serve` with the concrete address this process bound
/// (never port 0), the connection cap it worked out, and every fault and limit flag, so
/// that each process serves alike. Not passed on: `--duration` and `--cert-out` (this
/// process stops the workers and writes the certificate) and `--workers`.
fn worker_argv(
    args: &ServeArgs,
    addr: SocketAddr,
    limits: Limits,
    n: usize,
    parent: u32,
) -> Vec<String> {
    // Destructured so that a flag added to `ServeArgs` does not compile until it is
    // passed on here, or said not to be.
    let ServeArgs {
        listen: _,
        delay,
        drop_ack_every,
        slow_ack_every,
        slow_ack,
        drop_after,
        stall_after,
        reject_auth,
        push_every,
        tls,
        cert_out: _,
        duration: _,
        handshake_timeout,
        idle_timeout,
        max_connections: _,
        workers: _,
        worker: _,
        parent_pid: _,
    } = args;
    // Exact to the nanosecond: a worker must not round what the parent was given.
    let exact = |d: &std::time::Duration| format!("{}ns", d.as_nanos());
    let mut argv: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        addr.to_string(),
        "--worker".into(),
        n.to_string(),
        "--parent-pid".into(),
        parent.to_string(),
        "--max-connections".into(),
        limits.max_connections.to_string(),
        "--handshake-timeout".into(),
        exact(handshake_timeout),
        "--idle-timeout".into(),
        exact(idle_timeout),
        // f64's Display is the shortest text that parses back to the same number.
        "--reject-auth".into(),
        reject_auth.to_string(),
    ];
    for (flag, duration) in [
        ("--delay", delay),
        ("--slow-ack", slow_ack),
        ("--drop-after", drop_after),
        ("--stall-after", stall_after),
        ("--push-every", push_every),
    ] {
        if let Some(d) = duration {
            argv.extend([flag.into(), exact(d)]);
        }
    }
    for (flag, every) in [
        ("--drop-ack-every", drop_ack_every),
        ("--slow-ack-every", slow_ack_every),
    ] {
        if let Some(every) = every {
            argv.extend([flag.into(), every.to_string()]);
        }
    }
    if *tls {
        argv.push("--tls".into());
    }
    argv
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command as Sub};

    fn parse(argv: &[String]) -> ServeArgs {
        let argv = std::iter::once("wsoak").chain(argv.iter().map(String::as_str));
        match Cli::try_parse_from(argv).unwrap().command {
            Sub::Serve(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_worker_is_given_every_fault_and_limit_exactly() {
        let given = parse(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "3",
                "--delay",
                "1500us",
                "--drop-ack-every",
                "7",
                "--slow-ack-every",
                "2",
                "--slow-ack",
                "33ms",
                "--drop-after",
                "1m 7ns",
                "--stall-after",
                "9s",
                "--reject-auth",
                "12.5%",
                "--push-every",
                "250ms",
                "--tls",
                "--cert-out",
                "/tmp/x.pem",
                "--duration",
                "5s",
                "--handshake-timeout",
                "3s",
                "--idle-timeout",
                "0s",
                "--max-connections",
                "999",
            ]
            .map(String::from),
        );
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let limits = Limits {
            handshake_timeout: given.handshake_timeout,
            idle_timeout: None,
            max_connections: 999,
        };
        let worker = parse(&worker_argv(&given, addr, limits, 3, 4242));
        let expected = ServeArgs {
            listen: addr,
            cert_out: None,
            duration: None,
            workers: 1,
            worker: Some(3),
            parent_pid: Some(4242),
            ..given.clone()
        };
        assert_eq!(worker, expected);
        assert_eq!(worker.reject_auth, 0.125);
        assert_eq!(worker.drop_after, Some(Duration::new(60, 7)));
    }

    #[test]
    fn a_worker_of_a_plain_server_is_plain_and_capped_as_its_parent() {
        let given = parse(&["serve", "--workers", "2"].map(String::from));
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let limits = Limits {
            handshake_timeout: given.handshake_timeout,
            idle_timeout: Some(given.idle_timeout),
            max_connections: 19_936,
        };
        let worker = parse(&worker_argv(&given, addr, limits, 2, 1));
        assert_eq!(worker.max_connections, Some(19_936));
        assert_eq!(
            (worker.tls, worker.delay, worker.reject_auth),
            (false, None, 0.0)
        );
        assert_eq!(worker.idle_timeout, given.idle_timeout);
    }

    #[test]
    fn workers_are_internal_and_exclusive() {
        let fails = |argv: &[&str]| {
            let argv = std::iter::once("wsoak").chain(argv.iter().copied());
            Cli::try_parse_from(argv).is_err()
        };
        assert!(fails(&["serve", "--worker", "2"]));
        assert!(fails(&["serve", "--workers", "0"]));
        assert!(fails(&[
            "serve",
            "--workers",
            "2",
            "--worker",
            "2",
            "--parent-pid",
            "1"
        ]));
        assert!(!fails(&["serve", "--worker", "2", "--parent-pid", "1"]));
    }
}
