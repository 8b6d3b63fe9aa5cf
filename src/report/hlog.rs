//! `latency.hlog`: the lossless record of every latency, in the standard HdrHistogram
//! interval log format (V2-compressed base64 histograms, `StartTime`/`BaseTime` headers,
//! one tag per metric). HdrHistogram's own tools read it; `wsoak report` rebuilds totals
//! from it after a crash, and later merges and comparisons rely on it.
//!
//! Values are microseconds; `MaxValueDivisor: 1000` makes the max column read in ms.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// One interval's histograms, by tag, as the writer thread receives them.
pub struct Interval {
    /// Start of the interval, since the run's start.
    pub start: Duration,
    /// Length of the interval.
    pub length: Duration,
    /// Histograms with samples, by tag (metric name, or `custom.<name>`).
    pub histograms: Vec<(String, Histogram<u64>)>,
}

/// Writes interval histograms as they come; owned by the interval writer thread.
pub struct Writer<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    started: bool,
    start_time: SystemTime,
}

impl<W: Write> Writer<W> {
    /// A log whose `StartTime` and `BaseTime` are the run's start.
    pub fn new(out: W, start_time: SystemTime) -> Writer<W> {
        Writer {
            out,
            serializer: V2DeflateSerializer::new(),
            started: false,
            start_time,
        }
    }

    /// Appends one interval (and the headers, the first time).
    pub fn write(&mut self, interval: &Interval) -> std::io::Result<()> {
        let mut builder = IntervalLogWriterBuilder::new();
        if !self.started {
            builder
                .add_comment("wsoak latency log: one tag per metric, values in microseconds")
                .with_start_time(self.start_time)
                .with_base_time(self.start_time);
        }
        builder.with_max_value_divisor(1000.0);
        let mut buffer = Vec::new();
        {
            let mut log = builder.begin_log_with(&mut buffer, &mut self.serializer)?;
            for (tag, histogram) in &interval.histograms {
                let Some(tag) = Tag::new(tag) else { continue };
                log.write_histogram(histogram, interval.start, interval.length, Some(tag))
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            }
        }
        if !self.started {
            self.started = true;
        } else {
            // The builder repeats the divisor header on every call; keep only the first.
            buffer = strip_headers(&buffer);
        }
        self.out.write_all(&buffer)?;
        self.out.flush()
    }
}

fn strip_headers(buffer: &[u8]) -> Vec<u8> {
    buffer
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| !line.starts_with(b"#"))
        .flatten()
        .copied()
        .collect()
}

/// Every tag's histograms, merged.
pub type Totals = BTreeMap<String, Histogram<u64>>;

/// Reads a log back: every tag's histograms merged, exactly.
pub fn read_totals(path: &Path) -> Result<Totals, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut totals = Totals::new();
    for_each(&bytes, |tag, _, histogram| add(&mut totals, tag, histogram))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(totals)
}

/// Reads a possibly damaged log: every tag's histograms merged, for the intervals that end
/// by `until` (the end of the valid interval lines), up to the first entry that cannot
/// be read (a line cut short by a kill, or corrupted). Returns the totals, and what was
/// skipped (for people) when anything was. Only I/O is an error.
pub fn read_totals_prefix(
    path: &Path,
    until: Duration,
) -> Result<(Totals, Option<String>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut totals = Totals::new();
    let mut later = 0u64;
    // Interval ends are written to the millisecond; the lines' `t` too.
    let until = until + Duration::from_millis(1);
    for (n, entry) in intervals(&bytes).enumerate() {
        let added = entry.and_then(|(tag, start, length, histogram)| {
            if start + length > until {
                later += 1;
                return Ok(());
            }
            add(&mut totals, &tag, histogram)
        });
        if let Err(problem) = added {
            let note = format!(
                "{}: histogram entry {} cannot be read ({problem}); skipped it and the rest \
                 of the log",
                path.display(),
                n + 1
            );
            return Ok((totals, Some(note)));
        }
    }
    let note = (later > 0).then(|| {
        format!(
            "{}: skipped {later} histograms of intervals after the last valid interval line",
            path.display()
        )
    });
    Ok((totals, note))
}

/// Merges one interval's histogram into the totals of its tag.
fn add(totals: &mut Totals, tag: &str, histogram: Histogram<u64>) -> Result<(), String> {
    match totals.get_mut(tag) {
        Some(total) => total.add(&histogram).map_err(|e| format!("{e:?}")),
        None => {
            totals.insert(tag.to_owned(), histogram);
            Ok(())
        }
    }
}

/// Calls `f(tag, start, histogram)` for every interval histogram in a log.
pub fn for_each(
    bytes: &[u8],
    mut f: impl FnMut(&str, Duration, Histogram<u64>) -> Result<(), String>,
) -> Result<(), String> {
    for entry in intervals(bytes) {
        let (tag, start, _, histogram) = entry?;
        f(&tag, start, histogram)?;
    }
    Ok(())
}

/// A log's interval histograms, in order and decoded, as `(tag, start, length,
/// histogram)`, or what made an entry unreadable.
fn intervals(
    bytes: &[u8],
) -> impl Iterator<Item = Result<(String, Duration, Duration, Histogram<u64>), String>> + '_ {
    let mut deserializer = Deserializer::new();
    IntervalLogIterator::new(bytes).filter_map(move |entry| match entry {
        Err(e) => Some(Err(format!("{e:?}"))),
        Ok(LogEntry::Interval(interval)) => Some(
            base64_decode(interval.encoded_histogram())
                .and_then(|decoded| {
                    deserializer
                        .deserialize::<u64, _>(&mut decoded.as_slice())
                        .map_err(|e| format!("{e:?}"))
                })
                .map(|histogram| {
                    let tag = interval.tag().map_or("", |t| t.as_str()).to_owned();
                    (
                        tag,
                        interval.start_timestamp(),
                        interval.duration(),
                        histogram,
                    )
                }),
        ),
        Ok(_) => None,
    })
}

/// One histogram as the log writes it: V2-deflate serialised, then base64. Lossless, so
/// histograms can travel as text (`wsoak serve --workers` sends its workers' holds so)
/// and still merge exactly.
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serialising into memory cannot fail");
    base64_encode(&bytes)
}

/// Reads back what [`encode_histogram`] wrote.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64_decode(text)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{e:?}"))
}

/// Standard base64 with padding, the interval log's encoding.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(acc >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (the interval log's encoding), without a dependency for 20 lines.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = value(*c).ok_or_else(|| format!("invalid base64 byte {c}"))?;
            acc |= v << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip_exactly() {
        let mut a = crate::metrics::new_histogram();
        let mut b = crate::metrics::new_histogram();
        for v in [120u64, 450, 9_000, 1_000_000] {
            a.record(v).unwrap();
        }
        b.record(77).unwrap();
        let mut out = Vec::new();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut writer = Writer::new(&mut out, start);
        for i in 0..3 {
            writer
                .write(&Interval {
                    start: Duration::from_secs(i),
                    length: Duration::from_secs(1),
                    histograms: vec![
                        ("heartbeat".into(), a.clone()),
                        ("custom.push".into(), b.clone()),
                    ],
                })
                .unwrap();
        }
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.matches("#[StartTime").count(), 1, "{text}");
        assert_eq!(text.matches("Tag=heartbeat,").count(), 3, "{text}");
        let path = std::env::temp_dir().join(format!("wsoak-hlog-{}.hlog", std::process::id()));
        std::fs::write(&path, &out).unwrap();
        let totals = read_totals(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let hb = &totals["heartbeat"];
        assert_eq!(hb.len(), 12);
        assert_eq!(hb.value_at_quantile(0.99), a.value_at_quantile(0.99));
        assert_eq!(totals["custom.push"].len(), 3);
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*==").is_err());
    }

    #[test]
    fn base64_encodes_what_it_decodes() {
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_encode(b"hi"), "aGk=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_encode(b""), "");
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn a_histogram_travels_as_text_exactly() {
        let mut h = crate::metrics::new_histogram();
        for v in [1u64, 77, 1_234, 50_000, 3_600_000_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert!(decode_histogram("aGk=").is_err());
    }
}
