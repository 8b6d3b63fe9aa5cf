//! `wsoak compare`: per-metric deltas between two runs' reports, as a table or JSON on
//! stdout and, when asked, JUnit XML; a regression beyond tolerance exits 1.

use anyhow::{bail, Context as _};

use super::rundir::RunDir;
use super::{EXIT_OK, EXIT_THRESHOLDS};
use crate::cli::{CompareArgs, Format};
use crate::report;

/// `wsoak compare`: exit 1 on a regression beyond tolerance.
pub(crate) fn compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let (base, cur) = (RunDir::find(&args.baseline), RunDir::find(&args.current));
    let (baseline, current) = (base.read_report()?, cur.read_report()?);
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
    let (base_path, cur_path) = (
        base.report().display().to_string(),
        cur.report().display().to_string(),
    );
    if let Some(junit) = &args.junit {
        let xml = report::junit::compare(&current, &base_path, &cur_path, &rows);
        report::write_atomic(junit, &xml)
            .with_context(|| format!("cannot write the JUnit XML to {}", junit.display()))?;
    }
    match args.format {
        Format::Text => say_raw!("{}", report::compare::render(&base_path, &cur_path, &rows)),
        Format::Json => say!(
            "{:#}",
            report::compare::to_json(&base_path, &cur_path, &rows)
        ),
    }
    Ok(if rows.iter().any(|r| r.regression) {
        EXIT_THRESHOLDS
    } else {
        EXIT_OK
    })
}
