//! wsoak: a WebSocket load and soak tester for mini-program style heartbeat clients.
//!
//! Layout, in the order data flows:
//! - [`cli`]: clap types; parsing only.
//! - [`scenario`]: YAML → a validated, immutable [`scenario::Scenario`].
//! - [`runner`]: shards (threads with current-thread runtimes), spawning, deadline, stop.
//! - [`session`]: one simulated page: connect → auth → bindCard → heartbeats → reconnect.
//! - [`heartbeat`]: the heartbeat timetable and which heartbeat an ack belongs to (pure).
//! - [`source`]: which local address each session connects from, and the socket-level
//!   bind behind it.
//! - [`metrics`]: per-shard [`metrics::Recorder`]s, merged from [`metrics::Snapshot`]s.
//! - [`report`]: the JSON report and the text summary.
//! - [`server`]: the reference server, embedded by default and as `wsoak serve`.
//!
//! [`run`] is the whole program behind `main`: integration tests call it with
//! `Cli::parse_from([...])` exactly as the binary does.

/// Prints a line to stdout; a closed pipe (`wsoak check … | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints a line to stderr (warnings, notes, the live view's lines); a closed stderr (a
/// log tool that went away, `2>&1 | head`) is not an error, and never costs the report.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Prints to stdout without a newline; a closed pipe is not an error.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod cli;
pub mod faults;
pub mod heartbeat;
pub mod load;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod script;
pub mod server;
pub mod session;
pub mod source;
pub mod threshold;
pub mod tls;
pub mod units;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use tokio_tungstenite::tungstenite::ClientRequestBuilder;

use crate::cli::{CheckArgs, Cli, Command, CompareArgs, ReportArgs, RunArgs, ServeArgs};
use crate::progress::Progress;
use crate::report::Report;
use crate::scenario::{Overrides, Scenario, Target, TargetUrl};
use crate::script::Hook;
use crate::session::Plan;

/// Exit code: the run completed.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run completed but a threshold failed (the report is written).
pub const EXIT_THRESHOLDS: u8 = 1;
/// Exit code: a usage or scenario error, or a target that cannot work.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: wsoak itself failed during the run (a caught panic, `errors.internal`). The
/// report is written, but its numbers are not to be trusted, whatever the thresholds say.
pub const EXIT_INTERNAL: u8 = 3;

/// Runs a parsed command line; returns the process exit code. Errors are usage errors
/// (exit 2), already worded for people.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run_scenario(&args).map(|out| out.exit_code()),
        Command::Check(args) => check(&args),
        Command::Serve(args) => serve(&args),
        Command::Report(args) => rerender(&args),
        Command::Compare(args) => compare(&args),
    }
}

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
        if !self.report.internal_errors.is_empty() {
            EXIT_INTERNAL
        } else if self.passed {
            EXIT_OK
        } else {
            EXIT_THRESHOLDS
        }
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
    let path = args
        .report
        .clone()
        .unwrap_or_else(|| report::default_path(&scenario.name, std::time::SystemTime::now()));
    let intervals_path = report::intervals_path(&path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    }
    let intervals = std::fs::File::create(&intervals_path)
        .with_context(|| format!("cannot create {}", intervals_path.display()))?;
    let hlog_path = report::sibling(&path, "latency.hlog");
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
    };
    let info_path = report::sibling(&path, "run.json");
    std::fs::write(&info_path, serde_json::to_string_pretty(&info)? + "\n")
        .with_context(|| format!("cannot write {}", info_path.display()))?;
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
    let mut report = Report::build(&result.total, &result.meta, server_stats);
    let passed = report.judge(&scenario.thresholds);
    report
        .write(&path)
        .with_context(|| format!("cannot write the report to {}", path.display()))?;
    let html_path = report::sibling(&path, "report.html");
    let lines = report::read_intervals(&intervals_path).map_err(anyhow::Error::msg)?;
    let totals = runner::tagged_histograms(&result.total)
        .into_iter()
        .collect();
    std::fs::write(
        &html_path,
        report::html::render(&report, &lines, &totals, &info.shape),
    )
    .with_context(|| format!("cannot write {}", html_path.display()))?;
    if let Some(exposition) = &result.exposition {
        let prom_path = report::sibling(&path, "metrics.prom");
        std::fs::write(&prom_path, exposition)
            .with_context(|| format!("cannot write {}", prom_path.display()))?;
    }
    say_raw!("{}", report.summary());
    if !report.internal_errors.is_empty() {
        note!(
            "wsoak: error: {} internal errors (wsoak itself failed; this run's numbers are not \
             to be trusted, exit code 3). First: {}",
            report.errors.get("internal").copied().unwrap_or(0),
            report.internal_errors[0]
        );
    }
    say!("report      {}", path.display());
    say!("html        {}", html_path.display());
    say!(
        "intervals   {}  (latency log {})",
        intervals_path.display(),
        hlog_path.display()
    );
    Ok(RunOutput {
        report,
        path,
        intervals: intervals_path,
        passed,
    })
}

/// Resolves the target and builds what every session needs to connect.
fn plan(scenario: &Arc<Scenario>, url: &TargetUrl, args: &RunArgs) -> anyhow::Result<Plan> {
    let addr: SocketAddr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", url.host))?
        .next()
        .with_context(|| format!("{} resolves to no address", url.host))?;
    let tls = if url.tls {
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .with_context(|| format!("`{}` is not a valid TLS server name", url.host))?;
        let config = tls::client_config(args.ca.as_deref(), args.insecure)?;
        Some((tokio_rustls::TlsConnector::from(config), name))
    } else {
        None
    };
    if url.tls && args.insecure {
        note!("wsoak: warning: --insecure: TLS certificates are not verified");
    }
    let ports = source::PortRange::read();
    let sources = match &args.source_addrs {
        Some(source::Sources(list)) => {
            source::check(list, addr).context("--source-addrs")?;
            list.clone()
        }
        None => source::loopback_sources(addr, scenario.sessions, ports),
    };
    // `sessions` is the most the run can hold open at once: the closed model's peak, the
    // open model's `max_sessions` cap.
    if let Some(warning) = source::crowding(addr, scenario.sessions, &sources, ports) {
        note!("{warning}");
    }
    let mut request = ClientRequestBuilder::new(url.uri.clone());
    for (key, value) in &scenario.connect.headers {
        request = request.with_header(key.clone(), value.clone());
    }
    for protocol in &scenario.connect.subprotocols {
        request = request.with_sub_protocol(protocol.clone());
    }
    Ok(Plan {
        scenario: scenario.clone(),
        addr,
        sources,
        request,
        tls,
        ws_config: session::client_ws_config(),
    })
}

/// Raises the open-file limit as far as allowed, and refuses a run that cannot fit.
fn ensure_open_files(needed: u64, embedded: bool) -> anyhow::Result<()> {
    let limit = raise_open_files_limit();
    if let Some(limit) = limit {
        if needed > limit {
            let hint = if embedded {
                "The embedded server's sockets count too: run `wsoak serve` separately and \
                 pass --target, or raise the limit (ulimit -n)."
            } else {
                "Raise the limit (ulimit -n), or split the load over several processes."
            };
            bail!(
                "this run needs about {needed} open files but this process may open {limit}. {hint}"
            );
        }
    }
    Ok(())
}

/// Sets the soft open-file limit to the hard limit; returns the limit now in force.
fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `wsoak check`: validates a scenario and describes what it would do.
fn check(args: &CheckArgs) -> anyhow::Result<u8> {
    let s = scenario::load(&args.scenario, &Overrides::default())?;
    let hb = &s.heartbeat;
    say!(
        "{}: ok — {} sessions for {} against {}",
        args.scenario.display(),
        s.sessions,
        units::format_duration(s.duration),
        s.target
    );
    let has = |hook: Hook| s.script.as_ref().is_some_and(|sc| sc.has(hook));
    let step = |name: &str, step: &Option<scenario::Step>, build: Hook, judge: Hook| match step {
        Some(st) => {
            let what = if has(build) {
                format!("what `fn {}` builds", build.name())
            } else {
                "the `send` message".to_string()
            };
            let then = if has(judge) {
                format!(
                    "wait up to {} for a reply `fn {}` accepts",
                    units::format_duration(st.timeout),
                    judge.name()
                )
            } else if st.expect.is_some() {
                format!(
                    "wait up to {} for a reply `expect` matches",
                    units::format_duration(st.timeout)
                )
            } else {
                "go on once sent".to_string()
            };
            say!("  {name}: send {what}, then {then}");
        }
        None => say!("  {name}: (none)"),
    };
    step("auth", &s.auth, Hook::Auth, Hook::AuthReply);
    step(
        "bind_card",
        &s.bind_card,
        Hook::BindCard,
        Hook::BindCardReply,
    );
    say!(
        "  heartbeat: every {}, {}; reconnect after {} consecutive failures",
        units::format_duration(hb.interval),
        if hb.expect.as_ref().is_some_and(scenario::Matcher::has_seq) {
            format!(
                "healthy when acked within {} (acks matched by {{{{ heartbeat.seq }}}})",
                units::format_duration(hb.timeout)
            )
        } else if hb.expect.is_some() || has(Hook::HeartbeatReply) {
            format!(
                "healthy when acked within {} (acks carry no id: matched by time and order)",
                units::format_duration(hb.timeout)
            )
        } else {
            "healthy when sent".to_string()
        },
        hb.max_failures + 1
    );
    if let Some(cards) = &s.cards {
        say!(
            "  cards: {} rows ({})",
            cards.rows.len(),
            cards.columns.join(", ")
        );
    }
    if !s.thresholds.is_empty() {
        let checks: Vec<&str> = s.thresholds.iter().map(|t| t.check.as_str()).collect();
        say!("  thresholds: {}", checks.join("; "));
    }
    if !s.connect.headers.is_empty() {
        say!("  headers: {}", s.connect.shown_headers().join("; "));
    }
    if let Some(script) = &s.script {
        // Hooks may recurse as deep as the limits allow: give them the shards' stack.
        script::on_script_stack(|| check_hooks(&s, script))
            .context("cannot start a thread for the hooks")??;
    }
    Ok(EXIT_OK)
}

/// Runs every hook the script defines once, against session 0 and the reference
/// server's replies, and shows what each returned.
fn check_hooks(s: &Scenario, script: &script::Script) -> anyhow::Result<()> {
    use serde_json::json;
    let session = script::SessionHandle::new(0, session::card_map(s, 0));
    session.with(|d| d.connects = 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let samples: [(Hook, Option<serde_json::Value>); 9] = [
        (Hook::OnStart, None),
        (Hook::Auth, None),
        (
            Hook::AuthReply,
            Some(json!({"msgType": "auth_ack", "code": "200", "success": true})),
        ),
        (Hook::BindCard, None),
        (
            Hook::BindCardReply,
            Some(json!({"msgType": "bindCard_ack", "code": "200", "success": true})),
        ),
        (Hook::Heartbeat, None),
        (
            Hook::HeartbeatReply,
            Some(json!({"msgType": "heartBeat_ack"})),
        ),
        (
            Hook::OnMessage,
            Some(json!({"msgType": "order_push", "orderId": "o-1", "ts": now_ms})),
        ),
        (Hook::OnEnd, None),
    ];
    say!("  hooks, run once for session 0:");
    let mut failed = Vec::new();
    for (hook, message) in samples {
        if !script.has(hook) {
            continue;
        }
        let shown = match script.call(hook, &session, message.as_ref()) {
            Ok(value) => {
                let checked = match hook {
                    Hook::Auth | Hook::BindCard | Hook::Heartbeat => script::message_text(&value),
                    Hook::AuthReply | Hook::BindCardReply | Hook::HeartbeatReply => {
                        script::verdict(&value).map(|v| format!("{v:?}"))
                    }
                    Hook::OnMessage if value.is_unit() => Ok("() (no reply)".into()),
                    Hook::OnMessage => script::message_text(&value).map(|t| format!("reply {t}")),
                    Hook::OnStart | Hook::OnEnd => Ok("ok".into()),
                };
                match checked {
                    Ok(text) => text,
                    Err(e) => {
                        failed.push(format!("{}: {e}", hook.name()));
                        format!("error: {e}")
                    }
                }
            }
            Err(e) => {
                failed.push(format!("{}: {}", hook.name(), e.message));
                format!("error: {}", e.message)
            }
        };
        let effects = session.take_effects();
        let effects = if effects.is_empty() {
            String::new()
        } else {
            format!("  (asks: {effects:?})")
        };
        say!("    {}: {shown}{effects}", hook.name());
    }
    if !failed.is_empty() {
        bail!(
            "{}: {} hook(s) failed: {}",
            s.source.display(),
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// The report.json a run argument names: a run directory's, or the path itself.
fn report_path(run: &std::path::Path) -> PathBuf {
    if run.is_dir() {
        run.join("report.json")
    } else {
        run.to_path_buf()
    }
}

fn load_report(path: &std::path::Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a wsoak report", path.display()))
}

/// `wsoak report`: re-renders the summary and HTML from a run's files, rebuilding
/// report.json from the interval logs when the run never wrote it.
fn rerender(args: &ReportArgs) -> anyhow::Result<u8> {
    let path = report_path(&args.run);
    let info_path = report::sibling(&path, "run.json");
    let info: report::RunInfo =
        serde_json::from_str(&std::fs::read_to_string(&info_path).with_context(|| {
            format!(
                "{} is not a wsoak run: no {}",
                args.run.display(),
                info_path.display()
            )
        })?)
        .with_context(|| format!("{} is not a wsoak run.json", info_path.display()))?;
    let (lines, skipped_lines) =
        report::read_intervals_prefix(&report::sibling(&path, "intervals.jsonl"))
            .map_err(anyhow::Error::msg)?;
    let until = lines.last().map_or(std::time::Duration::ZERO, |l| {
        std::time::Duration::from_secs_f64(l.t)
    });
    let (totals, skipped_histograms) =
        report::hlog::read_totals_prefix(&report::sibling(&path, "latency.hlog"), until)
            .map_err(anyhow::Error::msg)?;
    for note in skipped_lines.iter().chain(&skipped_histograms) {
        note!("wsoak: damaged log: {note}");
    }
    if lines.is_empty() && !path.exists() {
        bail!(
            "{}: nothing to rebuild: no complete interval was written (the run failed at \
             start, or was killed within its first interval)",
            args.run.display()
        );
    }
    let thresholds = info
        .thresholds
        .iter()
        .map(|t| report::threshold::Threshold::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let mut report = if path.exists() {
        load_report(&path)?
    } else {
        let meta = report::Meta {
            scenario: info.scenario.clone(),
            target: info.target.clone(),
            planned: info.planned,
            shards: info.shards,
            started_at: humantime::parse_rfc3339(&info.started_at).unwrap_or(std::time::UNIX_EPOCH),
            elapsed: until,
            peak_active: report::peak_active(&lines),
            interrupted: true,
            aborted_by: None,
        };
        let mut rebuilt = Report::build(&report::rebuild(&lines, &totals), &meta, None);
        // The footprint is the original run's, which nothing recorded: say so.
        rebuilt.tester.peak_rss_kib = lines.iter().filter_map(|l| l.rss_kib).max();
        rebuilt.tester.cpu_s = Some(lines.iter().filter_map(|l| l.cpu_ms).sum::<f64>() / 1000.0);
        note!(
            "wsoak: {} was missing: rebuilt from {} intervals",
            path.display(),
            lines.len()
        );
        rebuilt
    };
    let passed = report.judge(&thresholds);
    report
        .write(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let html_path = report::sibling(&path, "report.html");
    std::fs::write(
        &html_path,
        report::html::render(&report, &lines, &totals, &info.shape),
    )
    .with_context(|| format!("cannot write {}", html_path.display()))?;
    say_raw!("{}", report.summary());
    if !report.internal_errors.is_empty() {
        note!(
            "wsoak: error: {} internal errors (wsoak itself failed; this run's numbers are not \
             to be trusted, exit code 3). First: {}",
            report.errors.get("internal").copied().unwrap_or(0),
            report.internal_errors[0]
        );
    }
    say!("report      {}", path.display());
    say!("html        {}", html_path.display());
    Ok(if passed { EXIT_OK } else { EXIT_THRESHOLDS })
}

/// `wsoak compare`: exit 1 on a regression beyond tolerance.
fn compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let (base_path, cur_path) = (report_path(&args.baseline), report_path(&args.current));
    let (baseline, current) = (load_report(&base_path)?, load_report(&cur_path)?);
    let options = report::compare::Options {
        tolerance: args.tolerance,
        per_metric: args.tolerance_for.iter().cloned().collect(),
        latency_floor_ms: args.latency_floor.as_secs_f64() * 1000.0,
    };
    let rows = report::compare::compare(&baseline, &current, &options);
    let known: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
    for (metric, _) in &args.tolerance_for {
        if !known.contains(&metric.as_str()) {
            bail!(
                "--tolerance-for {metric}: no such metric in these runs (they have: {})",
                known.join(", ")
            );
        }
    }
    say_raw!(
        "{}",
        report::compare::render(
            &base_path.display().to_string(),
            &cur_path.display().to_string(),
            &rows
        )
    );
    Ok(if rows.iter().any(|r| r.regression) {
        EXIT_THRESHOLDS
    } else {
        EXIT_OK
    })
}

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

/// `wsoak serve`: the reference server on its own.
fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    use std::io::Write as _;
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
    if args.handshake_timeout.is_zero() {
        bail!("--handshake-timeout: must be longer than 0s");
    }
    let limits = serve_limits(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = server::bind(args.listen)
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
        let scheme = if args.tls { "wss" } else { "ws" };
        say!("listening on {scheme}://{addr}/");
        eprintln!(
            "limits: handshake {}, idle {}, at most {} connections",
            units::format_duration(limits.handshake_timeout),
            limits
                .idle_timeout
                .map_or("off".into(), units::format_duration),
            limits.max_connections
        );
        let _ = std::io::stdout().flush();
        let stats = Arc::new(server::Stats::default());
        let duration = args.duration;
        let shutdown = async move {
            match duration {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = runner::shutdown_signal() => {}
                    }
                }
                None => runner::shutdown_signal().await,
            }
        };
        server::run(listener, config, stats.clone(), shutdown).await;
        say!("{}", serde_json::to_string(&stats.snapshot())?);
        Ok(EXIT_OK)
    })
}
