//! `wsoak run`: loads a scenario, lays out its run directory, starts the embedded server
//! when the scenario has no target, plans the connections, runs, and finishes the
//! report. The running itself is [`runner::run`]'s.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::finish::{self, Finish};
use super::limits::ensure_open_files;
use super::plan::plan;
use super::rundir::RunDir;
use crate::cli::RunArgs;
use crate::progress::Progress;
use crate::report::{self, Footprint, Report};
use crate::runner;
use crate::scenario::{self, Overrides, Target};
use crate::server;
use crate::units;

/// What `wsoak run` produced.
#[derive(Debug)]
pub struct RunOutput {
    /// The report, as written.
    pub report: Report,
    /// Where it was written.
    pub path: PathBuf,
    /// Where the interval log was written.
    pub intervals: PathBuf,
    /// True when every threshold passed (or there were none).
    pub passed: bool,
}

impl RunOutput {
    /// The process exit code this run earns: an internal error outranks the thresholds.
    pub fn exit_code(&self) -> u8 {
        finish::exit_code(&self.report, self.passed)
    }
}

/// `wsoak run`: loads the scenario, runs it, writes the report and prints the summary.
pub fn run_scenario(args: &RunArgs) -> anyhow::Result<RunOutput> {
    let overrides = Overrides {
        sessions: args.sessions,
        duration: args.duration,
        target: args.target.clone(),
        thresholds: args.threshold.clone(),
        ramp_up: args.ramp_up,
    };
    let scenario = Arc::new(scenario::load(&args.scenario, &overrides)?);
    let shape_end = scenario.shape.stages_end();
    if shape_end > scenario.duration {
        note!(
            "wsoak: warning: the load shape lasts {} but the run ends after {}: starts due \
             after the end will not happen",
            units::format_duration(shape_end),
            units::format_duration(scenario.duration)
        );
    }
    let dir = RunDir::new(
        args.report.clone(),
        &scenario.name,
        std::time::SystemTime::now(),
    );
    dir.create()?;
    let intervals_path = dir.intervals();
    let intervals = std::fs::File::create(&intervals_path)
        .with_context(|| format!("cannot create {}", intervals_path.display()))?;
    let hlog_path = dir.hlog();
    let hlog = std::fs::File::create(&hlog_path)
        .with_context(|| format!("cannot create {}", hlog_path.display()))?;

    let embedded = match &scenario.target {
        Target::Embedded => Some(
            server::Embedded::start(([127, 0, 0, 1], 0).into(), scenario.server.clone(), false)
                .context("cannot start the embedded reference server")?,
        ),
        Target::Url(_) => None,
    };
    let url = match (&scenario.target, &embedded) {
        (Target::Url(url), _) => url.clone(),
        (Target::Embedded, Some(server)) => match Target::parse(&server.url()) {
            Ok(Target::Url(url)) => url,
            _ => bail!("the embedded server's URL {} did not parse", server.url()),
        },
        (Target::Embedded, None) => unreachable!("embedded target always starts a server"),
    };
    let shown_target = match &embedded {
        Some(server) => format!("embedded ({})", server.url()),
        None => url.redacted(),
    };
    let per_session_files = if embedded.is_some() { 2 } else { 1 };
    // The metrics listener and the scrapes it serves at once.
    let metrics_files = match args.metrics_listen {
        Some(_) => 1 + report::prometheus::MAX_CONNECTIONS as u64,
        None => 0,
    };
    ensure_open_files(
        u64::from(scenario.sessions) * per_session_files + 64 + metrics_files,
        embedded.is_some(),
    )?;

    let metrics = match args.metrics_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
            listener.set_nonblocking(true)?;
            note!("metrics     http://{}/metrics", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    let plan = Arc::new(plan(&scenario, &url, args)?);
    let shards = args
        .shards
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(scenario.sessions as usize)
        .max(1);
    let info = report::RunInfo {
        schema: "wsoak.run/1".into(),
        scenario: scenario.name.clone(),
        target: shown_target.clone(),
        shape: scenario.shape.describe(),
        planned: scenario.sessions,
        shards,
        interval_s: args.interval.as_secs_f64(),
        duration_s: scenario.duration.as_secs_f64(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        thresholds: scenario
            .thresholds
            .iter()
            .map(|t| t.check.clone())
            .collect(),
        steps: scenario.steps.iter().map(|s| s.name.to_string()).collect(),
    };
    dir.write_info(&info)?;
    let result = runner::run(
        plan,
        runner::RunOptions {
            shards,
            interval: args.interval,
            progress: Progress::detect(args.quiet),
            logs: Some(runner::Logs { intervals, hlog }),
            target: shown_target,
            grace: args.grace,
            metrics,
        },
    )?;
    if result.lost_intervals > 0 {
        note!(
            "wsoak: warning: {} interval lines could not be written to {}",
            result.lost_intervals,
            intervals_path.display()
        );
    }
    let server_stats = embedded.map(server::Embedded::stop);
    let report = Report::build(
        &result.total,
        &result.meta,
        server_stats,
        Footprint::measure(),
    );
    let totals = runner::tagged_histograms(&result.total)
        .into_iter()
        .collect();
    let (report, passed) = Finish {
        dir: &dir,
        thresholds: &scenario.thresholds,
        totals: &totals,
        shape: &info.shape,
        exposition: result.exposition.as_deref(),
    }
    .complete(report, || {
        report::read_intervals(&intervals_path).map_err(anyhow::Error::msg)
    })?;
    say!(
        "intervals   {}  (latency log {})",
        intervals_path.display(),
        hlog_path.display()
    );
    Ok(RunOutput {
        report,
        path: dir.report().to_path_buf(),
        intervals: intervals_path,
        passed,
    })
}
