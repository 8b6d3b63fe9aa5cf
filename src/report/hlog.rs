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

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriter, IntervalLogWriterBuilder, LogEntry, Tag,
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

/// The open log: one interval log writer for the file's whole life, so its headers are
/// written once, by the crate that knows the format.
pub type Log<'a, W> = IntervalLogWriter<'a, 'a, W, V2DeflateSerializer>;

/// The optional first line of the interval log format, as HdrHistogram's own tools write
/// it (the crate writes a comment as `#` and the text).
const FORMAT_VERSION: &str = "[Histogram log format version 1.3]";

/// Starts a log on `out` whose `StartTime` and `BaseTime` are the run's start: the format
/// version, a comment, the times and the value divisor (values are µs, maxima shown in
/// ms), each once.
pub fn begin<'a, W: Write>(
    out: &'a mut W,
    serializer: &'a mut V2DeflateSerializer,
    start_time: SystemTime,
) -> std::io::Result<Log<'a, W>> {
    IntervalLogWriterBuilder::new()
        .add_comment(FORMAT_VERSION)
        .add_comment("wsoak latency log: one tag per metric, values in microseconds")
        .with_start_time(start_time)
        .with_base_time(start_time)
        .with_max_value_divisor(1000.0)
        .begin_log_with(out, serializer)
}

/// Appends one interval's histograms, a line per tag.
pub fn write<W: Write>(log: &mut Log<'_, W>, interval: &Interval) -> std::io::Result<()> {
    for (tag, histogram) in &interval.histograms {
        let Some(tag) = Tag::new(tag) else { continue };
        log.write_histogram(histogram, interval.start, interval.length, Some(tag))
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    Ok(())
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

/// One histogram of a log, as read back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its tag: a metric or step name, or `custom.<name>`.
    pub tag: String,
    /// Its interval's start, since the log's start.
    pub start: Duration,
    /// Its interval's length.
    pub length: Duration,
    /// The histogram.
    pub histogram: Histogram<u64>,
}

/// A log's histograms, in order, a line at a time (for logs too long to hold decoded:
/// a merge of day-long shards), up to the first entry that cannot be read. Only I/O is
/// an error; [`Entries::skipped`] says what damage stopped the reading, if any.
pub struct Entries {
    path: std::path::PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    deserializer: Deserializer,
    line: Vec<u8>,
    /// Entries read so far.
    read: usize,
    /// Why reading stopped early, once it has.
    skipped: Option<String>,
}

impl Entries {
    /// Opens the log.
    pub fn open(path: &Path) -> Result<Entries, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Entries {
            path: path.to_path_buf(),
            reader: std::io::BufReader::new(file),
            deserializer: Deserializer::new(),
            line: Vec::new(),
            read: 0,
            skipped: None,
        })
    }

    /// What damage stopped the reading, for people; `None` when none did.
    pub fn skipped(&self) -> Option<String> {
        self.skipped.clone()
    }

    fn damaged(&mut self, problem: String) -> Option<Result<Entry, String>> {
        self.skipped = Some(format!(
            "{}: histogram entry {} cannot be read ({problem}); skipped it and the rest of \
             the log",
            self.path.display(),
            self.read + 1
        ));
        None
    }
}

impl Iterator for Entries {
    type Item = Result<Entry, String>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead as _;
        while self.skipped.is_none() {
            self.line.clear();
            match self.reader.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(format!("{}: {e}", self.path.display()))),
            }
            // The format's lines are independent: each is parsed alone, so only one
            // interval's histogram is ever decoded at a time.
            let entry = IntervalLogIterator::new(&self.line).next();
            let interval = match entry {
                None | Some(Ok(LogEntry::StartTime(_) | LogEntry::BaseTime(_))) => continue,
                Some(Ok(LogEntry::Interval(interval))) => interval,
                Some(Err(e)) => return self.damaged(format!("{e:?}")),
            };
            let decoded = base64_decode(interval.encoded_histogram()).and_then(|bytes| {
                self.deserializer
                    .deserialize::<u64, _>(&mut bytes.as_slice())
                    .map_err(|e| format!("{e:?}"))
            });
            let histogram = match decoded {
                Ok(h) => h,
                Err(problem) => return self.damaged(problem),
            };
            self.read += 1;
            return Some(Ok(Entry {
                tag: interval.tag().map_or("", |t| t.as_str()).to_owned(),
                start: interval.start_timestamp(),
                length: interval.duration(),
                histogram,
            }));
        }
        None
    }
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
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads standard base64, padded or not (logs written by other tools may leave the
/// padding out).
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|e| format!("not base64: {e}"))
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
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut log = begin(&mut out, &mut serializer, start).unwrap();
            for i in 0..3 {
                write(
                    &mut log,
                    &Interval {
                        start: Duration::from_secs(i),
                        length: Duration::from_secs(1),
                        histograms: vec![
                            ("heartbeat".into(), a.clone()),
                            ("custom.push".into(), b.clone()),
                        ],
                    },
                )
                .unwrap();
            }
        }
        let text = String::from_utf8(out.clone()).unwrap();
        // Every header once, the format version first, as HdrHistogram's tools expect.
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        for header in ["#[StartTime", "#[BaseTime", "#[MaxValueDivisor"] {
            assert_eq!(text.matches(header).count(), 1, "{text}");
        }
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
