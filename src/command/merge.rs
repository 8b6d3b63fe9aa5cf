//! `wsoak merge`: puts the shards of one run (`wsoak run --shard I/N`) back together
//! into one run directory, judged as one run.
//!
//! It owns reading the shards' directories and deciding whether they make one run: the
//! same shard count, scenario file, start, interval, steps and thresholds, each shard
//! once, none missing. The merging itself is [`report::merge`]'s, and the finishing
//! (verdicts, report.json, report.html, the summary) is `finish`'s, as for any run.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::finish::{self, Finish};
use super::rundir::RunDir;
use crate::cli::MergeArgs;
use crate::report::merge::{Merger, Pairer, ShardInterval};
use crate::report::{self, hlog, Footprint, Merged, Report, RunInfo, ShardIdentity};
use crate::runner::tagged_histograms;

/// One shard's run directory, read.
struct Shard {
    /// As given on the command line.
    given: PathBuf,
    info: RunInfo,
    identity: ShardIdentity,
    /// Its report.json, when it wrote one (a shard killed mid-run did not).
    report: Option<Report>,
}

/// What must be equal for shards to be of one run.
#[derive(Debug, Clone, PartialEq)]
struct RunKey {
    count: u32,
    start_at: String,
    scenario: String,
    scenario_sha256: Option<String>,
    interval_s: f64,
    steps: Vec<String>,
    thresholds: Vec<String>,
}

impl RunKey {
    fn of(shard: &Shard) -> RunKey {
        RunKey {
            count: shard.identity.count,
            start_at: shard.identity.start_at.clone(),
            scenario: shard.info.scenario.clone(),
            scenario_sha256: shard.info.wsoak.scenario_sha256.clone(),
            interval_s: shard.info.interval_s,
            steps: shard.info.steps.clone(),
            thresholds: shard.info.thresholds.clone(),
        }
    }

    /// How `other` differs from this run, for people.
    fn differences(&self, other: &RunKey) -> Vec<String> {
        let mut out = Vec::new();
        if other.count != self.count {
            out.push(format!(
                "it is one of {} shards, not {}",
                other.count, self.count
            ));
        }
        if other.start_at != self.start_at {
            out.push(format!(
                "it started at {}, not {} (give every shard the same --start-at)",
                other.start_at, self.start_at
            ));
        }
        if other.scenario != self.scenario || other.scenario_sha256 != self.scenario_sha256 {
            out.push(format!(
                "it ran another scenario ({} sha256 {}, not {} sha256 {})",
                other.scenario,
                short(&other.scenario_sha256),
                self.scenario,
                short(&self.scenario_sha256)
            ));
        }
        if other.interval_s != self.interval_s {
            out.push(format!(
                "its interval is {} s, not {} s",
                other.interval_s, self.interval_s
            ));
        }
        if other.steps != self.steps {
            out.push(format!(
                "its steps are [{}], not [{}]",
                other.steps.join(", "),
                self.steps.join(", ")
            ));
        }
        if other.thresholds != self.thresholds {
            out.push("its thresholds differ (--threshold given to some shards only?)".into());
        }
        out
    }
}

fn short(hash: &Option<String>) -> String {
    hash.as_deref()
        .map_or("-".into(), |h| h.chars().take(12).collect())
}

/// Reads one shard's run directory.
fn read_shard(given: &Path) -> anyhow::Result<Shard> {
    let dir = RunDir::find(given);
    let info_path = dir.info();
    let text = std::fs::read_to_string(&info_path).with_context(|| {
        format!(
            "{} is not a wsoak run: cannot read {}",
            given.display(),
            info_path.display()
        )
    })?;
    let info: RunInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a wsoak run.json", info_path.display()))?;
    let Some(identity) = info.shard.clone() else {
        bail!(
            "{} is a whole run, not a shard: its run.json names no shard. Only runs made with \
             `wsoak run --shard I/N` (or --shard-count N) merge",
            given.display()
        );
    };
    let report = if dir.report().exists() {
        Some(dir.read_report()?)
    } else {
        None
    };
    Ok(Shard {
        given: given.to_path_buf(),
        info,
        identity,
        report,
    })
}

/// The shards chosen to make the run.
struct Chosen {
    /// By index.
    shards: Vec<Shard>,
    /// What they share.
    key: RunKey,
    /// The indices no chosen shard has.
    missing: Vec<u32>,
    /// The directories given but left out, and why.
    left_out: Vec<String>,
}

/// The shards that make the run, and why the others were left out. Without
/// `allow_partial`, anything left out or missing is an error.
fn choose(shards: Vec<Shard>, allow_partial: bool) -> anyhow::Result<Chosen> {
    // The run is what most of the given directories say (the first, on a tie).
    let keys: Vec<RunKey> = shards.iter().map(RunKey::of).collect();
    let key = keys
        .iter()
        .max_by_key(|k| {
            let votes = keys.iter().filter(|o| o == k).count();
            let first = keys.iter().position(|o| o == *k).unwrap_or(0);
            (votes, std::cmp::Reverse(first))
        })
        .cloned()
        .expect("at least one run directory");
    let mut chosen: Vec<Shard> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for (shard, shard_key) in shards.into_iter().zip(keys) {
        let differences = key.differences(&shard_key);
        if !differences.is_empty() {
            left_out.push(format!(
                "{} is not of this run: {}",
                shard.given.display(),
                differences.join("; ")
            ));
        } else if let Some(twin) = chosen
            .iter()
            .find(|c| c.identity.index == shard.identity.index)
        {
            left_out.push(format!(
                "{} is shard {} again (already given as {}): a retried shard would count its \
                 sessions twice",
                shard.given.display(),
                shard.identity.index,
                twin.given.display()
            ));
        } else {
            chosen.push(shard);
        }
    }
    chosen.sort_by_key(|s| s.identity.index);
    let missing: Vec<u32> = (0..key.count)
        .filter(|i| !chosen.iter().any(|s| s.identity.index == *i))
        .collect();
    if !allow_partial && (!left_out.is_empty() || !missing.is_empty()) {
        let mut problems = left_out.clone();
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(u32::to_string).collect();
            let have: Vec<String> = chosen
                .iter()
                .map(|s| s.identity.index.to_string())
                .collect();
            problems.push(format!(
                "shard{} {} of {} missing (merging shards {}; shards are numbered from 0)",
                if missing.len() == 1 { "" } else { "s" },
                list.join(", "),
                key.count,
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            ));
        }
        bail!(
            "these shards do not make one whole run:\n  - {}\nMerge what there is with \
             --allow-partial: the report then names what is missing",
            problems.join("\n  - ")
        );
    }
    if chosen.is_empty() {
        bail!("no shard to merge:\n  - {}", left_out.join("\n  - "));
    }
    Ok(Chosen {
        shards: chosen,
        key,
        missing,
        left_out,
    })
}

/// A shard's intervals, each with its histograms, read a line at a time as the merge
/// takes them.
struct ShardStream {
    lines: report::IntervalLines,
    pairer: Pairer<hlog::Entries>,
    hlog: PathBuf,
}

impl ShardStream {
    fn open(shard: &Shard) -> anyhow::Result<ShardStream> {
        let dir = RunDir::find(&shard.given);
        Ok(ShardStream {
            lines: report::IntervalLines::open(&dir.intervals()).map_err(anyhow::Error::msg)?,
            pairer: Pairer::new(hlog::Entries::open(&dir.hlog()).map_err(anyhow::Error::msg)?),
            hlog: dir.hlog(),
        })
    }

    /// Says what damage was skipped, once the merge has read all it could.
    fn report_damage(mut self) {
        let skipped_lines = self.lines.skipped();
        let (orphans, entries) = self.pairer.finish();
        for note in skipped_lines.iter().chain(&entries.skipped()) {
            note!("wsoak: damaged log: {note}");
        }
        if orphans > 0 {
            // Histograms of intervals after the last valid line (a damaged end), or of
            // none: they cannot be placed, and are left out, as `wsoak report` does.
            note!(
                "wsoak: damaged log: {}: skipped {orphans} histograms that belong to no \
                 valid interval line",
                self.hlog.display()
            );
        }
    }
}

impl Iterator for ShardStream {
    type Item = Result<ShardInterval, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        Some(
            self.pairer
                .interval(line)
                .map_err(|e| format!("{}: {e}", self.hlog.display())),
        )
    }
}

/// `wsoak merge`: merges the shards, writes the merged run directory, prints the summary
/// and returns the run's exit code.
pub(crate) fn merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let shards = args
        .runs
        .iter()
        .map(|run| read_shard(run))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Chosen {
        shards,
        key,
        missing,
        left_out,
    } = choose(shards, args.allow_partial)?;
    for why in &left_out {
        note!("wsoak: left out: {why}");
    }
    // The chosen shards' thresholds and steps are the key's: any shard's will do.
    let thresholds = shards[0]
        .info
        .parsed_thresholds()
        .map_err(anyhow::Error::msg)?;
    let streams = shards
        .iter()
        .map(ShardStream::open)
        .collect::<anyhow::Result<Vec<_>>>()?;

    let dir = RunDir::new(
        Some(args.out.join("report.json")),
        &key.scenario,
        std::time::UNIX_EPOCH,
    );
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(shard) = shards.iter().find(|s| {
        same(
            &args.out,
            RunDir::find(&s.given)
                .report()
                .parent()
                .unwrap_or(Path::new(".")),
        )
    }) {
        bail!(
            "--out {} is shard {}'s own directory: merging there would overwrite its files. \
             Give another directory",
            args.out.display(),
            shard.identity.index
        );
    }
    let start = crate::cli::parse_start_at(&key.start_at)
        .map_err(|e| anyhow::anyhow!("the shards' run.json start_at: {e}"))?;
    dir.create()?;
    let mut whole = crate::metrics::Recorder::for_steps(
        &key.steps
            .iter()
            .map(|s| s.as_str().into())
            .collect::<Vec<_>>(),
    );
    let mut merger = Merger::new(streams, &key.steps);
    let lines = write_logs(&dir, &mut merger, start, &mut whole)?;
    for stream in merger.into_shards() {
        stream.report_damage();
    }

    let first = &shards[0];
    let sum = |f: fn(&Shard) -> u64| shards.iter().map(f).sum::<u64>();
    let info = RunInfo {
        // The shards' build and scenario, and the command that made this run directory.
        wsoak: report::Identity {
            command: std::env::args().collect(),
            ..first.info.wsoak.clone()
        },
        planned: sum(|s| u64::from(s.info.planned)) as u32,
        shards: sum(|s| s.info.shards as u64) as usize,
        workers: sum(|s| s.info.workers as u64) as usize,
        shard: None,
        ..first.info.clone()
    };
    dir.write_info(&info)?;

    let reports: Vec<(u32, &Report)> = shards
        .iter()
        .filter_map(|s| s.report.as_ref().map(|r| (s.identity.index, r)))
        .collect();
    let elapsed = reports
        .iter()
        .map(|(_, r)| r.duration_s)
        .chain(lines.last().map(|l| l.t))
        .fold(0.0, f64::max);
    let mut lost_workers = Vec::new();
    for (_, r) in &reports {
        lost_workers.extend(r.lost_workers.iter().cloned());
    }
    let versions: std::collections::BTreeSet<&str> = shards
        .iter()
        .map(|s| s.info.wsoak.version.as_str())
        .collect();
    if versions.len() > 1 {
        note!(
            "wsoak: warning: the shards ran different wsoak versions ({}): their numbers may \
             not compare",
            versions.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let meta = report::Meta {
        // The shards' build and scenario, and the command that made this report.
        identity: info.wsoak.clone(),
        scenario: key.scenario.clone(),
        target: first.info.target.clone(),
        planned: info.planned,
        shards: info.shards,
        workers: info.workers,
        lost_workers,
        started_at: start,
        elapsed: Duration::from_secs_f64(elapsed),
        peak_active: report::peak_active(&lines),
        // A shard that wrote no report was killed: the run did not finish.
        interrupted: shards
            .iter()
            .any(|s| s.report.as_ref().is_none_or(|r| r.interrupted)),
        aborted_by: reports.iter().find_map(|(_, r)| r.aborted_by.clone()),
        shard: None,
    };
    // The shards' footprints, summed (a sum of peaks bounds the peak of the sum); unknown
    // when a shard wrote no report.
    let whole_footprint = reports.len() == shards.len();
    let footprint = Footprint {
        peak_rss_kib: reports
            .iter()
            .map(|(_, r)| r.tester.peak_rss_kib)
            .sum::<Option<u64>>()
            .filter(|_| whole_footprint),
        cpu_s: reports
            .iter()
            .map(|(_, r)| r.tester.cpu_s)
            .sum::<Option<f64>>()
            .filter(|_| whole_footprint)
            .map(|s| (s * 1000.0).round() / 1000.0),
    };
    let mut report = Report::build(&whole, &meta, None, footprint);
    for (index, r) in &reports {
        report.internal_errors.extend(
            r.internal_errors
                .iter()
                .map(|e| format!("shard {index}: {e}")),
        );
    }
    report.merged = Some(Merged {
        count: key.count,
        shards: shards.iter().map(|s| s.identity.index).collect(),
        missing,
        left_out,
    });
    let totals: BTreeMap<String, hdrhistogram::Histogram<u64>> =
        tagged_histograms(&whole).into_iter().collect();
    let (report, passed) = Finish {
        dir: &dir,
        thresholds: &thresholds,
        totals: &totals,
        shape: &info.shape,
        exposition: None,
        junit: args.junit.as_deref(),
        format: args.format,
    }
    .complete(report, || Ok(lines))?;
    Ok(finish::exit_code(&report, passed))
}

/// Merges the intervals as they come and writes them to the merged `intervals.jsonl`
/// and `latency.hlog` (the latter starting at the run's shared start), adding each to
/// `whole`. Returns the lines (for the HTML report): one interval's histograms are held
/// at a time, however long the run.
fn write_logs(
    dir: &RunDir,
    intervals: &mut Merger<ShardStream>,
    start: std::time::SystemTime,
    whole: &mut crate::metrics::Recorder,
) -> anyhow::Result<Vec<report::IntervalLine>> {
    let create = |path: &Path| {
        std::fs::File::create(path)
            .map(std::io::BufWriter::new)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    let (intervals_path, hlog_path) = (dir.intervals(), dir.hlog());
    let mut intervals_out = create(&intervals_path)?;
    let mut hlog_out = create(&hlog_path)?;
    let mut lines = Vec::new();
    {
        let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
        let mut log = hlog::begin(&mut hlog_out, &mut serializer, start)
            .with_context(|| format!("cannot write {}", hlog_path.display()))?;
        let mut from = Duration::ZERO;
        for interval in intervals {
            let interval = interval.map_err(anyhow::Error::msg)?;
            whole.merge(&interval.recorder);
            let mut text = serde_json::to_string(&interval.line)?;
            text.push('\n');
            intervals_out
                .write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", intervals_path.display()))?;
            let to = Duration::from_secs_f64(interval.line.t);
            hlog::write(
                &mut log,
                &hlog::Interval {
                    start: from,
                    length: to.saturating_sub(from),
                    histograms: tagged_histograms(&interval.recorder),
                },
            )
            .with_context(|| format!("cannot write {}", hlog_path.display()))?;
            from = to;
            lines.push(interval.line);
        }
    }
    intervals_out
        .flush()
        .with_context(|| format!("cannot write {}", intervals_path.display()))?;
    hlog_out
        .flush()
        .with_context(|| format!("cannot write {}", hlog_path.display()))?;
    Ok(lines)
}
