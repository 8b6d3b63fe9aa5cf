//! `wsoak worker`, hidden: one worker process of `wsoak run --workers`. It reads its
//! [`WorkerSpec`] from the first line of stdin, loads the scenario and plans its
//! connections as `wsoak run` would, and runs its shards, streaming frames on stdout.
//!
//! Its stdout is the frame stream alone: whatever else would print there goes to stderr.
//! It dies with its parent. It must not write reports or logs: the parent does.

use std::io::BufRead as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;

use super::limits::ensure_open_files;
use super::plan::plan;
use super::EXIT_OK;
use crate::cli::{Cli, Command};
use crate::runner::{self, WorkerSpec};
use crate::scenario::{self, Overrides, Target};
use crate::wire::{self, Frame};

/// `wsoak worker`: runs what the parent sends, until it ends or the parent goes.
pub(crate) fn worker() -> anyhow::Result<u8> {
    // The frames get stdout's descriptor to themselves; fd 1 then points at stderr, so a
    // stray print can never corrupt the stream.
    let frames = take_stdout().context("wsoak worker: cannot set up its output")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("wsoak worker: no spec on stdin")?;
    let spec: WorkerSpec = serde_json::from_str(&line)
        .context("wsoak worker is started by `wsoak run --workers`, not by hand")?;
    die_with_parent(spec.parent);
    match run(&spec, frames.try_clone()?) {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            // Said to the parent, which reports it with the worker's number.
            let mut out = frames;
            let _ = wire::write_frame(&mut out, &Frame::Fatal(format!("{e:#}")));
            Err(e)
        }
    }
}

fn run(spec: &WorkerSpec, frames: std::fs::File) -> anyhow::Result<()> {
    let argv = ["wsoak", "run"]
        .into_iter()
        .map(String::from)
        .chain(spec.run.iter().cloned());
    let cli = Cli::try_parse_from(argv).context("the parent's arguments do not parse")?;
    let Command::Run(args) = cli.command else {
        anyhow::bail!("the parent did not send `run` arguments");
    };
    let overrides = Overrides {
        sessions: args.sessions,
        duration: args.duration,
        target: args.target.clone(),
        thresholds: Vec::new(),
        ramp_up: args.ramp_up,
    };
    let scenario = Arc::new(scenario::load(&args.scenario, &overrides)?);
    let Target::Url(url) = &scenario.target else {
        anyhow::bail!("a worker needs the target's address (the parent resolves `embedded`)");
    };
    // This worker's share of the sessions, one descriptor each, and some to spare.
    let share =
        u64::from(scenario.sessions).div_ceil(spec.shards.total as u64) * spec.shards.count as u64;
    ensure_open_files(share + 64, false)?;
    let plan = Arc::new(plan(&scenario, url, &args)?);
    runner::work(plan, spec, args.interval, frames)?;
    Ok(())
}

/// Moves stdout's descriptor aside for the frames and points fd 1 at stderr.
fn take_stdout() -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd as _;
        // SAFETY: dup and dup2 on descriptors this process owns; the new descriptor is
        // owned by the File from here on.
        unsafe {
            let fd = libc::dup(1);
            if fd < 0 || libc::dup2(2, 1) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(std::fs::File::from_raw_fd(fd))
        }
    }
    #[cfg(not(unix))]
    {
        Err(std::io::Error::other("worker processes need a unix"))
    }
}

/// Asks the kernel to send SIGTERM when the parent dies (Linux), and checks the parent
/// is still the one that started this worker: a worker must never outlive its run.
fn die_with_parent(parent: u32) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    #[cfg(unix)]
    {
        // SAFETY: getppid has no preconditions.
        let now = unsafe { libc::getppid() };
        if now as u32 != parent {
            // The parent died before the signal was asked for.
            std::process::exit(i32::from(super::EXIT_USAGE));
        }
    }
}
