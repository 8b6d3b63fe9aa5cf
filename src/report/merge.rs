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

use std::time::Duration;

use hdrhistogram::Histogram;

use super::{hlog, rebuild, IntervalLine};
use crate::metrics::{is_wsoak_histogram, new_histogram, Recorder, State};

/// One interval of one shard: its line in `intervals.jsonl`, and its histograms from
/// `latency.hlog`, by tag.
#[derive(Debug, Clone)]
pub struct ShardInterval {
    /// The line.
    pub line: IntervalLine,
    /// The histograms written for it.
    pub histograms: hlog::Totals,
}

/// Pairs a shard's interval lines with its latency log's entries, a line at a time. The
/// writer puts each interval's histograms into the log together, in order, spanning
/// from the previous line's `t` to its own; a line with no samples has none. So the
/// log's entries, taken in order and grouped by their span, belong to the lines whose
/// `t` their span ends at, in order (two lines may share a `t` when a stop cuts the run
/// short: the order tells them apart). An entry that ends before the line at hand
/// belongs to no line (a damaged log): it is left out and counted.
pub struct Pairer<I: Iterator<Item = Result<hlog::Entry, String>>> {
    entries: I,
    /// The entry read but not yet taken.
    peeked: Option<hlog::Entry>,
    /// Entries no line took.
    orphans: usize,
}

impl<I: Iterator<Item = Result<hlog::Entry, String>>> Pairer<I> {
    /// Pairs lines with `entries`.
    pub fn new(entries: I) -> Pairer<I> {
        Pairer {
            entries,
            peeked: None,
            orphans: 0,
        }
    }

    /// The next line, with its histograms. An error is the log's reader's (I/O), or a
    /// histogram that does not fit wsoak's range.
    pub fn interval(&mut self, line: IntervalLine) -> Result<ShardInterval, String> {
        let mut histograms = hlog::Totals::new();
        let mut span: Option<(Duration, Duration)> = None;
        loop {
            let entry = match self.peeked.take() {
                Some(entry) => entry,
                None => match self.entries.next() {
                    Some(entry) => entry?,
                    None => break,
                },
            };
            let this = (entry.start, entry.length);
            // Both ends are written to the millisecond.
            let end = (entry.start + entry.length).as_secs_f64();
            match span {
                Some(taken) if taken == this => {}
                None if (line.t - end).abs() <= 0.0015 => span = Some(this),
                None if end < line.t => {
                    self.orphans += 1;
                    continue;
                }
                // The next line's.
                _ => {
                    self.peeked = Some(entry);
                    break;
                }
            }
            let histogram = normalised(entry.histogram)?;
            match histograms.get_mut(&entry.tag) {
                Some(h) => h.add(&histogram).map_err(|e| format!("{e:?}"))?,
                None => {
                    histograms.insert(entry.tag, histogram);
                }
            }
        }
        Ok(ShardInterval { line, histograms })
    }

    /// After the last line: how many entries no line took (those that ended between
    /// lines, and those after the last line), and the entries' reader.
    pub fn finish(mut self) -> (usize, I) {
        let after = usize::from(self.peeked.is_some()) + self.entries.by_ref().count();
        (self.orphans + after, self.entries)
    }
}

/// A histogram from a file, in wsoak's own bounds, so that it merges with any other: a
/// log written elsewhere, or damaged, may hold other bounds.
fn normalised(histogram: Histogram<u64>) -> Result<Histogram<u64>, String> {
    if is_wsoak_histogram(&histogram) {
        return Ok(histogram);
    }
    let mut h = new_histogram();
    h.add(&histogram)
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

/// Merges the shards' intervals by number, as they come: `shards` yield each shard's
/// intervals in order, and the merged intervals come out in order, holding one interval
/// per shard at a time however long the run. `steps` are the run's step names. An
/// interval that only some shards wrote (a shard ended or died earlier) holds what
/// those wrote. A shard's error ends the merge.
pub struct Merger<S: Iterator<Item = Result<ShardInterval, String>>> {
    shards: Vec<S>,
    /// Each shard's next interval, once read.
    heads: Vec<Option<ShardInterval>>,
    steps: Vec<String>,
}

impl<S: Iterator<Item = Result<ShardInterval, String>>> Merger<S> {
    /// Merges `shards`.
    pub fn new(shards: Vec<S>, steps: &[String]) -> Merger<S> {
        Merger {
            heads: shards.iter().map(|_| None).collect(),
            shards,
            steps: steps.to_vec(),
        }
    }

    /// The shards' readers, for what they have to say once the merge is over.
    pub fn into_shards(self) -> Vec<S> {
        self.shards
    }
}

impl<S: Iterator<Item = Result<ShardInterval, String>>> Iterator for Merger<S> {
    type Item = Result<MergedInterval, String>;

    fn next(&mut self) -> Option<Self::Item> {
        for (head, shard) in self.heads.iter_mut().zip(&mut self.shards) {
            if head.is_none() {
                match shard.next() {
                    Some(Ok(interval)) => *head = Some(interval),
                    Some(Err(e)) => return Some(Err(e)),
                    None => {}
                }
            }
        }
        let seq = self.heads.iter().flatten().map(|h| h.line.seq).min()?;
        let parts: Vec<ShardInterval> = self
            .heads
            .iter_mut()
            .filter(|h| h.as_ref().is_some_and(|h| h.line.seq == seq))
            .filter_map(Option::take)
            .collect();
        Some(Ok(merge_one(seq, parts, &self.steps)))
    }
}

/// One interval of the merged run from the shards' intervals of that number.
pub fn merge_one(seq: u64, parts: Vec<ShardInterval>, steps: &[String]) -> MergedInterval {
    let mut histograms = hlog::Totals::new();
    let mut lines = Vec::with_capacity(parts.len());
    for part in parts {
        for (tag, h) in part.histograms {
            match histograms.get_mut(&tag) {
                // Both in wsoak's bounds ([`normalised`]): adding cannot fail.
                Some(total) => {
                    let _ = total.add(&h);
                }
                None => {
                    histograms.insert(tag, h);
                }
            }
        }
        lines.push(part.line);
    }
    // Counters summed and histograms merged, as a crashed run's are rebuilt.
    let recorder = rebuild(&lines, &histograms, steps);
    let mut gauges = [0i64; State::COUNT];
    for line in &lines {
        for state in State::ALL {
            gauges[state.index()] += line.states.get(state.name()).copied().unwrap_or(0);
        }
    }
    // Each shard's peak; their sum bounds the peak of the sum.
    let peak = lines
        .iter()
        .map(|l| super::peak_active(std::slice::from_ref(l)))
        .sum();
    let t = lines.iter().map(|l| l.t).fold(0.0, f64::max);
    let rss = lines.iter().map(|l| l.rss_kib).fold(None, sum);
    let cpu_ms = lines.iter().map(|l| l.cpu_ms).fold(None, sum);
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

    /// Every line paired, and how many entries no line took.
    fn pair(lines: Vec<IntervalLine>, entries: Vec<hlog::Entry>) -> (Vec<ShardInterval>, usize) {
        let mut pairer = Pairer::new(entries.into_iter().map(Ok));
        let paired = lines
            .into_iter()
            .map(|l| pairer.interval(l).unwrap())
            .collect();
        (paired, pairer.finish().0)
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
        let (paired, orphans) = pair(lines, entries);
        assert_eq!(orphans, 0);
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
        // Entries no line ends at (a damaged log) are left out and counted: one between
        // lines, one after the last.
        let (paired, orphans) = pair(
            vec![line(0, 1.0, 0, 0), line(1, 2.0, 0, 0)],
            vec![
                entry("heartbeat", 0.0, 1.5, &[1]),
                entry("heartbeat", 1.0, 2.0, &[2, 3]),
                entry("heartbeat", 2.0, 7.0, &[4]),
            ],
        );
        assert_eq!(orphans, 2);
        assert_eq!(paired[1].histograms["heartbeat"].len(), 2);
        assert!(paired[0].histograms.is_empty());
    }

    #[test]
    fn shards_merge_by_interval_number() {
        let (a, _) = pair(
            vec![line(0, 1.0, 3, 10), line(1, 2.0, 4, 10)],
            vec![entry("heartbeat", 0.0, 1.0, &[1000, 2000, 3000])],
        );
        // The second shard's lines end a little later, and it ran one interval more.
        let (b, _) = pair(
            vec![
                line(0, 1.004, 5, 7),
                line(1, 2.003, 6, 7),
                line(2, 3.0, 1, 0),
            ],
            vec![entry("heartbeat", 1.004, 2.003, &[9000])],
        );
        let merged: Vec<MergedInterval> =
            Merger::new(vec![a.into_iter().map(Ok), b.into_iter().map(Ok)], &[])
                .collect::<Result<_, String>>()
                .unwrap();
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
