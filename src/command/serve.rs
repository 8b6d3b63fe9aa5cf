//! `wsoak serve`: the reference server on its own, with fault injection, its timeouts
//! and a connection cap that fits the open-file limit.
//!
//! With `--workers N` it is N processes on one port: this one binds the port with
//! `SO_REUSEPORT`, starts the other N-1 ([`workers`]), each of which binds it too and
//! serves ([`worker`]), and sums what they all saw. [`wire`] is what they say to each
//! other over their pipes.

mod wire;
mod worker;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::limits::raise_open_files_limit;
use super::{EXIT_INTERNAL, EXIT_OK};
use crate::cli::ServeArgs;
use crate::runner;
use crate::server::{self, Tally};
use crate::units;

/// Descriptors `wsoak serve` keeps for itself (listener, runtime, stdio) below its
/// open-file limit when it picks its own connection cap.
const SERVE_RESERVED_FILES: u64 = 64;

/// `wsoak serve`'s timeouts and connection cap, from its flags and the open-file limit.
fn serve_limits(args: &ServeArgs) -> server::Limits {
    let max_connections = args.max_connections.unwrap_or_else(|| {
        raise_open_files_limit().map_or(server::MAX_CONNECTIONS_CEILING as u64, |limit| {
            limit.saturating_sub(SERVE_RESERVED_FILES).max(1)
        })
    });
    server::Limits {
        handshake_timeout: args.handshake_timeout,
        idle_timeout: Some(args.idle_timeout).filter(|d| !d.is_zero()),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
    }
}

/// `wsoak serve`'s faults, checked.
fn serve_faults(args: &ServeArgs) -> anyhow::Result<server::Faults> {
    let faults = server::Faults {
        delay: args.delay,
        drop_ack_every: args.drop_ack_every,
        slow_ack_every: args.slow_ack_every,
        slow_ack: args.slow_ack,
        drop_after: args.drop_after,
        stall_after: args.stall_after,
        reject_auth: args.reject_auth,
        push_every: args.push_every,
    };
    if let Err((key, message)) = faults.validate() {
        bail!("--{}: {message}", key.replace('_', "-"));
    }
    Ok(faults)
}

/// Resolves when `wsoak serve` should stop: after `duration`, if given, or on Ctrl-C,
/// SIGTERM or SIGHUP.
async fn stop_signal(duration: Option<Duration>) {
    match duration {
        Some(d) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = runner::shutdown_signal() => {}
            }
        }
        None => runner::shutdown_signal().await,
    }
}

/// The exit line of a server of several processes: the summed counts, and how many
/// processes they came from.
#[derive(Serialize)]
struct Summed<'a> {
    #[serde(flatten)]
    stats: &'a server::ServerStats,
    /// Processes that served (`--workers`).
    workers: u16,
}

/// `wsoak serve`: the reference server on its own.
pub(crate) fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let faults = serve_faults(args)?;
    if args.handshake_timeout.is_zero() {
        bail!("--handshake-timeout: must be longer than 0s");
    }
    let limits = serve_limits(args);
    if let (Some(index), Some(parent)) = (args.worker, args.parent_pid) {
        return worker::serve(args, index, parent, faults, limits);
    }
    let shared = args.workers > 1;
    if shared && !cfg!(target_os = "linux") {
        bail!("--workers: more than one process needs Linux, whose SO_REUSEPORT spreads connections over them");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    // The future given to `block_on` runs on this thread, the main one: `workers::start`
    // relies on it (see there).
    runtime.block_on(async {
        let listener = if shared {
            server::bind_shared(args.listen)
        } else {
            server::bind(args.listen)
        }
        .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let certificate = args
            .tls
            .then(server::SelfSigned::generate)
            .transpose()
            .context("cannot generate a certificate")?;
        if let (Some(cert), Some(path)) = (&certificate, &args.cert_out) {
            std::fs::write(path, &cert.pem)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let config = server::ServerConfig {
            faults,
            tls: certificate
                .as_ref()
                .map(server::SelfSigned::acceptor)
                .transpose()?,
            limits,
        };
        // Every worker listens before the URL is printed: a client that reads it may
        // connect at once, and may be sent to any of them.
        let workers = if shared {
            Some(workers::Workers::start(args, addr, certificate.as_ref(), limits).await?)
        } else {
            None
        };
        let scheme = if args.tls { "wss" } else { "ws" };
        say!("listening on {scheme}://{addr}/");
        let each = match &workers {
            Some(_) => format!(" in each of {} processes", args.workers),
            None => String::new(),
        };
        eprintln!(
            "limits: handshake {}, idle {}, at most {} connections{each}",
            units::format_duration(limits.handshake_timeout),
            limits
                .idle_timeout
                .map_or("off".into(), units::format_duration),
            limits.max_connections
        );
        if let Some(workers) = &workers {
            let pids: Vec<String> = std::iter::once(std::process::id())
                .chain(workers.pids())
                .map(|pid| pid.to_string())
                .collect();
            eprintln!(
                "workers: {} processes, pids {}",
                args.workers,
                pids.join(" ")
            );
        }
        let _ = std::io::stdout().flush();
        let stats = Arc::new(server::Stats::default());
        let Some(workers) = workers else {
            server::run(listener, config, stats.clone(), stop_signal(args.duration)).await;
            say!("{}", serde_json::to_string(&stats.snapshot())?);
            return Ok(EXIT_OK);
        };
        let (stop, collecting) = workers.collect();
        let shutdown = stopping_workers(stop_signal(args.duration), stop);
        server::run(listener, config, stats.clone(), shutdown).await;
        let tallies = collecting.await.context("the workers' collector failed")?;
        let (sum, connections) = sum_up(stats.tally(), tallies);
        let missing = connections.iter().any(Option::is_none);
        let connections: Vec<String> = connections
            .iter()
            .map(|c| c.map_or("?".into(), |c| c.to_string()))
            .collect();
        eprintln!("workers: connections {}", connections.join(" "));
        let summed = Summed {
            stats: &sum.stats,
            workers: args.workers,
        };
        say!("{}", serde_json::to_string(&summed)?);
        Ok(if missing { EXIT_INTERNAL } else { EXIT_OK })
    })
}

/// This process's tally summed with its workers', and each process's connections, this
/// one first (`None` for a worker that did not report).
fn sum_up(own: Tally, workers: Vec<Option<Tally>>) -> (Tally, Vec<Option<u64>>) {
    let mut connections = vec![Some(own.stats.connections)];
    let mut sum = own;
    for tally in workers {
        connections.push(tally.as_ref().map(|t| t.stats.connections));
        if let Some(tally) = tally {
            sum.merge(tally);
        }
    }
    (sum, connections)
}

/// Resolves with `stop_signal`, having told every worker to stop as well: the workers
/// close their connections while this process closes its own.
async fn stopping_workers(stop_signal: impl Future, stop: workers::Stop) {
    stop_signal.await;
    stop.stop();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_without_counts_is_missing_from_the_sum_and_said_so() {
        let tally = |connections| {
            let mut t = Tally::default();
            t.stats.connections = connections;
            t
        };
        let (sum, each) = sum_up(tally(5), vec![Some(tally(7)), None, Some(tally(1))]);
        assert_eq!(sum.stats.connections, 13);
        assert_eq!(each, [Some(5), Some(7), None, Some(1)]);
    }
}
