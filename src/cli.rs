//! The command line: clap derive types only. Parsing never does anything; `lib.rs`
//! validates and executes.

// Doc comments here are `--help` text, where `<scenario>` means a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::scenario::Target;
use crate::source::Sources;
use crate::threshold::Threshold;
use crate::units::{parse_duration, parse_fraction};

/// Parses `--target` like `Target::parse`, but never quotes the raw value back (clap's
/// own message would): a target URL may carry a password.
#[derive(Debug, Clone, Copy)]
pub struct TargetParser;

impl clap::builder::TypedValueParser for TargetParser {
    type Value = Target;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Target, clap::Error> {
        use clap::error::ErrorKind;
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::raw(ErrorKind::InvalidUtf8, "--target: not UTF-8\n"))?;
        Target::parse(text)
            .map_err(|m| clap::Error::raw(ErrorKind::ValueValidation, format!("--target: {m}\n")))
    }
}

/// WebSocket load and soak tester for mini-program style clients.
///
/// wsoak simulates thousands of WeChat mini-program pages, each connecting over ws:// or
/// wss://, authenticating, binding a member card and heartbeating, and reconnecting when
/// heartbeats fail. It records latency histograms (measured from the schedule, so a slow
/// server cannot hide) and reconnects by cause.
///
/// With no target (or `target: embedded`) it starts its own reference server on loopback,
/// so `wsoak run scenarios/miniprogram.yaml` works on a fresh machine.
#[derive(Debug, Parser)]
#[command(name = "wsoak", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write its report.
    ///
    /// Writes reports/<scenario>-<UTC time>/: report.json, report.html, intervals.jsonl
    /// (one JSON line per interval, flushed as it goes), latency.hlog and run.json.
    /// Ctrl-C, SIGTERM or SIGHUP stops gracefully and still writes the report; a second
    /// one stops at once. A closed stdout or stderr never costs the report.
    ///
    /// Exit codes: 0 the run completed and every threshold passed; 1 a threshold failed;
    /// 2 a usage or scenario error, or the target could not be reached at start; 3 wsoak
    /// itself failed during the run (errors.internal): the report is written but not to
    /// be trusted.
    #[command(after_help = "Examples:\n  \
        wsoak run scenarios/miniprogram.yaml\n  \
        wsoak run scenarios/miniprogram.yaml --sessions 5000 --duration 2m\n  \
        wsoak run scenarios/miniprogram.yaml --target wss://127.0.0.1:8443/ws --ca ca.pem\n  \
        wsoak run scenarios/miniprogram.yaml --target ws://127.0.0.1:8080/ \\\n      \
        --source-addrs 127.0.0.1-127.0.0.4\n  \
        wsoak run scenarios/miniprogram.yaml --threshold 'heartbeat.p99 < 200ms' --junit junit.xml\n  \
        wsoak run scenarios/miniprogram.yaml --shard 0/3 --start-at 2026-11-29T15:00:00Z  # one of 3 machines")]
    Run(RunArgs),
    /// A worker process of `wsoak run --workers`: started by `wsoak run`, never by hand.
    /// Reads what to run from stdin and streams its measurements to stdout.
    #[command(hide = true)]
    Worker,
    /// Validate a scenario (and its data file) without running it; run each script hook
    /// once against sample data.
    Check(CheckArgs),
    /// Run the reference server on its own, with optional fault injection.
    ///
    /// Prints `listening on ws://ADDR` once bound. On exit (Ctrl-C, SIGTERM, SIGHUP or
    /// --duration) prints one JSON line with what it saw.
    ///
    /// With --workers N, N processes serve the one port: `listening on` is printed once
    /// every one of them listens, and the exit line sums them all. Exit code 3: a worker
    /// died or did not report, so the sum lacks its counts (stderr names it).
    #[command(after_help = "Examples:\n  \
        wsoak serve --listen 127.0.0.1:8080\n  \
        wsoak serve --drop-after 30s --reject-auth 5%\n  \
        wsoak serve --slow-ack-every 1 --slow-ack 50ms     # every heartbeat ack 50 ms late\n  \
        wsoak serve --drop-ack-every 10                    # no ack for every 10th heartbeat\n  \
        wsoak serve --tls --cert-out /tmp/wsoak-ca.pem\n  \
        wsoak serve --listen 127.0.0.1:8080 --workers 6      # 100,000 connections, 20,000 files a process")]
    Serve(ServeArgs),
    /// Re-render a run's summary and report.html from its saved files.
    ///
    /// RUN is a run directory (reports/<scenario>-<time>/) or a report path given to
    /// `--report`. When report.json is missing (the run crashed or was killed), it is
    /// rebuilt, exactly up to the last interval written, from run.json, intervals.jsonl
    /// and latency.hlog, and written. Damaged logs (a line cut short, a corrupt entry)
    /// are read up to their first damage, and what was skipped is said. Exit 1 when a
    /// threshold fails, 2 when there is nothing to rebuild, 3 for a run with internal
    /// errors.
    #[command(after_help = "Examples:\n  \
        wsoak report reports/nightly-20261125T020000Z\n  \
        wsoak report reports/nightly-20261125T020000Z --junit junit.xml\n  \
        wsoak report reports/nightly-20261125T020000Z --format json")]
    Report(ReportArgs),
    /// Compare two runs, metric by metric; exit 1 on a regression beyond tolerance.
    ///
    /// Compares latency percentiles (p50, p90, p99, max per step, and script
    /// latencies), the heartbeat ack rate, and failures per heartbeat sent (reconnects,
    /// errors, failed heartbeats). A latency regression must exceed both the tolerance
    /// and --latency-floor, so that sub-millisecond noise on loopback is not a
    /// regression.
    #[command(after_help = "Examples:\n  \
        wsoak compare reports/nightly-20261124T020000Z reports/nightly-20261125T020000Z\n  \
        wsoak compare base/report.json new/report.json --tolerance 5% --tolerance-for heartbeat.p99=20%\n  \
        wsoak compare baseline/ reports/latest --junit compare.xml\n  \
        wsoak compare baseline/ reports/latest --format json")]
    Compare(CompareArgs),
    /// Merge the shards of one run (`wsoak run --shard I/N`) into one run directory.
    ///
    /// Writes report.json, report.html, intervals.jsonl, latency.hlog and run.json into
    /// --out, as one run would have. Counters are summed; latency histograms are merged
    /// from the shards' latency logs, interval by interval (percentiles are never
    /// averaged); the thresholds are judged on the merged data, so the exit code is the
    /// whole run's verdict: 0 every threshold passed, 1 one failed, 2 the shards do not
    /// make one run (a shard missing, another scenario, another start time or shard
    /// count), 3 a shard had internal errors.
    ///
    /// With --allow-partial, shards that are missing, or that belong to another run,
    /// are left out and named in the report (`merged.missing`), and the rest are merged.
    #[command(after_help = "Examples:\n  \
        wsoak merge reports/nightly-20261129T150000Z/shard-* --out reports/nightly-20261129T150000Z/merged\n  \
        wsoak merge shard-0 shard-1 shard-2 --out merged --junit junit.xml\n  \
        wsoak merge shard-0 shard-2 --out merged --allow-partial")]
    Merge(MergeArgs),
    /// Print a shell completion script, for packagers and for your shell's startup file.
    #[command(after_help = "Examples:\n  \
        wsoak completions bash > /etc/bash_completion.d/wsoak\n  \
        wsoak completions zsh > \"${fpath[1]}/_wsoak\"\n  \
        wsoak completions fish > ~/.config/fish/completions/wsoak.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), for packagers: `wsoak man > wsoak.1`.
    #[command(after_help = "Examples:\n  \
        wsoak man > /usr/share/man/man1/wsoak.1\n  \
        wsoak man | man -l -")]
    Man,
    /// Print a JSON Schema: of scenario files, for editors (completion, hover help and
    /// validation while writing a scenario), or of report.json, for programs that read
    /// reports.
    ///
    /// The scenario schema is generated from the same types that read scenario files, so
    /// it is never out of step with them; schema/scenario.schema.json in the repository
    /// is a copy of it. Point an editor at it with a first line of
    /// `# yaml-language-server: $schema=PATH` in the scenario (README, "Editor support").
    #[command(after_help = "Examples:\n  \
        wsoak schema scenario > schema/scenario.schema.json\n  \
        wsoak schema report > report.schema.json\n  \
        wsoak schema scenario | jq '.properties | keys'")]
    Schema {
        /// Which schema.
        #[arg(value_enum)]
        of: SchemaKind,
    },
}

/// What `wsoak schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// Scenario files (YAML, and the map a .rhai scenario's `scenario()` returns).
    Scenario,
    /// The report.json that `wsoak run` writes.
    Report,
}

/// What `wsoak report` and `wsoak compare` print on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// For people: the summary, or the comparison table.
    #[default]
    Text,
    /// For programs: JSON, and nothing else, on stdout (notes stay on stderr).
    Json,
}

/// `wsoak merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' run directories (or report paths given to `--report`), one per shard.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// The directory to write the merged run into (created if need be).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Merge what there is: leave out missing shards and shards of another run, and name
    /// them in the report, instead of failing.
    #[arg(long)]
    pub allow_partial: bool,
    /// Also write the verdicts as JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `wsoak report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory, or the path of its report.json.
    pub run: PathBuf,
    /// Also write the threshold verdicts as JUnit XML here, for a CI server's test
    /// results (as `wsoak run --junit` does).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// `json` prints the finished report (report.json's content, thresholds judged)
    /// instead of the summary; where the files are goes to stderr. The exit code is the
    /// same as with the summary.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `wsoak compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline run: a run directory or a report.json.
    pub baseline: PathBuf,
    /// The run to judge: a run directory or a report.json.
    pub current: PathBuf,
    /// Allowed worsening, relative to the baseline, e.g. 10% or 0.1.
    #[arg(long, value_parser = parse_fraction_unbounded, default_value = "10%")]
    pub tolerance: f64,
    /// A tolerance for one metric, e.g. heartbeat.p99=25%; repeatable.
    #[arg(long, value_name = "METRIC=TOLERANCE", value_parser = parse_override)]
    pub tolerance_for: Vec<(String, f64)>,
    /// Latency changes smaller than this are never regressions.
    #[arg(long, value_parser = parse_duration, default_value = "1ms")]
    pub latency_floor: Duration,
    /// Also write the comparison as JUnit XML here: a test case per judged metric
    /// (classname wsoak.compare), failed when it regressed, for a CI server's test
    /// results.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// `json` prints {"baseline", "current", "regressions", "rows": [{"metric",
    /// "baseline", "current", "delta", "judged", "regression"}]} instead of the table;
    /// delta is relative (0.25: 25% above the baseline). The exit code is the same as
    /// with the table.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A tolerance may exceed 100%.
fn parse_fraction_unbounded(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = crate::units::parse_ratio(text)
        .map_err(|_| format!("`{text}` is not a tolerance: write e.g. 10% or 0.1"))?;
    if value < 0.0 {
        return Err(format!("`{text}` must be 0 or more"));
    }
    Ok(value)
}

fn parse_override(text: &str) -> Result<(String, f64), String> {
    let (metric, tolerance) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write METRIC=TOLERANCE, e.g. heartbeat.p99=20%"))?;
    Ok((
        metric.trim().to_string(),
        parse_fraction_unbounded(tolerance)?,
    ))
}

/// A listen address: `HOST:PORT`, or `:PORT` for every interface (the exporters' form).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse().map_err(|_| {
        format!("`{text}` is not a listen address: write HOST:PORT (127.0.0.1:9464) or :PORT")
    })
}

/// How many worker processes `wsoak run` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// As many as the sessions need: none when they fit in one process.
    Auto,
    /// Exactly this many (0: none, every session in this process).
    Count(u16),
}

fn parse_workers(text: &str) -> Result<Workers, String> {
    if text == "auto" {
        return Ok(Workers::Auto);
    }
    match text.parse::<u16>() {
        Ok(n) if n <= 256 => Ok(Workers::Count(n)),
        _ => Err(format!(
            "`{text}` is not a number of workers: use 0 to 256, or `auto`"
        )),
    }
}

/// `wsoak run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file: YAML, or a .rhai script whose scenario() returns the settings.
    pub scenario: PathBuf,
    /// Number of concurrent sessions (overrides `sessions:`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub sessions: Option<u32>,
    /// How long to run, e.g. 30s, 5m, 2h (overrides `duration:`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Spread the sessions' first connects over this long (overrides `ramp_up:`).
    #[arg(long, value_parser = parse_duration)]
    pub ramp_up: Option<Duration>,
    /// ws:// or wss:// URL, or `embedded` (overrides `target:`).
    #[arg(long, value_parser = TargetParser)]
    pub target: Option<Target>,
    /// Write the JSON report here instead of reports/<scenario>-<UTC time>/report.json.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Trust the certificates in this PEM file (for test CAs) in addition to the web PKI.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Do not verify the server's TLS certificate. For test rigs only.
    #[arg(long)]
    pub insecure: bool,
    /// Threads running sessions, per process [default: the cores shared out over the
    /// processes, at least one each].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub shards: Option<u16>,
    /// Run the sessions in N worker processes (the same binary) instead of this one, or
    /// `auto` (the default): workers only when the sessions would not fit in one process's
    /// open-file limit. This process then only aggregates (and runs the embedded server,
    /// if the target is embedded). Session ids, card rows and heartbeat phases are the
    /// same whatever the number of workers, and so is the report. A worker that dies is
    /// reported with the sessions it held (`lost_workers`, `sessions.lost`); the run goes
    /// on. `--workers 0` keeps every session in this process.
    #[arg(long, value_name = "N|auto", value_parser = parse_workers)]
    pub workers: Option<Workers>,
    /// How often shards report and the live view refreshes.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// No live view (the summary is still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// A pass/fail check, added to the scenario's; repeatable. A failing threshold makes
    /// the exit code 1. E.g. 'heartbeat.p99 < 200ms', 'sessions.bound / sessions.started
    /// >= 99.9%', 'reconnects.total < 10', 'errors.rate < 0.1%'.
    #[arg(long, value_name = "CHECK", value_parser = Threshold::parse)]
    pub threshold: Vec<Threshold>,
    /// Also write the verdicts as JUnit XML here, for a CI server's test results: a test
    /// case per threshold (classname wsoak.thresholds), and one named `run` (classname
    /// wsoak.run) that fails when the run was interrupted, ended by an abort_on_fail
    /// threshold, or had internal errors.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Serve live metrics in the Prometheus text format at http://ADDR/metrics during the
    /// run (e.g. 127.0.0.1:9464, or :9464 for every interface, as exporters take it), and
    /// write the final values to metrics.prom.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// Local addresses to connect from: a comma list (10.0.0.1,10.0.0.2) or an IPv4 range
    /// (127.0.0.1-127.0.0.8). Session i connects from address i mod N, on every
    /// reconnect. Each must be an address of this machine, of the target's family.
    ///
    /// Linux keeps one range of ephemeral ports (ip_local_port_range) per source address
    /// and destination; past half of it, every connect searches the used ports and the
    /// tester stalls. N addresses hold N times as many connections to one target.
    /// [default: for a 127.x target, as many of 127.0.0.1, 127.0.0.2, … as keep each
    /// address under a quarter of the port range (with the default range, up to 7,058
    /// sessions connect unbound, as without the flag); otherwise the address the kernel
    /// picks]
    #[arg(long, value_name = "LIST", value_parser = Sources::parse)]
    pub source_addrs: Option<Sources>,
    /// After the run ends (or on the first Ctrl-C), how long sessions get to close
    /// politely before the report is written with what has arrived.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub grace: Duration,
    /// Run shard I of N (from 0) of a run spread over N processes, usually on N
    /// machines. Sessions are dealt round-robin (session id s belongs to shard s mod N),
    /// so the shards' sessions, stage targets, arrival rates and max_sessions add up
    /// exactly to the scenario's, and ids (card rows) never overlap. Give every shard the
    /// same --start-at, then `wsoak merge` their run directories. Without --report, the
    /// run directory is reports/<scenario>-<start time>/shard-<I>/.
    #[arg(long, value_name = "I/N", value_parser = crate::load::Slice::parse, conflicts_with = "shard_count")]
    pub shard: Option<crate::load::Slice>,
    /// Run one of N shards, reading I from the JOB_COMPLETION_INDEX environment variable
    /// that a Kubernetes Indexed Job sets in each pod. Otherwise as --shard I/N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub shard_count: Option<u32>,
    /// Start the load at this moment (RFC 3339, e.g. 2026-11-29T15:00:00Z), waiting
    /// until then; every shard given the same time starts together, and their intervals
    /// line up. A time already past (a late pod) starts at once, counting the sessions
    /// due meanwhile as late, and fails when the run's whole duration has passed.
    #[arg(long, value_name = "TIME", env = "WSOAK_START_AT", value_parser = parse_start_at, conflicts_with = "start_in")]
    pub start_at: Option<std::time::SystemTime>,
    /// Start the load this long from now (e.g. 30s); the time is printed, to give other
    /// shards as --start-at.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub start_in: Option<Duration>,
}

/// An RFC 3339 time, as `--start-at` takes it: UTC (`Z`) or with an offset
/// (`+08:00`).
pub fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    let bad = |why: String| {
        format!("`{text}` is not a time: write RFC 3339, e.g. 2026-11-29T15:00:00Z or 2026-11-29T23:00:00+08:00 ({why})")
    };
    let text = text.trim();
    // humantime reads UTC only: an offset is taken off by hand.
    let at = text
        .len()
        .checked_sub(6)
        .filter(|at| text.is_char_boundary(*at));
    let (utc, offset) = match at.map(|at| text.split_at(at)) {
        Some((time, zone))
            if (zone.starts_with('+') || zone.starts_with('-')) && zone.as_bytes()[3] == b':' =>
        {
            let hours: u64 = zone[1..3].parse().map_err(|_| bad("bad offset".into()))?;
            let minutes: u64 = zone[4..6].parse().map_err(|_| bad("bad offset".into()))?;
            if hours > 23 || minutes > 59 {
                return Err(bad("bad offset".into()));
            }
            let seconds = Duration::from_secs(hours * 3600 + minutes * 60);
            (format!("{time}Z"), Some((zone.starts_with('+'), seconds)))
        }
        _ => (text.to_string(), None),
    };
    let local = humantime::parse_rfc3339_weak(&utc).map_err(|e| bad(e.to_string()))?;
    Ok(match offset {
        // 15:00+08:00 is 07:00Z.
        Some((true, d)) => local - d,
        Some((false, d)) => local + d,
        None => local,
    })
}

/// `wsoak check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scenario file: YAML, or a .rhai script.
    pub scenario: PathBuf,
}

/// `wsoak serve`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Wait this long before every reply, e.g. 50ms (at most 1h). Measured from reading
    /// the message; heartbeat replies' actual holds are summarised in the exit line
    /// (`heartbeat_hold_ms`).
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Send no ack to every N-th heartbeat of each connection (heartbeats count from 1
    /// on every connection: 3 drops the 3rd, 6th, …). Counted as
    /// `heartbeat_acks_dropped`. Tests a client's failure counting.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub drop_ack_every: Option<u64>,
    /// Hold the reply to every N-th heartbeat of each connection for --slow-ack (1: every
    /// heartbeat). A dropped ack (--drop-ack-every) is not also held. Replies stay in
    /// order: the connection reads nothing else while a reply is held. Counted as
    /// `heartbeat_acks_held`; the holds actually given are in `heartbeat_hold_ms`.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        requires = "slow_ack"
    )]
    pub slow_ack_every: Option<u64>,
    /// How long --slow-ack-every holds a reply, on top of --delay, e.g. 50ms (more than
    /// 0s, at most 1h).
    #[arg(long, value_name = "D", value_parser = parse_duration, requires = "slow_ack_every")]
    pub slow_ack: Option<Duration>,
    /// Abruptly close each connection (no close frame) once it has lived this long.
    #[arg(long, value_parser = parse_duration)]
    pub drop_after: Option<Duration>,
    /// Stop answering once a connection has lived this long, keeping TCP open.
    #[arg(long, value_parser = parse_duration)]
    pub stall_after: Option<Duration>,
    /// Fraction of auths to reject with code 401, e.g. 0.1 or 10%.
    #[arg(long, value_parser = parse_fraction, default_value = "0")]
    pub reject_auth: f64,
    /// Once a connection has bound its card, push {"msgType":"order_push",…,"ts":<unix ms>}
    /// this often. A client's {"type":"pushAck"} reply is counted.
    #[arg(long, value_parser = parse_duration)]
    pub push_every: Option<Duration>,
    /// Serve wss:// with a self-signed certificate generated at start.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: write the certificate (PEM) here, for clients' --ca.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub cert_out: Option<PathBuf>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Close a TCP connection that has not finished TLS and the WebSocket upgrade within
    /// this long. Counted as `handshake_timeouts`.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "10s")]
    pub handshake_timeout: Duration,
    /// Close a connection that sends nothing (no message, ping or close) for this long,
    /// or whose reply cannot be written for as long. Counted as `idle_timeouts`. 0s turns
    /// it off. The default is six of the default 10 s heartbeat intervals.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Most TCP connections open at once. At the cap, a new connection closes the oldest
    /// one still in its handshake (`evicted`), so a flood of idle sockets cannot lock
    /// real clients out; when every open connection is served, it is closed at once
    /// instead (`refused`). Per process: with --workers N, each process has this cap of
    /// its own. [default: the open-file limit less 64, so the server never runs out of
    /// descriptors]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Serve from N processes listening on the one port (SO_REUSEPORT, Linux only); the
    /// kernel spreads new connections over them by the client's address and port.
    ///
    /// For more connections than one process may open files for: each connection costs
    /// a descriptor, and the open-file limit (`ulimit -n`) is per process. With a limit
    /// of 20,000, 100,000 connections need --workers 6. Every process takes the same
    /// faults and limits, and --max-connections, --reject-auth's even spread and the
    /// caps on the exit line's maps apply to each process alone. The exit line sums all
    /// processes (maps key by key, `heartbeat_hold_ms` from the merged holds) and adds
    /// `workers`: N. On stderr: the processes' pids at start, and the connections each
    /// one served at the end. The workers stop with this process, and die with it.
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub workers: u16,
    /// Internal: this process is worker I of a `--workers` server (started by it, never
    /// by hand). It reads its certificate and the stop from stdin and reports on stdout.
    #[arg(
        long,
        hide = true,
        value_name = "I",
        requires = "parent_pid",
        conflicts_with_all = ["workers", "cert_out", "duration"]
    )]
    pub worker: Option<u16>,
    /// Internal: the pid of the server that started this worker, which it must not
    /// outlive.
    #[arg(long, hide = true, value_name = "PID", requires = "worker")]
    pub parent_pid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::{parse_listen, parse_start_at, Duration};

    #[test]
    fn the_exporters_port_only_form_is_every_interface() {
        assert_eq!(parse_listen(":9464").unwrap().to_string(), "0.0.0.0:9464");
        assert_eq!(
            parse_listen("127.0.0.1:9464").unwrap().to_string(),
            "127.0.0.1:9464"
        );
        assert_eq!(
            parse_listen("[::1]:9464").unwrap().to_string(),
            "[::1]:9464"
        );
        assert!(parse_listen(":x").unwrap_err().contains(":PORT"));
        assert!(parse_listen("9464").is_err());
    }

    #[test]
    fn start_times_parse_with_or_without_an_offset() {
        let utc = parse_start_at("2026-11-29T15:00:00Z").unwrap();
        assert_eq!(
            utc,
            std::time::UNIX_EPOCH + Duration::from_secs(1_795_964_400)
        );
        assert_eq!(parse_start_at("2026-11-29T23:00:00+08:00").unwrap(), utc);
        assert_eq!(parse_start_at("2026-11-29T10:30:00-04:30").unwrap(), utc);
        assert_eq!(
            parse_start_at("2026-11-29T15:00:00.250Z").unwrap(),
            utc + Duration::from_millis(250)
        );
        for bad in [
            "tomorrow",
            "2026-11-29T15:00:00+8",
            "2026-11-29T15:00:00+25:00",
            "",
            "é2026-11-29T1",
            "2026é12345", // six bytes from the end falls inside the é
        ] {
            assert!(parse_start_at(bad).is_err(), "{bad}");
        }
    }
}
