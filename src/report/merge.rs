//! Merging the shards of one run (`wsoak run --shard I/N`) interval by interval: pure,
//! no files. `wsoak merge` reads the shards' logs, checks that they make one run, and
//! hands them here.
//!
//! Every shard counts its intervals from the run's shared start, so interval `seq` of
//! one shard covers the same stretch of time as interval `seq` of every other. An
//! interval of the merged run is the shards' intervals of that number put together:
//! counters and live sessions summed, histograms merged (a percentile is never
//! averaged), the peak of open sockets summed (an upper bound of the peak of the sum,
//! since shards need not peak at the same moment within an interval).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{hlog, rebuild, IntervalLine};
use crate::metrics::{new_histogram, Recorder, State};

/// One interval of one shard: its line in `intervals.jsonl`, and its histograms from
/// `latency.hlog`, by tag.
#[derive(Debug, Clone)]
pub struct ShardInterval {
    /// The line.
    pub line: IntervalLine,
    /// The histograms written for it.
    pub histograms: hlog::Totals,
}

/// Pairs a shard's interval lines with its latency log's entries. The writer puts each
/// interval's histograms into the log together, in order, spanning from the previous
/// line's `t` to its own; a line with no samples has none. So the log's entries, taken
/// in order and grouped by their span, belong to the lines whose `t` their span ends at,
/// in order (two lines may share a `t` when a stop cuts the run short: the order tells
/// them apart).
pub fn pair(
    lines: Vec<IntervalLine>,
    entries: Vec<hlog::Entry>,
) -> Result<Vec<ShardInterval>, String> {
    let mut out: Vec<ShardInterval> = lines
        .into_iter()
        .map(|line| ShardInterval {
            line,
            histograms: hlog::Totals::new(),
        })
        .collect();
    let mut next = 0;
    let mut group: Option<(Duration, Duration)> = None;
    for entry in entries {
        let span = (entry.start, entry.length);
        if group != Some(span) {
            // A new interval's entries: the next line whose `t` is where they end.
            let end = (entry.start + entry.length).as_secs_f64();
            // Both are written to the millisecond.
            let found = out[next..]
                .iter()
                .position(|s| (s.line.t - end).abs() <= 0.0015)
                .ok_or_else(|| {
                    format!(
                        "latency histograms ending at {end:.3} s match no interval line from \
                         line {} on",
                        next + 1
                    )
                })?;
            next += found + 1;
            group = Some(span);
        }
        let histograms = &mut out[next - 1].histograms;
        let histogram = normalised(&entry.histogram)?;
        match histograms.get_mut(&entry.tag) {
            Some(h) => h.add(&histogram).map_err(|e| format!("{e:?}"))?,
            None => {
                histograms.insert(entry.tag, histogram);
            }
        }
    }
    Ok(out)
}

/// A histogram from a file, in wsoak's own bounds, so that it merges with any other: a
/// log written elsewhere, or damaged, may hold other bounds.
fn normalised(histogram: &Histogram<u64>) -> Result<Histogram<u64>, String> {
    let mut h = new_histogram();
    h.add(histogram)
        .map_err(|e| format!("a histogram does not fit wsoak's range ({e:?})"))?;
    Ok(h)
}

/// One interval of the merged run.
#[derive(Debug)]
pub struct MergedInterval {
    /// Its line for `intervals.jsonl`.
    pub line: IntervalLine,
    /// Its measurements, every shard's merged (histograms included).
    pub recorder: Recorder,
}

/// Merges the shards' intervals by number. `shards` holds each shard's intervals;
/// `steps` are the run's step names. Intervals come out in order; one that only some
/// shards wrote (a shard ended or died earlier) holds what those wrote.
pub fn merge(shards: &[Vec<ShardInterval>], steps: &[String]) -> Vec<MergedInterval> {
    let mut by_seq: BTreeMap<u64, Vec<&ShardInterval>> = BTreeMap::new();
    for shard in shards {
        for interval in shard {
            by_seq.entry(interval.line.seq).or_default().push(interval);
        }
    }
    let names: Vec<Arc<str>> = steps.iter().map(|s| s.as_str().into()).collect();
    by_seq
        .into_iter()
        .map(|(seq, parts)| {
            let mut recorder = Recorder::for_steps(&names);
            let mut gauges = [0i64; State::COUNT];
            let (mut peak, mut t) = (0i64, 0f64);
            let (mut rss, mut cpu_ms) = (None::<u64>, None::<f64>);
            for part in &parts {
                let line = &part.line;
                recorder.merge(&rebuild(
                    std::slice::from_ref(line),
                    &part.histograms,
                    steps,
                ));
                for state in State::ALL {
                    gauges[state.index()] += line.states.get(state.name()).copied().unwrap_or(0);
                }
                peak += super::peak_active(std::slice::from_ref(line));
                t = t.max(line.t);
                rss = sum(rss, line.rss_kib);
                cpu_ms = sum(cpu_ms, line.cpu_ms);
            }
            let mut line = IntervalLine::build(
                seq,
                Duration::from_secs_f64(t),
                &recorder,
                &gauges,
                peak,
                None,
            );
            // The shards' footprints, summed: the merging process's own mean nothing.
            line.rss_kib = rss;
            line.cpu_ms = cpu_ms.map(|ms| (ms * 1000.0).round() / 1000.0);
            MergedInterval { line, recorder }
        })
        .collect()
}

/// The sum of what is known.
fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counter;

    fn line(seq: u64, t: f64, sent: u64, bound: i64) -> IntervalLine {
        let mut r = Recorder::new();
        for _ in 0..sent {
            r.count(Counter::HeartbeatsSent);
        }
        let mut gauges = [0; State::COUNT];
        gauges[State::Bound.index()] = bound;
        let mut l = IntervalLine::build(seq, Duration::from_secs_f64(t), &r, &gauges, bound, None);
        l.rss_kib = Some(1000);
        l.cpu_ms = Some(10.0);
        l
    }

    fn entry(tag: &str, start: f64, end: f64, values: &[u64]) -> hlog::Entry {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        hlog::Entry {
            tag: tag.into(),
            start: Duration::from_secs_f64(start),
            length: Duration::from_secs_f64(end - start),
            histogram: h,
        }
    }

    #[test]
    fn log_entries_pair_with_their_lines_in_order() {
        // Line 1 had no samples; lines 2 and 3 share a `t` (a stop cut the run short).
        let lines = vec![
            line(0, 1.001, 1, 1),
            line(1, 2.0, 0, 1),
            line(2, 2.5, 1, 1),
            line(3, 2.5, 1, 0),
        ];
        let entries = vec![
            entry("heartbeat", 0.0, 1.001, &[100, 200]),
            entry("connect", 0.0, 1.001, &[50]),
            entry("heartbeat", 2.0, 2.5, &[300]),
            entry("heartbeat", 2.5, 2.5, &[400, 500, 600]),
        ];
        let paired = pair(lines, entries).unwrap();
        let counts: Vec<(u64, u64)> = paired
            .iter()
            .map(|p| {
                (
                    p.line.seq,
                    p.histograms.get("heartbeat").map_or(0, |h| h.len()),
                )
            })
            .collect();
        assert_eq!(counts, vec![(0, 2), (1, 0), (2, 1), (3, 3)]);
        assert_eq!(paired[0].histograms["connect"].len(), 1);
        // An entry no line ends at is damage, said plainly.
        let e = pair(
            vec![line(0, 1.0, 0, 0)],
            vec![entry("heartbeat", 0.0, 7.0, &[1])],
        )
        .unwrap_err();
        assert!(e.contains("7.000 s match no interval line"), "{e}");
    }

    #[test]
    fn shards_merge_by_interval_number() {
        let a = pair(
            vec![line(0, 1.0, 3, 10), line(1, 2.0, 4, 10)],
            vec![entry("heartbeat", 0.0, 1.0, &[1000, 2000, 3000])],
        )
        .unwrap();
        // The second shard's lines end a little later, and it ran one interval more.
        let b = pair(
            vec![
                line(0, 1.004, 5, 7),
                line(1, 2.003, 6, 7),
                line(2, 3.0, 1, 0),
            ],
            vec![entry("heartbeat", 1.004, 2.003, &[9000])],
        )
        .unwrap();
        let merged = merge(&[a, b], &[]);
        assert_eq!(merged.len(), 3);
        let first = &merged[0];
        assert_eq!(first.line.counts["heartbeats.sent"], 8);
        assert_eq!(first.line.states["bound"], 17);
        assert_eq!(first.line.peak_active, Some(17));
        assert_eq!(
            (first.line.t, first.line.rss_kib, first.line.cpu_ms),
            (1.004, Some(2000), Some(20.0))
        );
        assert_eq!(first.line.latency_ms["heartbeat"].count, 3);
        let second = &merged[1];
        assert_eq!(second.line.counts["heartbeats.sent"], 10);
        assert_eq!(
            second
                .recorder
                .latencies()
                .find(|(n, _)| *n == "heartbeat")
                .unwrap()
                .1
                .len(),
            1
        );
        // Only the second shard wrote interval 2.
        assert_eq!(merged[2].line.counts["heartbeats.sent"], 1);
        assert_eq!(merged[2].line.states["bound"], 0);
    }
}
