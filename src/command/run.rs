//! `wsoak run`: loads a scenario, lays out its run directory, starts the embedded server
//! when the scenario has no target, plans the connections, runs, and finishes the
//! report. The running itself is [`runner::run`]'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::finish::{self, Finish};
use super::limits::ensure_open_files;
use super::plan::plan;
use super::rundir::RunDir;
use crate::cli::{RunArgs, Workers};
use crate::load::Slice;
use crate::progress::Progress;
use crate::report::{self, Footprint, Report};
use crate::runner::{self, Origin, ShardSet, WorkerSpec};
use crate::scenario::{self, Overrides, Target, TargetUrl};
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
    /// A shard of a run (`--shard I/N`) is not the run: its thresholds, judged on its
    /// share alone, do not fail it (a Kubernetes Job would count the pod failed, and
    /// could stop before the merge); `wsoak merge` gives the run's verdict.
    pub fn exit_code(&self) -> u8 {
        finish::exit_code(&self.report, self.passed || self.report.shard.is_some())
    }
}

/// Descriptors a process keeps besides its sessions' sockets: logs, the runtime's own,
/// pipes, and some to spare.
const RESERVED_FILES: u64 = 64;

/// How many worker processes to use: `--workers N` as given, or with `auto` (the
/// default) none while the sessions fit in this process's open-file limit, else as many
/// as their sockets need. With the embedded target this process keeps the server's side
/// of every connection, which must fit here whatever the workers do.
fn workers(
    asked: Option<Workers>,
    sessions: u32,
    embedded: bool,
    metrics_files: u64,
) -> anyhow::Result<usize> {
    let sessions = u64::from(sessions);
    let limit = super::limits::raise_open_files_limit();
    if embedded {
        if let Some(limit) = limit {
            if sessions + RESERVED_FILES + metrics_files > limit {
                bail!(
                    "{sessions} sessions against the embedded server need {sessions} server \
                     connections in this process, which may open {limit} files. Run the \
                     reference server in processes of its own, `wsoak serve --workers N` (it \
                     prints its address), and pass that address as --target"
                );
            }
        }
    }
    let count = match asked {
        Some(Workers::Count(n)) => usize::from(n),
        Some(Workers::Auto) | None => {
            let Some(limit) = limit else { return Ok(0) };
            let here = sessions * (1 + u64::from(embedded)) + RESERVED_FILES + metrics_files;
            if here <= limit {
                0
            } else {
                let room = limit.saturating_sub(RESERVED_FILES).max(1);
                sessions.div_ceil(room) as usize
            }
        }
    };
    Ok(count.min(sessions as usize))
}

/// The `wsoak run` arguments (after `run`) that say what `args` asked for, with `target`
/// for the target. For a worker: only what changes what a session does. For the record
/// (`report.json`'s `wsoak.command`): everything given.
fn run_argv(args: &RunArgs, target: String, for_worker: bool) -> Vec<String> {
    let mut run: Vec<String> = vec![args.scenario.to_string_lossy().into_owned()];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            run.push(format!("--{name}"));
            run.push(value);
        }
    };
    flag("sessions", args.sessions.map(|n| n.to_string()));
    flag("duration", args.duration.map(units::format_duration));
    flag("ramp-up", args.ramp_up.map(units::format_duration));
    let given = args.target.is_some() || for_worker;
    flag("target", given.then_some(target));
    flag(
        "ca",
        args.ca.as_ref().map(|p| p.to_string_lossy().into_owned()),
    );
    flag("interval", Some(units::format_duration(args.interval)));
    flag("grace", Some(units::format_duration(args.grace)));
    flag(
        "source-addrs",
        args.source_addrs.as_ref().map(|s| {
            s.0.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }),
    );
    if !for_worker {
        flag("shards", args.shards.map(|n| n.to_string()));
        flag(
            "workers",
            args.workers.map(|w| match w {
                Workers::Auto => "auto".to_string(),
                Workers::Count(n) => n.to_string(),
            }),
        );
        flag(
            "report",
            args.report
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        );
        flag("metrics-listen", args.metrics_listen.map(|a| a.to_string()));
        flag("shard", args.shard.map(|s| s.label()));
        flag("shard-count", args.shard_count.map(|n| n.to_string()));
        flag("start-at", args.start_at.map(report::format_start));
        flag("start-in", args.start_in.map(units::format_duration));
        flag(
            "junit",
            args.junit
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        );
        for threshold in &args.threshold {
            flag("threshold", Some(threshold.check.clone()));
        }
        if args.quiet {
            run.push("--quiet".into());
        }
    }
    if args.insecure {
        run.push("--insecure".into());
    }
    run
}

/// What produced this run: the wsoak version, the scenario file's SHA-256 and the
/// command line, its target's secrets hidden.
fn identity(args: &RunArgs) -> report::Identity {
    let target = args
        .target
        .as_ref()
        .map(|t| match t {
            Target::Url(url) => url.redacted(),
            Target::Embedded => "embedded".to_string(),
        })
        .unwrap_or_default();
    let mut command = vec!["wsoak".to_string(), "run".to_string()];
    command.extend(run_argv(args, target, false));
    report::Identity {
        version: env!("CARGO_PKG_VERSION").to_string(),
        scenario_sha256: scenario::input::read_capped(
            &args.scenario,
            scenario::input::SCENARIO_MAX_BYTES,
        )
        .ok()
        .map(|bytes| report::sha256_hex(&bytes)),
        command,
    }
}

/// What each worker runs: the same `wsoak run` arguments (the target resolved), its
/// share of the shards, and its share of the open model's cap.
fn worker_specs(
    args: &RunArgs,
    url: &TargetUrl,
    scenario: &scenario::Scenario,
    split: Split,
) -> Vec<WorkerSpec> {
    let Split {
        workers,
        shards,
        slice,
        start,
        fixed_start,
    } = split;
    let run = run_argv(args, url.uri.to_string(), true);
    // Shards are dealt out as evenly as they go; the cap follows the shards, so that a
    // worker admits what its own shards' arrivals need.
    let cap = slice.share(match &scenario.shape {
        crate::load::Shape::Open { max_sessions, .. } => *max_sessions,
        crate::load::Shape::Closed { .. } => scenario.sessions,
    });
    let mut first = 0;
    (0..workers)
        .map(|index| {
            let count = shards / workers + usize::from(index < shards % workers);
            let set = ShardSet {
                first,
                count,
                total: shards,
                slice,
            };
            first += count;
            let share = |n: u32| -> u32 {
                // The shards from `first` to `first + count` of `total`, each with
                // n / total and the first n % total one more.
                let n = u64::from(n);
                let total = shards as u64;
                let lo = set.first as u64;
                let hi = lo + set.count as u64;
                let base = (n / total) * (hi - lo);
                let extra = (n % total).clamp(lo, hi) - lo;
                (base + extra) as u32
            };
            WorkerSpec {
                index,
                parent: std::process::id(),
                run: run.clone(),
                shards: set,
                cap: share(cap),
                start,
                fixed_start,
            }
        })
        .collect()
}

/// How a process's part of the run is split into worker processes and shard threads.
#[derive(Debug, Clone, Copy)]
struct Split {
    /// Worker processes (0: none).
    workers: usize,
    /// Shard threads over all of them.
    shards: usize,
    /// The run's shard this process runs.
    slice: Slice,
    /// When the load starts.
    start: std::time::SystemTime,
    /// Whether that start was given.
    fixed_start: bool,
}

/// Which shard of the run this process is: `--shard I/N`, or `--shard-count N` with I
/// from the `JOB_COMPLETION_INDEX` a Kubernetes Indexed Job sets.
fn slice(args: &RunArgs) -> anyhow::Result<Slice> {
    if let Some(slice) = args.shard {
        return Ok(slice);
    }
    let Some(count) = args.shard_count else {
        return Ok(Slice::WHOLE);
    };
    let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
        anyhow::anyhow!(
            "--shard-count {count}: JOB_COMPLETION_INDEX is not set. A Kubernetes Indexed \
             Job sets it in each pod; elsewhere, give --shard I/{count}"
        )
    })?;
    let parsed = index.trim().parse::<u32>().map_err(|_| {
        anyhow::anyhow!(
            "--shard-count {count}: JOB_COMPLETION_INDEX is `{index}`, not a shard number"
        )
    })?;
    Slice::new(parsed, count).map_err(|e| {
        anyhow::anyhow!("--shard-count {count} with JOB_COMPLETION_INDEX={index}: {e}")
    })
}

/// When the load starts, as asked: `--start-at`, or `--start-in` from now rounded up to
/// a whole second (so that the time printed can be given to other shards as it is).
/// `None`: as soon as the run is set up.
fn asked_start(args: &RunArgs, now: std::time::SystemTime) -> Option<std::time::SystemTime> {
    args.start_at.or_else(|| {
        let at = now + args.start_in?;
        let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
        let whole =
            std::time::Duration::from_secs(since.as_secs() + u64::from(since.subsec_nanos() > 0));
        Some(std::time::UNIX_EPOCH + whole)
    })
}

/// The name every shard of a run goes by (the `run` label of its metrics): the
/// directory name a run of the scenario started then would have,
/// `<scenario>-<start stamp>`, which is where the shards' directories go by default.
fn run_name(scenario: &str, start: std::time::SystemTime) -> String {
    report::default_path(scenario, start)
        .parent()
        .and_then(|d| d.file_name())
        .map_or_else(
            || scenario.to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
}

/// Refuses a start so long ago that the whole run would be over; warns of one merely
/// past (a late pod): its sessions due meanwhile start at once.
fn check_start(at: std::time::SystemTime, duration: std::time::Duration) -> anyhow::Result<()> {
    let Ok(late) = std::time::SystemTime::now().duration_since(at) else {
        return Ok(());
    };
    let shown = report::format_start(at);
    if late >= duration {
        bail!(
            "the run was to start at {shown} and last {}: it is over. Give a start time in \
             the future (--start-at), or none",
            units::format_duration(duration)
        );
    }
    if late > std::time::Duration::from_secs(1) {
        note!(
            "wsoak: warning: starting {} after the start time {shown}: sessions due \
             meanwhile start at once, and are counted as late arrivals",
            units::format_duration(std::time::Duration::from_millis(late.as_millis() as u64))
        );
    }
    Ok(())
}

/// The run's footprint: this process's, plus each worker's as it last said. A sum of
/// peaks is an upper bound of the peak of the sum. This process's peak is the larger of
/// its high-water mark and what its interval lines sampled (`sampled_rss_kib`): Linux
/// updates the mark only at some events.
fn footprint(workers: &[crate::metrics::WorkerNews], sampled_rss_kib: Option<u64>) -> Footprint {
    let mut here = Footprint::measure();
    here.peak_rss_kib = here.peak_rss_kib.max(sampled_rss_kib);
    if workers.is_empty() {
        return here;
    }
    let rss = here.peak_rss_kib.and_then(|mine| {
        workers
            .iter()
            .try_fold(mine, |sum, w| Some(sum + w.peak_rss_kib?))
    });
    let cpu = here
        .cpu_s
        .and_then(|mine| workers.iter().try_fold(mine, |sum, w| Some(sum + w.cpu_s?)))
        .map(|s| (s * 1000.0).round() / 1000.0);
    Footprint {
        peak_rss_kib: rss,
        cpu_s: cpu,
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
    let slice = slice(args)?;
    let now = std::time::SystemTime::now();
    let start = asked_start(args, now);
    if let Some(at) = start {
        check_start(at, scenario.duration)?;
    }
    if !slice.is_whole() && start.is_none() {
        note!(
            "wsoak: warning: shard {} without --start-at: each shard starts when it is \
             launched, and `wsoak merge` will not put shards with different starts together",
            slice.label()
        );
    }
    let planned = slice.share(scenario.sessions);
    let dir = RunDir::new(
        args.report.clone().or_else(|| {
            // The shards of one run, side by side: reports/<scenario>-<start>/shard-<I>/.
            (!slice.is_whole()).then(|| {
                let run = report::default_path(&scenario.name, start.unwrap_or(now));
                run.with_file_name(format!("shard-{}", slice.index))
                    .join("report.json")
            })
        }),
        &scenario.name,
        now,
    );
    dir.create()?;
    if let Some(dir) = args.junit.as_deref().and_then(Path::parent) {
        // Before the run, not after an hour of it: a --junit path that cannot be written
        // is a usage error, found while it costs nothing.
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("--junit: cannot create the directory {}", dir.display())
            })?;
        }
    }
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
    // The metrics listener and the scrapes it serves at once.
    let metrics_files = match args.metrics_listen {
        Some(_) => 1 + report::prometheus::MAX_CONNECTIONS as u64,
        None => 0,
    };
    let workers = workers(args.workers, planned, embedded.is_some(), metrics_files)?;
    // This process holds the embedded server's sockets, and the sessions' own unless
    // workers hold them.
    let per_session_files = u64::from(embedded.is_some()) + u64::from(workers == 0);
    ensure_open_files(
        u64::from(planned) * per_session_files + RESERVED_FILES + metrics_files,
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
    let processes = workers.max(1);
    let per_process = args
        .shards
        .map(usize::from)
        .unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores.div_ceil(processes)
        })
        .max(1);
    let shards = (per_process * processes).min(planned as usize).max(1);
    let identity = identity(args);
    // The moment the load shape, and every interval, counts from.
    let origin = match start {
        Some(at) => Origin::at(at),
        None => Origin::now(),
    };
    let shard = (!slice.is_whole()).then(|| report::ShardIdentity {
        index: slice.index,
        count: slice.count,
        start_at: report::format_start(origin.wall),
    });
    let info = report::RunInfo {
        schema: "wsoak.run/1".into(),
        wsoak: identity.clone(),
        scenario: scenario.name.clone(),
        target: shown_target.clone(),
        shape: scenario.shape.describe(),
        planned,
        shards,
        interval_s: args.interval.as_secs_f64(),
        duration_s: scenario.duration.as_secs_f64(),
        started_at: humantime::format_rfc3339_seconds(origin.wall).to_string(),
        thresholds: scenario
            .thresholds
            .iter()
            .map(|t| t.check.clone())
            .collect(),
        steps: scenario.steps.iter().map(|s| s.name.to_string()).collect(),
        workers,
        shard: shard.clone(),
    };
    dir.write_info(&info)?;
    if let Some(ahead) = start.and_then(|at| at.duration_since(std::time::SystemTime::now()).ok()) {
        note!(
            "start       {} (in {}){}",
            report::format_start(origin.wall),
            units::format_duration(std::time::Duration::from_millis(ahead.as_millis() as u64)),
            if slice.is_whole() {
                String::new()
            } else {
                format!(", shard {}", slice.label())
            }
        );
    }
    if !origin.wait()? {
        bail!("interrupted before the start: nothing ran");
    }
    let options = runner::RunOptions {
        shards,
        interval: args.interval,
        progress: Progress::detect(args.quiet),
        logs: Some(runner::Logs { intervals, hlog }),
        target: shown_target,
        grace: args.grace,
        metrics,
        origin,
        slice,
        labels: report::prometheus::Labels {
            // One name for every shard of a run, so that their series add up.
            run: if slice.is_whole() {
                dir.name()
            } else {
                run_name(&scenario.name, origin.wall)
            },
            scenario: scenario.name.clone(),
            shard: slice.index.to_string(),
        },
    };
    let result = if workers == 0 {
        runner::run(plan, options)?
    } else {
        let split = Split {
            workers,
            shards,
            slice,
            start: origin.wall,
            fixed_start: origin.fixed,
        };
        let specs = worker_specs(args, &url, &scenario, split);
        let exe = std::env::var_os("WSOAK_WORKER_EXE")
            .map(std::path::PathBuf::from)
            .map_or_else(std::env::current_exe, Ok)
            .context("cannot find the wsoak binary to start workers")?;
        runner::run_with_workers(plan, options, specs, &exe)?
    };
    if result.lost_intervals > 0 {
        note!(
            "wsoak: warning: {} interval lines could not be written to {}",
            result.lost_intervals,
            intervals_path.display()
        );
    }
    let server_stats = embedded.map(server::Embedded::stop);
    let meta = report::Meta {
        identity,
        shard,
        ..result.meta
    };
    let report = Report::build(
        &result.total,
        &meta,
        server_stats,
        footprint(&result.workers, result.sampled_rss_kib),
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
        junit: args.junit.as_deref(),
        format: crate::cli::Format::Text,
    }
    .complete(report, || {
        report::read_intervals(&intervals_path).map_err(anyhow::Error::msg)
    })?;
    say!(
        "intervals   {}  (latency log {})",
        intervals_path.display(),
        hlog_path.display()
    );
    if let Some(shard) = &report.shard {
        if !report.thresholds.is_empty() {
            note!(
                "wsoak: shard {}/{}: the thresholds above judge this shard's share alone and do \
                 not set its exit code; `wsoak merge` judges the whole run",
                shard.index,
                shard.count
            );
        }
    }
    Ok(RunOutput {
        report,
        path: dir.report().to_path_buf(),
        intervals: intervals_path,
        passed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards and the open model's cap are split exactly: the shares add up to the
    /// whole, every shard belongs to one worker, and a worker's cap is its shards'.
    #[test]
    fn workers_share_shards_and_the_cap_exactly() {
        let yaml = "load:\n  arrival: {rate: 10, max_sessions: 1003}\nduration: 10s\n\
                    heartbeat:\n  send: {type: heartBeat}\n";
        let scenario =
            scenario::parse(yaml, std::path::Path::new("t.yaml"), &Overrides::default()).unwrap();
        let args = match <crate::cli::Cli as clap::Parser>::parse_from(["wsoak", "run", "t.yaml"])
            .command
        {
            crate::cli::Command::Run(args) => args,
            _ => unreachable!(),
        };
        let Ok(Target::Url(url)) = Target::parse("ws://127.0.0.1:9/") else {
            panic!("a valid target")
        };
        for (workers, shards) in [(1, 1), (2, 2), (3, 7), (4, 4), (6, 6)] {
            let split = Split {
                workers,
                shards,
                slice: Slice::WHOLE,
                start: std::time::UNIX_EPOCH,
                fixed_start: false,
            };
            let specs = worker_specs(&args, &url, &scenario, split);
            assert_eq!(specs.len(), workers);
            let mut next = 0;
            for spec in &specs {
                assert_eq!(spec.shards.first, next);
                assert_eq!(spec.shards.total, shards);
                next += spec.shards.count;
            }
            assert_eq!(next, shards);
            let caps: u32 = specs.iter().map(|s| s.cap).sum();
            assert_eq!(caps, 1003, "{workers} workers, {shards} shards");
            assert!(specs[0].run.contains(&"ws://127.0.0.1:9/".to_string()));
        }
    }

    #[test]
    fn auto_uses_workers_only_when_the_sessions_do_not_fit() {
        let limit = crate::command::limits::raise_open_files_limit().unwrap();
        assert_eq!(workers(None, 100, false, 0).unwrap(), 0);
        assert_eq!(workers(Some(Workers::Count(3)), 100, false, 0).unwrap(), 3);
        assert_eq!(workers(Some(Workers::Count(0)), 100, false, 0).unwrap(), 0);
        // One more session than fits in this process: two workers, whatever the limit.
        let too_many = (limit - RESERVED_FILES + 1) as u32;
        assert_eq!(workers(None, too_many, false, 0).unwrap(), 2);
        // With the embedded server, this process keeps one descriptor per session.
        let e = workers(None, too_many, true, 0).unwrap_err().to_string();
        assert!(e.contains("wsoak serve --workers"), "{e}");
        // Half of that fits here once the sessions' own sockets are in a worker.
        assert_eq!(workers(None, too_many / 2 + 10, true, 0).unwrap(), 1);
    }
}
