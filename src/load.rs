//! Load shapes: when sessions start and stop. Pure arithmetic, no clocks: the runner
//! turns these answers into timers, and tests check them exactly.
//!
//! - **Closed model** ([`Shape::Closed`]): the number of concurrent sessions follows
//!   piecewise-linear stages ("ramp to 5,000 over 2m, hold 1h, ramp to 0 over 1m").
//!   Session slot `i` is active while the target is at least `i + 1`, so starts inside a
//!   ramp are spread evenly and a ramp down stops the newest slots first.
//! - **Open model** ([`Shape::Open`]): pages arrive at a rate that follows stages, up to a
//!   cap on concurrent sessions. Arrival `m` is due when the integral of the rate reaches
//!   `m + ½`, so arrivals are evenly spaced, not bursty.
//! - **Churn** ([`Churn`]): how long a page stays (dwell), whether it comes back (away),
//!   and what share of leaves are only `onHide` (a web-view: the socket stays open).

use std::time::Duration;

use serde::Deserialize;

use crate::units;

/// One stage of the closed model: move linearly to `target` sessions over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage lasts.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationText")]
    pub duration: Duration,
    /// Concurrent sessions at the end of the stage (0 ramps down to none).
    pub target: u32,
}

/// One stage of the open model: move linearly to `rate` arrivals per second.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateStage {
    /// How long the stage lasts.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationText")]
    pub duration: Duration,
    /// Arrivals per second at the end of the stage.
    #[schemars(range(min = 0.0))]
    pub rate: f64,
}

/// How many sessions run, and when.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Concurrent sessions follow stages, starting from 0.
    Closed {
        /// The stages, in order.
        stages: Vec<Stage>,
    },
    /// Arrivals follow rate stages, starting from `start_rate`.
    Open {
        /// Arrivals per second at time 0.
        start_rate: f64,
        /// The stages, in order; the rate holds at the last stage's rate after it.
        stages: Vec<RateStage>,
        /// Most concurrent sessions; arrivals beyond it are dropped and counted.
        max_sessions: u32,
    },
}

impl Shape {
    /// The closed model for `sessions` sessions started evenly over `ramp_up`, then held.
    pub fn ramp_and_hold(sessions: u32, ramp_up: Duration) -> Shape {
        Shape::Closed {
            stages: vec![Stage {
                duration: ramp_up,
                target: sessions,
            }],
        }
    }

    /// The shape in words, for reports.
    pub fn describe(&self) -> String {
        let d = |d: Duration| units::format_duration(d);
        match self {
            Shape::Closed { stages } => {
                let parts: Vec<String> = stages
                    .iter()
                    .map(|s| format!("{} sessions over {}", s.target, d(s.duration)))
                    .collect();
                format!("closed model: {}", parts.join(", then "))
            }
            Shape::Open {
                start_rate,
                stages,
                max_sessions,
            } => {
                let parts: Vec<String> = stages
                    .iter()
                    .map(|s| format!("{}/s over {}", s.rate, d(s.duration)))
                    .collect();
                let then = if parts.is_empty() {
                    String::new()
                } else {
                    format!(", then {}", parts.join(", then "))
                };
                format!("open model: {start_rate}/s{then}; at most {max_sessions} sessions")
            }
        }
    }

    /// The end of the last stage.
    pub fn stages_end(&self) -> Duration {
        match self {
            Shape::Closed { stages } => stages.iter().map(|s| s.duration).sum(),
            Shape::Open { stages, .. } => stages.iter().map(|s| s.duration).sum(),
        }
    }

    /// The most sessions that can be active at once.
    pub fn max_sessions(&self) -> u32 {
        match self {
            Shape::Closed { stages } => stages.iter().map(|s| s.target).max().unwrap_or(0),
            Shape::Open { max_sessions, .. } => *max_sessions,
        }
    }

    /// The closed model's target at time `t` (fractional; held after the last stage).
    /// For the open model, the arrival rate at `t`.
    pub fn level_at(&self, t: Duration) -> f64 {
        let (start, points) = self.points();
        let mut from = (Duration::ZERO, start);
        for (end, level) in points {
            if t < end {
                let span = (end - from.0).as_secs_f64();
                if span == 0.0 {
                    return level;
                }
                let x = (t - from.0).as_secs_f64() / span;
                return from.1 + (level - from.1) * x;
            }
            from = (end, level);
        }
        from.1
    }

    /// Stage boundaries as (end time, level at the end), after the level at time 0.
    fn points(&self) -> (f64, Vec<(Duration, f64)>) {
        let mut at = Duration::ZERO;
        match self {
            Shape::Closed { stages } => (
                0.0,
                stages
                    .iter()
                    .map(|s| {
                        at += s.duration;
                        (at, f64::from(s.target))
                    })
                    .collect(),
            ),
            Shape::Open {
                start_rate, stages, ..
            } => (
                *start_rate,
                stages
                    .iter()
                    .map(|s| {
                        at += s.duration;
                        (at, s.rate)
                    })
                    .collect(),
            ),
        }
    }

    /// Closed model: the intervals, within `[0, end)`, during which slot `slot` is active
    /// (the target is at least `slot + 1`). Sorted and disjoint.
    pub fn active_intervals(&self, slot: u32, end: Duration) -> Vec<(Duration, Duration)> {
        let level = f64::from(slot) + 1.0;
        let (start, points) = self.points();
        let mut intervals = Vec::new();
        let mut open: Option<Duration> = None;
        let mut from = (Duration::ZERO, start);
        if start >= level {
            open = Some(Duration::ZERO);
        }
        let mut segments: Vec<((Duration, f64), (Duration, f64))> = Vec::new();
        for point in points {
            segments.push((from, point));
            from = point;
        }
        for ((t0, a), (t1, b)) in segments {
            if t0 >= end {
                break;
            }
            let crossing = |l: f64| -> Duration {
                if b == a {
                    return t0;
                }
                let x = ((l - a) / (b - a)).clamp(0.0, 1.0);
                t0 + scale(t1 - t0, x)
            };
            match open {
                None if b >= level && a < level => open = Some(crossing(level)),
                None if b >= level && t1 == t0 => open = Some(t0),
                Some(since) if b < level && a >= level => {
                    intervals.push((since, crossing(level).min(end)));
                    open = None;
                }
                Some(since) if b < level && t1 == t0 => {
                    intervals.push((since, t0.min(end)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(since) = open {
            if since < end {
                intervals.push((since, end));
            }
        }
        intervals.retain(|(a, b)| a < b);
        intervals
    }

    /// Open model: when arrival `index` (from 0) is due: the time at which the integral of
    /// the rate reaches `index + 0.5`, so arrivals sit in the middle of their share of
    /// time and none lands on a stage boundary. `None` when it never does before `end`.
    pub fn arrival_due(&self, index: u64, end: Duration) -> Option<Duration> {
        let (start, points) = self.points();
        let goal = index as f64 + 0.5;
        let mut area = 0.0;
        let mut from = (Duration::ZERO, start);
        let mut segments = points;
        // After the last stage the rate holds until `end`.
        let last_t = segments.last().map_or(Duration::ZERO, |p| p.0);
        if last_t < end {
            let hold = segments.last().map_or(start, |p| p.1);
            segments.push((end, hold));
        }
        for (t1, b) in segments {
            let (t0, a) = from;
            let span = (t1.min(end).saturating_sub(t0)).as_secs_f64();
            let full_span = (t1 - t0).as_secs_f64();
            if span > 0.0 {
                let slope = if full_span > 0.0 {
                    (b - a) / full_span
                } else {
                    0.0
                };
                let segment_area = a * span + 0.5 * slope * span * span;
                if area + segment_area >= goal {
                    // Solve a·x + slope·x²/2 = goal − area for x in [0, span].
                    let need = goal - area;
                    let x = if slope.abs() < 1e-12 {
                        need / a
                    } else {
                        (-a + (a * a + 2.0 * slope * need).max(0.0).sqrt()) / slope
                    };
                    return Some(t0 + seconds(x.clamp(0.0, span)));
                }
                area += segment_area;
            }
            if t1 >= end {
                return None;
            }
            from = (t1, b);
        }
        None
    }
}

/// One shard of a run spread over several processes, usually on several machines
/// (`wsoak run --shard I/N`): shard `index` of `count`. The run's sessions are dealt
/// round-robin: closed-model slot (session id) `s`, and open-model arrival `m`, belong
/// to shard `s mod count`. Every share is therefore exact: the shards' sessions, stage
/// targets, arrivals and caps add up to the whole with no rounding drift, and a session
/// has the same id, card row and heartbeat phase as in a run on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slice {
    /// This shard, from 0.
    pub index: u32,
    /// Shards in the run, at least 1.
    pub count: u32,
}

impl Default for Slice {
    fn default() -> Slice {
        Slice::WHOLE
    }
}

impl Slice {
    /// The whole run, on one machine.
    pub const WHOLE: Slice = Slice { index: 0, count: 1 };

    /// Shard `index` of `count`, or why that is not a shard.
    pub fn new(index: u32, count: u32) -> Result<Slice, String> {
        if count == 0 {
            return Err("a run has at least 1 shard".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: shards are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Slice { index, count })
    }

    /// Parses `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Slice, String> {
        let bad = || format!("`{text}` is not a shard: write I/N, e.g. 0/3 for the first of 3");
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (i, n) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        Slice::new(i, n)
    }

    /// Whether the run is split at all.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// This shard's share of `n` things dealt round-robin (sessions, the open model's
    /// cap): `n / count`, plus one for the first `n % count` shards.
    pub fn share(&self, n: u32) -> u32 {
        n / self.count + u32::from(self.index < n % self.count)
    }

    /// The ids this shard's thread `thread` of `threads` runs, as (first, step): the ids
    /// `first, first + step, …`. Threads deal this shard's ids among themselves as shards
    /// deal the run's.
    pub fn deal(&self, thread: usize, threads: usize) -> (u64, u64) {
        let (index, count) = (u64::from(self.index), u64::from(self.count));
        (index + count * thread as u64, count * threads.max(1) as u64)
    }

    /// `I/N`, as written.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

/// A random duration: fixed, uniform in a range, or exponential with a mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spread {
    /// Always this long.
    Fixed(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// Exponentially distributed with this mean (memoryless, like real visits).
    Exponential(Duration),
}

impl Spread {
    /// Draws a duration; `unit` is uniform in [0, 1).
    pub fn sample(&self, unit: f64) -> Duration {
        match *self {
            Spread::Fixed(d) => d,
            Spread::Uniform(lo, hi) => lo + (hi - lo).mul_f64(unit),
            Spread::Exponential(mean) => {
                // Cap at 20 means so one unlucky draw cannot outlive every run, and at
                // least 1 ms so a visit always lasts.
                mean.mul_f64((-(1.0 - unit).ln()).min(20.0))
                    .max(Duration::from_millis(1))
            }
        }
    }

    /// Parses `5m`, `1m..10m` (uniform) or `~5m` (exponential with mean 5m). Durations
    /// are at least 1 ms: a page cannot stay for no time at all.
    pub fn parse(text: &str) -> Result<Spread, String> {
        let text = text.trim();
        let spread = Self::parse_any(text)?;
        let shortest = match spread {
            Spread::Fixed(d) | Spread::Uniform(d, _) | Spread::Exponential(d) => d,
        };
        if shortest < Duration::from_millis(1) {
            return Err(format!("`{text}`: durations here are at least 1ms"));
        }
        Ok(spread)
    }

    fn parse_any(text: &str) -> Result<Spread, String> {
        if let Some(mean) = text.strip_prefix('~') {
            return Ok(Spread::Exponential(units::parse_duration(mean)?));
        }
        if let Some((lo, hi)) = text.split_once("..") {
            let (lo, hi) = (units::parse_duration(lo)?, units::parse_duration(hi)?);
            if lo > hi {
                return Err(format!("`{text}`: the range is backwards"));
            }
            return Ok(Spread::Uniform(lo, hi));
        }
        units::parse_duration(text).map(Spread::Fixed)
    }
}

/// Real users leave: how long a page stays, whether it comes back, and how many leaves
/// are only a web-view (`onHide`, socket kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Churn {
    /// How long a page stays before the user leaves.
    pub dwell: Spread,
    /// How long until the same user (same identity and card) comes back. `None`: in the
    /// open model they do not come back; in the closed model the slot's page returns at
    /// once.
    pub away: Option<Spread>,
    /// Share of leaves that only open a web-view: the socket stays open, the page stays.
    pub hidden: f64,
}

/// `d × x` for a fraction `x` in [0, 1]; NaN (from rates so extreme that the arithmetic
/// breaks down, such as 0 to 1e308 arrivals/s within a nanosecond) counts as 0 instead
/// of panicking, as `Duration::mul_f64` would.
fn scale(d: Duration, x: f64) -> Duration {
    if x.is_finite() {
        d.mul_f64(x.clamp(0.0, 1.0))
    } else {
        Duration::ZERO
    }
}

/// Seconds as a duration; NaN and negative values count as 0, and values too large for
/// a `Duration` as the largest, instead of panicking as `Duration::from_secs_f64` would.
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(if secs.is_nan() {
        Duration::ZERO
    } else {
        Duration::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_rates_never_panic() {
        // From 0 to 1e308 arrivals/s over 1 ns, then held: the arithmetic overflows to
        // infinity and NaN, and must still give an answer.
        let shape = Shape::Open {
            start_rate: 0.0,
            stages: vec![RateStage {
                duration: Duration::from_nanos(1),
                rate: 1e308,
            }],
            max_sessions: 5,
        };
        for index in 0..5 {
            let due = shape.arrival_due(index, Duration::from_secs(1));
            assert!(due.is_none_or(|d| d <= Duration::from_secs(1)), "{due:?}");
        }
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(f64::INFINITY), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(2), f64::NAN), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(2), 0.5), Duration::from_secs(1));
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn closed(stages: &[(f64, u32)]) -> Shape {
        Shape::Closed {
            stages: stages
                .iter()
                .map(|&(d, target)| Stage {
                    duration: s(d),
                    target,
                })
                .collect(),
        }
    }

    #[test]
    fn ramp_starts_are_spread_evenly() {
        let shape = closed(&[(10.0, 100)]);
        let end = s(20.0);
        let starts: Vec<Duration> = (0..100)
            .map(|i| shape.active_intervals(i, end)[0].0)
            .collect();
        // Slot i starts when the target reaches i + 1: every 0.1 s.
        for (i, start) in starts.iter().enumerate() {
            let expected = 0.1 * (i as f64 + 1.0);
            assert!(
                (start.as_secs_f64() - expected).abs() < 1e-9,
                "{i}: {start:?}"
            );
        }
        assert_eq!(shape.active_intervals(100, end), vec![]);
    }

    #[test]
    fn ramp_hold_ramp_down_gives_exact_counts() {
        // Ramp to 50 over 5 s, hold 10 s, ramp to 0 over 5 s.
        let shape = closed(&[(5.0, 50), (10.0, 50), (5.0, 0)]);
        let end = shape.stages_end();
        let active_at = |t: f64| {
            (0..60)
                .filter(|&i| {
                    shape
                        .active_intervals(i, end)
                        .iter()
                        .any(|&(a, b)| a <= s(t) && s(t) < b)
                })
                .count()
        };
        assert_eq!(active_at(0.05), 0);
        assert_eq!(active_at(2.55), 25);
        assert_eq!(active_at(7.0), 50);
        assert_eq!(active_at(17.45), 25);
        assert_eq!(active_at(19.95), 0);
        // Every slot starts exactly once and stops exactly once.
        for i in 0..50 {
            assert_eq!(shape.active_intervals(i, end).len(), 1, "slot {i}");
        }
        // The newest slots stop first.
        let stop = |i| shape.active_intervals(i, end)[0].1;
        assert!(stop(49) < stop(0));
    }

    #[test]
    fn a_second_ramp_restarts_slots() {
        let shape = closed(&[(1.0, 10), (1.0, 0), (1.0, 10)]);
        let intervals = shape.active_intervals(4, s(10.0));
        assert_eq!(intervals.len(), 2, "{intervals:?}");
        assert!(intervals[1].1 == s(10.0));
    }

    #[test]
    fn arrivals_follow_the_rate_exactly() {
        let shape = Shape::Open {
            start_rate: 10.0,
            stages: vec![],
            max_sessions: 1000,
        };
        let end = s(3.0);
        let due: Vec<Duration> = (0..100).filter_map(|m| shape.arrival_due(m, end)).collect();
        assert_eq!(due.len(), 30);
        assert!((due[0].as_secs_f64() - 0.05).abs() < 1e-9);
        assert!((due[29].as_secs_f64() - 2.95).abs() < 1e-6);
    }

    #[test]
    fn arrivals_ramp_with_rate_stages() {
        // Rate 0 → 20/s over 2 s (20 arrivals), then 20/s for 1 s (20 more).
        let shape = Shape::Open {
            start_rate: 0.0,
            stages: vec![
                RateStage {
                    duration: s(2.0),
                    rate: 20.0,
                },
                RateStage {
                    duration: s(1.0),
                    rate: 20.0,
                },
            ],
            max_sessions: 1000,
        };
        let end = shape.stages_end();
        let count = (0..1000).filter_map(|m| shape.arrival_due(m, end)).count();
        assert_eq!(count, 40);
        // Arrival 4 (the 5th) is due when the area t² · 5 reaches 4.5: t = √0.9.
        let fifth = shape.arrival_due(4, end).unwrap().as_secs_f64();
        assert!((fifth - 0.9f64.sqrt()).abs() < 1e-9, "{fifth}");
    }

    #[test]
    fn spreads_parse_and_sample() {
        assert_eq!(Spread::parse("5m").unwrap(), Spread::Fixed(s(300.0)));
        assert_eq!(
            Spread::parse("1m..2m").unwrap(),
            Spread::Uniform(s(60.0), s(120.0))
        );
        assert_eq!(Spread::parse("~10s").unwrap(), Spread::Exponential(s(10.0)));
        assert!(Spread::parse("2m..1m").is_err());
        assert_eq!(Spread::Uniform(s(1.0), s(3.0)).sample(0.5), s(2.0));
        let mean: f64 = (0..10_000)
            .map(|i| {
                Spread::Exponential(s(1.0))
                    .sample((i as f64 + 0.5) / 10_000.0)
                    .as_secs_f64()
            })
            .sum::<f64>()
            / 10_000.0;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
    }

    /// The ids one shard's thread runs: every id of the run belongs to exactly one
    /// (shard, thread), whatever the numbers.
    fn ids(slice: Slice, thread: usize, threads: usize, below: u64) -> Vec<u64> {
        let (first, step) = slice.deal(thread, threads);
        (first..below).step_by(step as usize).collect()
    }

    #[test]
    fn shards_and_their_threads_deal_every_id_once() {
        for (count, threads) in [(1, 1), (3, 2), (7, 3), (4, 1), (5, 8)] {
            let mut seen = vec![0u32; 1000];
            for index in 0..count {
                let slice = Slice::new(index, count).unwrap();
                let mut mine = 0;
                for thread in 0..threads {
                    for id in ids(slice, thread, threads, 1000) {
                        assert_eq!(id % u64::from(count), u64::from(index));
                        seen[id as usize] += 1;
                        mine += 1;
                    }
                }
                assert_eq!(mine, slice.share(1000), "shard {index}/{count}");
            }
            assert!(
                seen.iter().all(|n| *n == 1),
                "{count} shards, {threads} threads"
            );
        }
    }

    #[test]
    fn shares_add_up_to_the_whole() {
        // 1,000 sessions over 7 shards: 143, 143, 143, 143, 143, 143, 142.
        let shares: Vec<u32> = (0..7)
            .map(|i| Slice::new(i, 7).unwrap().share(1000))
            .collect();
        assert_eq!(shares, vec![143, 143, 143, 143, 143, 143, 142]);
        for (n, count) in [(1000, 7), (1003, 3), (2, 5), (0, 4), (u32::MAX, 9)] {
            let sum: u64 = (0..count)
                .map(|i| u64::from(Slice::new(i, count).unwrap().share(n)))
                .sum();
            assert_eq!(sum, u64::from(n), "{n} over {count}");
        }
    }

    /// A closed model's stage targets: at every moment, the shards' active slots add up
    /// to the single run's.
    #[test]
    fn stage_targets_split_exactly() {
        let shape = Shape::Closed {
            stages: vec![
                Stage {
                    duration: s(10.0),
                    target: 1000,
                },
                Stage {
                    duration: s(5.0),
                    target: 1000,
                },
                Stage {
                    duration: s(7.0),
                    target: 333,
                },
            ],
        };
        let end = s(30.0);
        let active = |slot: u32, t: Duration| {
            shape
                .active_intervals(slot, end)
                .iter()
                .any(|(a, b)| *a <= t && t < *b)
        };
        for tenth in 0..300 {
            let t = s(f64::from(tenth) / 10.0 + 0.05);
            let whole = (0..1000).filter(|slot| active(*slot, t)).count();
            let shards: usize = (0..7)
                .map(|i| {
                    let slice = Slice::new(i, 7).unwrap();
                    ids(slice, 0, 1, 1000)
                        .into_iter()
                        .filter(|slot| active(*slot as u32, t))
                        .count()
                })
                .sum();
            assert_eq!(shards, whole, "at {t:?}");
        }
    }

    /// An open model: 10 arrivals a second over 3 shards add up to the single run's
    /// arrivals, by any time.
    #[test]
    fn arrival_rates_split_exactly() {
        let shape = Shape::Open {
            start_rate: 10.0,
            stages: vec![RateStage {
                duration: s(7.0),
                rate: 10.0,
            }],
            max_sessions: 100,
        };
        let end = s(7.0);
        let whole: Vec<Duration> = (0..1000)
            .filter_map(|m| shape.arrival_due(m, end))
            .collect();
        assert_eq!(whole.len(), 70);
        let per_shard: Vec<usize> = (0..3)
            .map(|i| {
                ids(Slice::new(i, 3).unwrap(), 0, 1, 1000)
                    .into_iter()
                    .filter_map(|m| shape.arrival_due(m, end))
                    .count()
            })
            .collect();
        assert_eq!(per_shard, vec![24, 23, 23]);
        assert_eq!(per_shard.iter().sum::<usize>(), whole.len());
    }

    #[test]
    fn shards_parse() {
        assert_eq!(Slice::parse("2/3").unwrap(), Slice { index: 2, count: 3 });
        assert_eq!(Slice::parse(" 0 / 1 ").unwrap(), Slice::WHOLE);
        for bad in ["3/3", "1/0", "1", "a/3", "-1/3", "1/3/4"] {
            assert!(Slice::parse(bad).is_err(), "{bad}");
        }
        assert!(Slice::parse("3/3").unwrap_err().contains("numbered 0 to 2"));
    }
}
