//! One worker of `wsoak serve --workers`: a process the parent started (`--worker I
//! --parent-pid PID`) that serves the parent's port beside it and reports to it.
//!
//! A worker never outlives its parent: it asks the kernel for SIGTERM when the parent
//! dies, checks the parent had not died already, and stops when its stdin closes (which
//! is also how a living parent says stop). Any of these stops it gracefully; its report
//! then goes nowhere, which is not an error.

use std::io::{BufRead as _, Read as _, Write as _};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use tokio_util::sync::CancellationToken;

use super::wire::{Hello, Report};
use super::EXIT_OK;
use crate::cli::ServeArgs;
use crate::runner;
use crate::server;

/// Longest hello line read: a certificate and key are a few kilobytes.
const MAX_HELLO: u64 = 1 << 20;

/// Serves as worker `index` of the server whose pid is `parent`, until told to stop.
pub(super) fn serve(
    args: &ServeArgs,
    index: u16,
    parent: u32,
    faults: server::Faults,
    limits: server::Limits,
) -> anyhow::Result<u8> {
    let worker = format!("worker {index}");
    die_with(parent).context(worker.clone())?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_HELLO)
        .read_line(&mut line)
        .context(worker.clone())?;
    if line.is_empty() {
        bail!("{worker}: the server that started it closed its pipe before saying hello");
    }
    let hello: Hello = serde_json::from_str(&line).context(worker.clone())?;
    if args.tls != hello.certificate.is_some() {
        bail!("{worker}: --tls, but no certificate from the server that started it (or the other way round)");
    }
    let config = server::ServerConfig {
        faults,
        tls: hello
            .certificate
            .as_ref()
            .map(server::SelfSigned::acceptor)
            .transpose()
            .context(worker.clone())?,
        limits,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .with_context(|| format!("{worker}: cannot start the runtime"))?;
    runtime.block_on(async {
        let listener = server::bind_shared(args.listen)
            .with_context(|| format!("{worker}: cannot listen on {}", args.listen))?;
        let stop = CancellationToken::new();
        {
            let stop = stop.clone();
            // Blocking reads on a thread of their own; the parent writes nothing more, so
            // this returns when the pipe closes: the parent said stop, or died.
            std::thread::Builder::new()
                .name("wsoak-worker-stdin".into())
                .spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    stop.cancel();
                })
                .with_context(|| format!("{worker}: cannot start a thread"))?;
        }
        report(&Report::Listening);
        let stats = Arc::new(server::Stats::default());
        // Signals too: Ctrl-C in a terminal reaches every process of the group, and the
        // parent's death arrives as SIGTERM. Each stops this worker as gracefully as the
        // closed pipe does.
        let shutdown = async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = runner::shutdown_signal() => {}
            }
        };
        server::run(listener, config, stats.clone(), shutdown).await;
        report(&Report::stopped(stats.tally()));
        Ok(EXIT_OK)
    })
}

/// Writes one report line to the parent. A parent that is gone is not an error: there
/// is nobody left to tell.
fn report(report: &Report) {
    let line = serde_json::to_string(report).expect("a report serialises");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Makes the kernel send this process SIGTERM when its parent dies (even by SIGKILL),
/// and fails if the parent has died already, before that could be asked for.
#[cfg(target_os = "linux")]
fn die_with(parent: u32) -> anyhow::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG only sets a field of this process; no memory is passed.
    let set = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    if set != 0 {
        bail!(
            "cannot ask to die with the server that started it: {}",
            std::io::Error::last_os_error()
        );
    }
    parent_alive(parent)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn die_with(parent: u32) -> anyhow::Result<()> {
    parent_alive(parent)
}

#[cfg(not(unix))]
fn die_with(_: u32) -> anyhow::Result<()> {
    bail!("--worker needs unix")
}

/// Fails if the parent is no longer `parent`: it died and this process was adopted.
#[cfg(unix)]
fn parent_alive(parent: u32) -> anyhow::Result<()> {
    // SAFETY: getppid cannot fail and touches no memory.
    let now = unsafe { libc::getppid() };
    if u32::try_from(now).ok() != Some(parent) {
        bail!("the server that started it (pid {parent}) is gone");
    }
    Ok(())
}
