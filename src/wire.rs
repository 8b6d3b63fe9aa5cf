//! The bytes a worker process writes to its stdout for its parent: [`Frame`]s, framed and
//! encoded so that the parent reads back exactly what was measured, or refuses the stream
//! with a reason a person can act on.
//!
//! This module owns the wire format only. It must not start processes, flush (the caller
//! decides when), or decide what a frame means to the run: the parent merges an interval's
//! [`Recorder`] as it merges its own shards' [`Snapshot`](crate::metrics::Snapshot)s.
//!
//! # Layout
//!
//! A frame is a 9-byte header and a payload:
//!
//! | bytes | what                                                              |
//! |-------|-------------------------------------------------------------------|
//! | 4     | magic and version: `WSK1`                                         |
//! | 1     | kind: 1 hello, 2 gate, 3 interval, 4 fatal                        |
//! | 4     | payload length, u32 little-endian, at most [`MAX_PAYLOAD`]        |
//! | n     | the payload                                                       |
//!
//! In payloads, integers are little-endian (an `f64` as its IEEE 754 bits), a flag is one
//! byte 0 or 1, an option is a flag and then the value when it is 1, a string is a u32
//! length and UTF-8, a list is a u32 count and its items, and a histogram is a u32 length
//! and the standard HdrHistogram V2-compressed (deflate) encoding, as in `latency.hlog`.
//!
//! - hello: pid u32, shards u32.
//! - gate: 0 (connected), or 1, the [`ErrorKind`] name and the detail as strings.
//! - fatal: the message, UTF-8: the whole payload.
//! - interval: seq u64, last flag, gauges (list of state name, i64), peak_active i64,
//!   peak_rss_kib option u64, cpu_s option f64, then the recorder: latency histograms
//!   (list of metric name, histogram); steps in order (list of name, latency histogram,
//!   then reached, rejected, timed_out, rejected_reconnects and sessions as u64); counters,
//!   reconnects and errors (three lists of name, u64); script_errors (list of hook name,
//!   u64); custom_counters (list of name, u64); custom_latencies (list of name,
//!   histogram); internal (list of strings).
//!
//! Fixed sets (metrics, counters, causes, error kinds, states) travel by name, and only
//! their non-zero entries: a reader looks names up, never positions, so a build with the
//! names in another order cannot shift a count into the wrong slot. A name the reader does
//! not know, or a name listed twice, is an error.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, OnceLock};

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::metrics::{
    check_step_name, new_histogram, Cause, Counter, ErrorKind, Gauges, Metric, Recorder, State,
    StepRecord, MAX_CUSTOM, MAX_INTERNAL, MAX_STEPS,
};
use crate::script::Hook;

/// The first four bytes of every frame: what the stream is, and which version of it.
pub const MAGIC: [u8; 4] = *b"WSK1";

/// The largest payload a frame may carry (64 MiB). A reader refuses a larger length before
/// allocating anything, so a corrupt length cannot exhaust the parent's memory; an
/// interval's recorder is a few kilobytes.
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// Magic, kind and length.
const HEADER_LEN: usize = 9;

const HELLO: u8 = 1;
const GATE: u8 = 2;
const INTERVAL: u8 = 3;
const FATAL: u8 = 4;

/// The cookie that opens HdrHistogram's V2-compressed encoding (big-endian, as the
/// encoding writes it). The crate keeps its constant private.
const HISTOGRAM_COOKIE: u32 = 0x1c84_9314;

/// What a worker process tells its parent.
// A worker sends a few frames a second, each read and consumed at once: boxing the
// interval would cost an allocation and a `*` at every match for no saving that shows.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Frame {
    /// The worker started and runs this many shards.
    Hello {
        /// The worker's process id.
        pid: u32,
        /// How many shards it runs.
        shards: u32,
    },
    /// The outcome of the run's first connect. Only worker 0 sends it.
    Gate(Result<(), GateFailure>),
    /// One interval of the worker's measurements, its shards merged.
    Interval(WorkerInterval),
    /// The worker cannot go on, and says why before it exits.
    Fatal(String),
}

/// Why the run's first connect failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateFailure {
    /// An [`ErrorKind`] name.
    pub kind: String,
    /// What went wrong, for people.
    pub detail: String,
}

/// One interval of a worker's measurements.
#[derive(Debug, Clone)]
pub struct WorkerInterval {
    /// The interval's number, from 0, as in [`Snapshot::seq`](crate::metrics::Snapshot).
    pub seq: u64,
    /// True for the worker's last interval: all its sessions have ended.
    pub last: bool,
    /// Live sessions per state at the end of the interval, summed over the worker's shards.
    pub gauges: Gauges,
    /// The most sessions with an open socket in the worker during the interval.
    pub peak_active: i64,
    /// The worker process's peak resident memory so far, in KiB, where the platform says.
    pub peak_rss_kib: Option<u64>,
    /// The worker process's CPU time so far, in seconds, where the platform says.
    pub cpu_s: Option<f64>,
    /// The interval's measurements, the worker's shards merged.
    pub recorder: Recorder,
}

/// Why a worker's stream of frames cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Reading the pipe failed.
    #[error("cannot read the worker's output: {0}")]
    Io(#[from] io::Error),
    /// The stream ended inside a frame.
    #[error(
        "the worker's output ends {got} bytes into a frame of {wanted}: the worker exited or \
         was killed while writing it"
    )]
    Truncated {
        /// Bytes of the frame that arrived.
        got: usize,
        /// Bytes the frame should have (just the header, when the header was cut).
        wanted: usize,
    },
    /// The stream does not start with [`MAGIC`] where a frame should begin.
    #[error(
        "the worker's output is not wsoak frames (a frame begins \"{found}\", not \"WSK1\"): \
         something else wrote to the worker's stdout, or the worker is another wsoak version"
    )]
    BadMagic {
        /// The bytes found instead, escaped.
        found: String,
    },
    /// The header claims a payload over [`MAX_PAYLOAD`].
    #[error(
        "the worker's frame claims {len} bytes, over the {} MiB limit: its output is corrupt",
        MAX_PAYLOAD >> 20
    )]
    TooLarge {
        /// The length claimed.
        len: u32,
    },
    /// A kind this build does not know.
    #[error("the worker sent a frame of unknown kind {kind}: it is another wsoak version")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// The payload does not decode as its kind.
    #[error(
        "the worker's {frame} frame cannot be decoded ({problem}): the worker is another \
         wsoak version, or its output is corrupt"
    )]
    Payload {
        /// The frame's kind, by name.
        frame: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Hello { .. } => HELLO,
            Frame::Gate(_) => GATE,
            Frame::Interval(_) => INTERVAL,
            Frame::Fatal(_) => FATAL,
        }
    }
}

fn kind_name(kind: u8) -> Option<&'static str> {
    match kind {
        HELLO => Some("hello"),
        GATE => Some("gate"),
        INTERVAL => Some("interval"),
        FATAL => Some("fatal"),
        _ => None,
    }
}

/// Writes one frame with a single `write_all`: on a writer that locks per call, such as
/// `Stdout`, another thread's frame cannot land inside this one. Does not flush. Fails,
/// writing nothing, when the payload would be over [`MAX_PAYLOAD`].
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> io::Result<()> {
    w.write_all(&encode(frame)?)
}

/// Reads one frame: `Ok(None)` when the stream ends cleanly between frames.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, WireError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    // The magic is checked on whatever arrived before the header is called short: stray
    // text on the worker's stdout is the likelier fault, and naming it says more.
    let seen = got.min(MAGIC.len());
    if header[..seen] != MAGIC[..seen] {
        return Err(WireError::BadMagic {
            found: header[..seen].escape_ascii().to_string(),
        });
    }
    if got < HEADER_LEN {
        return Err(WireError::Truncated {
            got,
            wanted: HEADER_LEN,
        });
    }
    let kind = header[4];
    let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    let frame = kind_name(kind).ok_or(WireError::UnknownKind { kind })?;
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge { len });
    }
    // Read through `take` instead of allocating `len` bytes up front: a frame cut short
    // costs only the bytes that arrived.
    let mut payload = Vec::new();
    r.by_ref().take(u64::from(len)).read_to_end(&mut payload)?;
    let len = len as usize;
    if payload.len() < len {
        return Err(WireError::Truncated {
            got: HEADER_LEN + payload.len(),
            wanted: HEADER_LEN + len,
        });
    }
    decode(kind, &payload)
        .map(Some)
        .map_err(|problem| WireError::Payload { frame, problem })
}

/// Fills `buf` unless the stream ends first; returns how much it filled.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A whole frame, header included.
fn encode(frame: &Frame) -> io::Result<Vec<u8>> {
    let mut e = Encoder {
        buf: Vec::with_capacity(256),
        serializer: V2DeflateSerializer::new(),
    };
    e.buf.extend_from_slice(&MAGIC);
    e.u8(frame.kind());
    e.u32(0); // the length, filled in below
    match frame {
        Frame::Hello { pid, shards } => {
            e.u32(*pid);
            e.u32(*shards);
        }
        Frame::Gate(Ok(())) => e.u8(0),
        Frame::Gate(Err(failure)) => {
            e.u8(1);
            e.str(&failure.kind);
            e.str(&failure.detail);
        }
        Frame::Interval(interval) => e.interval(interval)?,
        Frame::Fatal(message) => e.buf.extend_from_slice(message.as_bytes()),
    }
    let len = e.buf.len() - HEADER_LEN;
    let len = u32::try_from(len)
        .ok()
        .filter(|len| *len <= MAX_PAYLOAD)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {} frame of {len} bytes is over the {} MiB limit",
                    kind_name(frame.kind()).unwrap_or("?"),
                    MAX_PAYLOAD >> 20
                ),
            )
        })?;
    e.buf[5..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
    Ok(e.buf)
}

struct Encoder {
    buf: Vec<u8>,
    serializer: V2DeflateSerializer,
}

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A length or count. One over `u32::MAX` cannot be written, but neither can its frame:
    /// the payload is then over [`MAX_PAYLOAD`] and `encode` refuses it.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn histogram(&mut self, h: &Histogram<u64>) -> io::Result<()> {
        let at = self.buf.len();
        self.u32(0); // the length, filled in below
        self.serializer
            .serialize(h, &mut self.buf)
            .map_err(|e| io::Error::other(format!("cannot encode a histogram: {e:?}")))?;
        let len = u32::try_from(self.buf.len() - at - 4).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    /// A fixed set's non-zero counts, by name.
    fn counts(&mut self, counts: impl Iterator<Item = (&'static str, u64)>) {
        let counts: Vec<_> = counts.filter(|(_, n)| *n != 0).collect();
        self.len(counts.len());
        for (name, n) in counts {
            self.str(name);
            self.u64(n);
        }
    }

    fn interval(&mut self, i: &WorkerInterval) -> io::Result<()> {
        self.u64(i.seq);
        self.u8(u8::from(i.last));
        let gauges: Vec<_> = State::ALL
            .iter()
            .map(|s| (s.name(), i.gauges[s.index()]))
            .filter(|(_, n)| *n != 0)
            .collect();
        self.len(gauges.len());
        for (name, n) in gauges {
            self.str(name);
            self.i64(n);
        }
        self.i64(i.peak_active);
        match i.peak_rss_kib {
            None => self.u8(0),
            Some(kib) => {
                self.u8(1);
                self.u64(kib);
            }
        }
        match i.cpu_s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.u64(s.to_bits());
            }
        }
        self.recorder(&i.recorder)
    }

    fn recorder(&mut self, r: &Recorder) -> io::Result<()> {
        let histograms: Vec<_> = Metric::ALL
            .iter()
            .zip(&r.histograms)
            .filter(|(_, h)| !h.is_empty())
            .collect();
        self.len(histograms.len());
        for (metric, h) in histograms {
            self.str(metric.name());
            self.histogram(h)?;
        }
        self.len(r.steps.len());
        for step in &r.steps {
            self.str(&step.name);
            self.histogram(&step.latency)?;
            for n in [
                step.reached,
                step.rejected,
                step.timed_out,
                step.rejected_reconnects,
                step.sessions,
            ] {
                self.u64(n);
            }
        }
        self.counts(
            Counter::ALL
                .iter()
                .map(|c| (c.name(), r.counters[c.index()])),
        );
        self.counts(
            Cause::ALL
                .iter()
                .map(|c| (c.name(), r.reconnects[c.index()])),
        );
        self.counts(
            ErrorKind::ALL
                .iter()
                .map(|k| (k.name(), r.errors[k.index()])),
        );
        self.len(r.script_errors.len());
        for (hook, n) in &r.script_errors {
            self.str(hook);
            self.u64(*n);
        }
        self.len(r.custom_counters.len());
        for (name, n) in &r.custom_counters {
            self.str(name);
            self.u64(*n);
        }
        self.len(r.custom_latencies.len());
        for (name, h) in &r.custom_latencies {
            self.str(name);
            self.histogram(h)?;
        }
        self.len(r.internal.len());
        for message in &r.internal {
            self.str(message);
        }
        Ok(())
    }
}

/// A payload of the given kind, or what is wrong with it (for [`WireError::Payload`]).
fn decode(kind: u8, payload: &[u8]) -> Result<Frame, String> {
    let mut d = Decoder { rest: payload };
    let frame = match kind {
        HELLO => Frame::Hello {
            pid: d.u32("the pid")?,
            shards: d.u32("the shard count")?,
        },
        GATE => Frame::Gate(match d.u8("the outcome")? {
            0 => Ok(()),
            1 => {
                let kind = d.str("the error kind")?;
                if !ErrorKind::ALL.iter().any(|k| k.name() == kind) {
                    return Err(format!("`{kind}` is not an error kind"));
                }
                Err(GateFailure {
                    kind: kind.to_owned(),
                    detail: d.str("the detail")?.to_owned(),
                })
            }
            b => {
                return Err(format!(
                    "its outcome is {b}, not 0 (connected) or 1 (failed)"
                ))
            }
        }),
        INTERVAL => Frame::Interval(d.interval()?),
        FATAL => {
            let message = std::str::from_utf8(payload).map_err(|_| "it is not UTF-8")?;
            return Ok(Frame::Fatal(message.to_owned()));
        }
        _ => return Err(format!("kind {kind} is unknown")),
    };
    if !d.rest.is_empty() {
        let n = d.rest.len();
        return Err(format!(
            "it has {n} byte{} past its end",
            if n == 1 { "" } else { "s" }
        ));
    }
    Ok(frame)
}

/// Reads a payload front to back. Every read checks that its bytes are there, so decoding
/// never indexes past the end, and every list's count is capped at what a recorder holds,
/// so a corrupt count cannot make it loop or allocate without end.
struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err(format!("it ends inside {what}"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.array(what).map(i64::from_le_bytes)
    }

    fn flag(&mut self, what: &str) -> Result<bool, String> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{what} is {b}, not 0 or 1")),
        }
    }

    fn option<T>(
        &mut self,
        what: &str,
        value: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.flag(what)? {
            false => Ok(None),
            true => value(self).map(Some),
        }
    }

    fn str(&mut self, what: &str) -> Result<&'a str, String> {
        let len = self.u32(what)? as usize;
        std::str::from_utf8(self.take(len, what)?).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// A list's length, refused over `max`: no recorder holds more, so more is corruption.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, String> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(format!(
                "it lists {n} {what}, more than the {max} a recorder holds"
            ));
        }
        Ok(n)
    }

    /// A fixed set's values by name (absent names are zero), given each name's index.
    fn fixed<T: Copy + Default, const N: usize>(
        &mut self,
        what: &str,
        index_of: impl Fn(&str) -> Option<usize>,
        value: impl Fn(&mut Self) -> Result<T, String>,
    ) -> Result<[T; N], String> {
        let mut values = [T::default(); N];
        let mut seen = [false; N];
        for _ in 0..self.count(what, N)? {
            let name = self.str(what)?;
            let i = index_of(name)
                .filter(|i| *i < N)
                .ok_or_else(|| format!("{what} have no `{name}`"))?;
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("{what} list `{name}` twice"));
            }
            values[i] = value(self)?;
        }
        Ok(values)
    }

    fn histogram(&mut self, what: &str) -> Result<Histogram<u64>, String> {
        let len = self.u32(what)? as usize;
        let bytes = self.take(len, what)?;
        // The V2-compressed header is the cookie and the deflated length: checking both
        // first refuses a misplaced or cut histogram before anything is inflated.
        let [c0, c1, c2, c3, d0, d1, d2, d3, ..] = *bytes else {
            return Err(format!("{what} is too short to be a histogram"));
        };
        if u32::from_be_bytes([c0, c1, c2, c3]) != HISTOGRAM_COOKIE {
            return Err(format!(
                "{what} is not an HdrHistogram V2-compressed histogram"
            ));
        }
        if u32::from_be_bytes([d0, d1, d2, d3]) as usize != bytes.len() - 8 {
            return Err(format!(
                "{what} has a deflated length that disagrees with its own"
            ));
        }
        // hdrhistogram's decoder negates a run of zeros read from the input, which
        // overflows on a run of i64::MIN: a panic where overflow checks are on. A bad
        // histogram must be an error, never a crash of the parent. (One limit remains:
        // the inflated header's own length, up to 4 GiB, is allocated before it is read.
        // Only a crafted histogram gets there, and the worker is this binary.)
        let decoded =
            std::panic::catch_unwind(|| Deserializer::new().deserialize::<u64, _>(&mut &bytes[..]));
        let h = match decoded {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(format!("{what} cannot be decoded: {e}")),
            Err(_) => return Err(format!("{what} cannot be decoded")),
        };
        // `Recorder::merge` adds histograms and expects them to share bounds.
        let (low, high, sigfig) = *standard_bounds();
        if (h.low(), h.high(), h.sigfig()) != (low, high, sigfig) {
            return Err(format!(
                "{what} tracks {}..={} at {} digits, not wsoak's {low}..={high} at {sigfig}",
                h.low(),
                h.high(),
                h.sigfig()
            ));
        }
        Ok(h)
    }

    fn interval(&mut self) -> Result<WorkerInterval, String> {
        // Struct fields are evaluated in the order written: the payload's order.
        Ok(WorkerInterval {
            seq: self.u64("seq")?,
            last: self.flag("last")?,
            gauges: self.fixed("gauges", state_index, |d| d.i64("a gauge"))?,
            peak_active: self.i64("peak_active")?,
            peak_rss_kib: self.option("peak_rss_kib", |d| d.u64("peak_rss_kib"))?,
            cpu_s: self.option("cpu_s", |d| d.u64("cpu_s").map(f64::from_bits))?,
            recorder: self.recorder()?,
        })
    }

    fn recorder(&mut self) -> Result<Recorder, String> {
        let mut histograms: Vec<Option<Histogram<u64>>> = vec![None; Metric::COUNT];
        for _ in 0..self.count("latencies", Metric::COUNT)? {
            let name = self.str("a latency's name")?;
            let metric = Metric::ALL
                .iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| format!("latencies have no `{name}`"))?;
            let slot = &mut histograms[metric.index()];
            if slot.is_some() {
                return Err(format!("latencies list `{name}` twice"));
            }
            *slot = Some(self.histogram(name)?);
        }
        let histograms = histograms
            .into_iter()
            .map(|h| h.unwrap_or_else(new_histogram))
            .collect();

        let mut steps: Vec<StepRecord> = Vec::new();
        for _ in 0..self.count("steps", MAX_STEPS)? {
            let name = self.str("a step's name")?;
            check_step_name(name)?;
            if steps.iter().any(|s| &*s.name == name) {
                return Err(format!("steps list `{name}` twice"));
            }
            steps.push(StepRecord {
                name: Arc::from(name),
                latency: self.histogram(name)?,
                reached: self.u64("a step's count")?,
                rejected: self.u64("a step's count")?,
                timed_out: self.u64("a step's count")?,
                rejected_reconnects: self.u64("a step's count")?,
                sessions: self.u64("a step's count")?,
            });
        }

        let counters = self.fixed("counters", counter_index, |d| d.u64("a counter"))?;
        let reconnects = self.fixed("reconnect causes", cause_index, |d| d.u64("a cause"))?;
        let errors = self.fixed("error kinds", kind_index, |d| d.u64("an error count"))?;

        // A key is the interned name of a hook that exists, so that an error count merges
        // with the parent's own under the same key; a name no hook has is refused rather
        // than leaked into the interned set.
        let hooks = Hook::FIXED.len() + 2 + 2 * steps.len();
        let mut script_errors = BTreeMap::new();
        for _ in 0..self.count("script errors", hooks)? {
            let name = self.str("a hook's name")?;
            let hook = crate::metrics::script_error_key(name, &steps)
                .ok_or_else(|| format!("no hook is `{name}`"))?;
            if script_errors
                .insert(hook, self.u64("a script error count")?)
                .is_some()
            {
                return Err(format!("script errors list `{name}` twice"));
            }
        }

        let mut custom_counters = BTreeMap::new();
        for _ in 0..self.count("custom counters", MAX_CUSTOM)? {
            let name = self.str("a custom counter's name")?;
            let n = self.u64("a custom counter")?;
            if custom_counters.insert(name.to_owned(), n).is_some() {
                return Err(format!("custom counters list `{name}` twice"));
            }
        }

        let mut custom_latencies = BTreeMap::new();
        for _ in 0..self.count("custom latencies", MAX_CUSTOM)? {
            let name = self.str("a custom latency's name")?;
            let h = self.histogram(name)?;
            if custom_latencies.insert(name.to_owned(), h).is_some() {
                return Err(format!("custom latencies list `{name}` twice"));
            }
        }

        let mut internal = Vec::new();
        for _ in 0..self.count("internal error messages", MAX_INTERNAL)? {
            internal.push(self.str("an internal error message")?.to_owned());
        }

        Ok(Recorder {
            histograms,
            steps,
            counters,
            reconnects,
            errors,
            script_errors,
            custom_counters,
            custom_latencies,
            internal,
        })
    }
}

fn state_index(name: &str) -> Option<usize> {
    State::ALL
        .iter()
        .find(|s| s.name() == name)
        .map(|s| s.index())
}

fn counter_index(name: &str) -> Option<usize> {
    Counter::ALL
        .iter()
        .find(|c| c.name() == name)
        .map(|c| c.index())
}

fn cause_index(name: &str) -> Option<usize> {
    Cause::ALL
        .iter()
        .find(|c| c.name() == name)
        .map(|c| c.index())
}

fn kind_index(name: &str) -> Option<usize> {
    ErrorKind::ALL
        .iter()
        .find(|k| k.name() == name)
        .map(|k| k.index())
}

/// Lowest, highest and significant figures of [`new_histogram`], which every histogram
/// of a recorder has.
fn standard_bounds() -> &'static (u64, u64, u8) {
    static BOUNDS: OnceLock<(u64, u64, u8)> = OnceLock::new();
    BOUNDS.get_or_init(|| {
        let h = new_histogram();
        (h.low(), h.high(), h.sigfig())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::SCRIPT_FAIL;

    const STEPS: [&str; 2] = ["auth", "bind_card"];

    /// A recorder with every field non-empty.
    fn full_recorder() -> Recorder {
        let steps: Vec<Arc<str>> = STEPS.iter().map(|s| Arc::from(*s)).collect();
        let mut r = Recorder::for_steps(&steps);
        for us in [100, 250, 40_000] {
            r.record(Metric::Heartbeat, Duration::from_micros(us));
        }
        r.record(Metric::Connect, Duration::from_millis(12));
        r.record(Metric::Reconnect, Duration::from_secs(3));
        r.step_accepted(0, Duration::from_micros(900));
        r.step_accepted(0, Duration::from_micros(1_100));
        r.step_accepted(1, Duration::from_micros(2_000));
        let auth = r.step(0);
        auth.reached = 5;
        auth.rejected = 1;
        auth.timed_out = 2;
        auth.rejected_reconnects = 1;
        auth.sessions = 3;
        let bind_card = r.step(1);
        bind_card.reached = 1;
        bind_card.sessions = 1;
        for c in [
            Counter::SessionsStarted,
            Counter::HeartbeatsSent,
            Counter::HeartbeatsSent,
            Counter::ArrivalsLate,
        ] {
            r.count(c);
        }
        r.reconnect(Cause::Heartbeat);
        r.reconnect(Cause::ServerClose);
        r.reconnect(Cause::ServerClose);
        r.error(ErrorKind::Tls);
        r.error(ErrorKind::HeartbeatTimeout);
        r.script_error(Hook::ON_MESSAGE.name(), false);
        r.script_error(Hook::judge("auth").name(), true);
        r.script_error(SCRIPT_FAIL, false);
        r.custom_count("kicked");
        r.custom_count("kicked");
        r.custom_count("pushed");
        r.custom_record("order_push", Duration::from_micros(3_300));
        r.custom_record("order_push", Duration::from_millis(7));
        r.internal("shard 0 panicked: boom".into());
        r.internal("a session panicked: index out of bounds".into());
        r
    }

    fn full_interval() -> WorkerInterval {
        WorkerInterval {
            seq: 7,
            last: true,
            gauges: [1, 2, 30, 4, 5],
            peak_active: 33,
            peak_rss_kib: Some(123_456),
            cpu_s: Some(1.25),
            recorder: full_recorder(),
        }
    }

    fn empty_interval() -> WorkerInterval {
        WorkerInterval {
            seq: 0,
            last: false,
            gauges: [0; State::COUNT],
            peak_active: 0,
            peak_rss_kib: None,
            cpu_s: None,
            recorder: Recorder::new(),
        }
    }

    /// One frame of every kind, and the edge of each (empty interval, empty message).
    fn every_frame() -> Vec<Frame> {
        vec![
            Frame::Hello {
                pid: 4242,
                shards: 3,
            },
            Frame::Gate(Ok(())),
            Frame::Gate(Err(GateFailure {
                kind: "connect_refused".into(),
                detail: "127.0.0.1:9: Connection refused (os error 111)".into(),
            })),
            Frame::Interval(full_interval()),
            Frame::Interval(empty_interval()),
            Frame::Fatal("cannot bind 10.0.0.9: address not available".into()),
            Frame::Fatal(String::new()),
        ]
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, frame).unwrap();
        out
    }

    fn round_trip(frame: &Frame) -> Frame {
        let bytes = encoded(frame);
        let mut r = bytes.as_slice();
        let back = read_frame(&mut r).unwrap().expect("a frame");
        assert!(r.is_empty(), "{} bytes left unread", r.len());
        back
    }

    fn recorder_round_trip(recorder: &Recorder) -> Recorder {
        let frame = Frame::Interval(WorkerInterval {
            recorder: recorder.clone(),
            ..empty_interval()
        });
        match round_trip(&frame) {
            Frame::Interval(i) => i.recorder,
            other => panic!("{other:?}"),
        }
    }

    /// A frame with this header and payload, as a worker of another build might send.
    fn raw_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn encoder() -> Encoder {
        Encoder {
            buf: Vec::new(),
            serializer: V2DeflateSerializer::new(),
        }
    }

    fn problem(bytes: &[u8]) -> String {
        match read_frame(&mut &bytes[..]) {
            Err(WireError::Payload { problem, .. }) => problem,
            other => panic!("expected a payload error, got {other:?}"),
        }
    }

    fn assert_same_histogram(what: &str, a: &Histogram<u64>, b: &Histogram<u64>) {
        assert!(a == b, "{what}: histograms differ");
        assert_eq!(a.len(), b.len(), "{what}");
        assert_eq!(a.min(), b.min(), "{what}");
        assert_eq!(a.max(), b.max(), "{what}");
        assert_eq!(
            a.value_at_quantile(0.99),
            b.value_at_quantile(0.99),
            "{what}"
        );
        // `==` does not compare the highest trackable value; `merge` relies on it.
        assert_eq!(
            (a.low(), a.high(), a.sigfig()),
            (b.low(), b.high(), b.sigfig())
        );
    }

    fn assert_same_recorder(a: &Recorder, b: &Recorder) {
        assert_eq!(a.histograms.len(), b.histograms.len());
        for ((m, x), y) in Metric::ALL.iter().zip(&a.histograms).zip(&b.histograms) {
            assert_same_histogram(m.name(), x, y);
        }
        assert_eq!(a.steps.len(), b.steps.len());
        for (x, y) in a.steps.iter().zip(&b.steps) {
            assert_eq!(x.name, y.name);
            assert_same_histogram(&x.name, &x.latency, &y.latency);
            assert_eq!(
                (
                    x.reached,
                    x.rejected,
                    x.timed_out,
                    x.rejected_reconnects,
                    x.sessions
                ),
                (
                    y.reached,
                    y.rejected,
                    y.timed_out,
                    y.rejected_reconnects,
                    y.sessions
                ),
                "{}",
                x.name
            );
        }
        assert_eq!(a.counters, b.counters);
        assert_eq!(a.reconnects, b.reconnects);
        assert_eq!(a.errors, b.errors);
        assert_eq!(a.script_errors, b.script_errors);
        assert_eq!(a.custom_counters, b.custom_counters);
        assert_eq!(
            a.custom_latencies.keys().collect::<Vec<_>>(),
            b.custom_latencies.keys().collect::<Vec<_>>()
        );
        for (name, h) in &a.custom_latencies {
            assert_same_histogram(name, h, &b.custom_latencies[name]);
        }
        assert_eq!(a.internal, b.internal);
    }

    fn assert_same_frame(a: &Frame, b: &Frame) {
        match (a, b) {
            (
                Frame::Hello { pid, shards },
                Frame::Hello {
                    pid: pid2,
                    shards: shards2,
                },
            ) => assert_eq!((pid, shards), (pid2, shards2)),
            (Frame::Gate(x), Frame::Gate(y)) => assert_eq!(x, y),
            (Frame::Fatal(x), Frame::Fatal(y)) => assert_eq!(x, y),
            (Frame::Interval(x), Frame::Interval(y)) => {
                assert_eq!(
                    (x.seq, x.last, x.gauges, x.peak_active, x.peak_rss_kib),
                    (y.seq, y.last, y.gauges, y.peak_active, y.peak_rss_kib)
                );
                assert_eq!(x.cpu_s.map(f64::to_bits), y.cpu_s.map(f64::to_bits));
                assert_same_recorder(&x.recorder, &y.recorder);
            }
            _ => panic!("different kinds: {a:?} and {b:?}"),
        }
    }

    #[test]
    fn every_frame_kind_round_trips() {
        for frame in every_frame() {
            assert_same_frame(&frame, &round_trip(&frame));
        }
    }

    #[test]
    fn an_interval_round_trips_every_field_exactly() {
        let Frame::Interval(back) = round_trip(&Frame::Interval(full_interval())) else {
            panic!("not an interval");
        };
        assert_eq!(back.seq, 7);
        assert!(back.last);
        assert_eq!(back.gauges, [1, 2, 30, 4, 5]);
        assert_eq!(back.peak_active, 33);
        assert_eq!(back.peak_rss_kib, Some(123_456));
        assert_eq!(back.cpu_s, Some(1.25));
        let r = &back.recorder;
        let heartbeat = r.histogram(Metric::Heartbeat);
        assert_eq!(heartbeat.len(), 3);
        assert_eq!(heartbeat.min(), 100);
        assert!(heartbeat.equivalent(heartbeat.max(), 40_000));
        assert_eq!(r.histogram(Metric::Connect).len(), 1);
        assert_eq!(r.histogram(Metric::Reconnect).len(), 1);
        assert!(r.histogram(Metric::ScheduleLag).is_empty());
        let names: Vec<&str> = r.steps.iter().map(|s| &*s.name).collect();
        assert_eq!(names, STEPS);
        let auth = &r.steps[0];
        assert_eq!(auth.latency.len(), 2);
        assert_eq!(auth.latency.min(), 900);
        assert_eq!(
            (auth.reached, auth.rejected, auth.timed_out),
            (5, 1, 2),
            "auth"
        );
        assert_eq!((auth.rejected_reconnects, auth.sessions), (1, 3));
        assert_eq!(r.steps[1].latency.len(), 1);
        assert_eq!((r.steps[1].reached, r.steps[1].sessions), (1, 1));
        assert_eq!(r.counter(Counter::HeartbeatsSent), 2);
        assert_eq!(r.counter(Counter::SessionsStarted), 1);
        assert_eq!(r.counter(Counter::ArrivalsLate), 1);
        assert_eq!(r.counters.iter().sum::<u64>(), 4);
        assert_eq!(r.reconnects[Cause::ServerClose.index()], 2);
        assert_eq!(r.reconnects_total(), 4);
        assert_eq!(r.errors[ErrorKind::Tls.index()], 1);
        assert_eq!(r.errors[ErrorKind::HeartbeatTimeout.index()], 1);
        assert_eq!(r.errors[ErrorKind::ScriptLimit.index()], 1);
        assert_eq!(r.errors[ErrorKind::Internal.index()], 2);
        let script: Vec<(&str, u64)> = r.script_errors.iter().map(|(k, n)| (*k, *n)).collect();
        assert_eq!(
            script,
            [("auth_reply", 1), ("fail", 1), ("on_message", 1)],
            "keys in BTreeMap order"
        );
        // The keys are the interned hook names themselves, not copies that merely match.
        let (auth_reply, _) = r.script_errors.get_key_value("auth_reply").unwrap();
        assert!(std::ptr::eq(*auth_reply, Hook::judge("auth").name()));
        assert_eq!(r.custom_counters["kicked"], 2);
        assert_eq!(r.custom_counters["pushed"], 1);
        let push = &r.custom_latencies["order_push"];
        assert_eq!(push.len(), 2);
        assert_eq!(push.min(), 3_300);
        assert_eq!(
            r.internal,
            [
                "shard 0 panicked: boom",
                "a session panicked: index out of bounds"
            ]
        );
        assert_same_recorder(&full_recorder(), r);
    }

    #[test]
    fn frames_back_to_back_read_in_order_then_end() {
        let frames = every_frame();
        let mut stream = Vec::new();
        for frame in &frames {
            write_frame(&mut stream, frame).unwrap();
        }
        let mut r = stream.as_slice();
        for frame in &frames {
            assert_same_frame(frame, &read_frame(&mut r).unwrap().expect("a frame"));
        }
        assert!(read_frame(&mut r).unwrap().is_none());
        assert!(read_frame(&mut r).unwrap().is_none(), "EOF stays EOF");
    }

    #[test]
    fn the_header_is_magic_kind_and_length() {
        let bytes = encoded(&Frame::Hello { pid: 1, shards: 2 });
        assert_eq!(
            bytes,
            [b'W', b'S', b'K', b'1', 1, 8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]
        );
        assert_eq!(encoded(&Frame::Gate(Ok(()))), raw_frame(GATE, &[0]));
        assert_eq!(encoded(&Frame::Fatal("no".into())), raw_frame(FATAL, b"no"));
    }

    #[test]
    fn every_cut_of_a_frame_is_an_error_except_before_it() {
        for frame in every_frame() {
            let bytes = encoded(&frame);
            assert!(read_frame(&mut &bytes[..0]).unwrap().is_none());
            for cut in 1..bytes.len() {
                let wanted = if cut < HEADER_LEN {
                    HEADER_LEN
                } else {
                    bytes.len()
                };
                match read_frame(&mut &bytes[..cut]) {
                    Err(WireError::Truncated { got, wanted: w }) => {
                        assert_eq!((got, w), (cut, wanted), "{frame:?} cut at {cut}")
                    }
                    other => panic!("{frame:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn other_output_on_the_pipe_is_bad_magic() {
        let stray = b"thread 'main' panicked at src/main.rs:1:1";
        let err = read_frame(&mut &stray[..]).unwrap_err();
        assert!(
            matches!(&err, WireError::BadMagic { found } if found == "thre"),
            "{err:?}"
        );
        assert!(err.to_string().contains("stdout"), "{err}");
        let mut other_version = encoded(&Frame::Gate(Ok(())));
        other_version[3] = b'2';
        assert!(matches!(
            read_frame(&mut other_version.as_slice()),
            Err(WireError::BadMagic { found }) if found == "WSK2"
        ));
        // Even a cut header is judged by the magic it has.
        assert!(matches!(
            read_frame(&mut &b"ok\n"[..]),
            Err(WireError::BadMagic { found }) if found == "ok\\n"
        ));
    }

    #[test]
    fn a_huge_length_is_refused_before_reading_it() {
        // An endless stream of zeros after the header: reading the payload, or allocating
        // it, would never end.
        let mut header = raw_frame(INTERVAL, &[]);
        header[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut stream = header.as_slice().chain(io::repeat(0));
        let err = read_frame(&mut stream).unwrap_err();
        assert!(
            matches!(err, WireError::TooLarge { len: u32::MAX }),
            "{err:?}"
        );
        assert!(err.to_string().contains("64 MiB"), "{err}");
        header[5..9].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        let mut stream = header.as_slice().chain(io::repeat(0));
        assert!(matches!(
            read_frame(&mut stream),
            Err(WireError::TooLarge { len }) if len == MAX_PAYLOAD + 1
        ));
    }

    #[test]
    fn unknown_kinds_and_stray_bytes_are_refused() {
        for kind in [0, 5, 255] {
            assert!(matches!(
                read_frame(&mut raw_frame(kind, &[]).as_slice()),
                Err(WireError::UnknownKind { kind: k }) if k == kind
            ));
        }
        let mut hello = 1u32.to_le_bytes().to_vec();
        hello.extend_from_slice(&2u32.to_le_bytes());
        hello.push(0);
        assert_eq!(
            problem(&raw_frame(HELLO, &hello)),
            "it has 1 byte past its end"
        );
        assert_eq!(
            problem(&raw_frame(GATE, &[2])),
            "its outcome is 2, not 0 (connected) or 1 (failed)"
        );
        assert_eq!(problem(&raw_frame(FATAL, &[0xff])), "it is not UTF-8");
        let mut e = encoder();
        e.u8(1);
        e.str("connect_lost");
        e.str("detail");
        assert_eq!(
            problem(&raw_frame(GATE, &e.buf)),
            "`connect_lost` is not an error kind"
        );
    }

    /// An interval's payload up to its recorder's counters: no gauges, no histograms, no
    /// steps.
    fn until_counters() -> Encoder {
        let mut e = encoder();
        e.u64(0); // seq
        e.u8(0); // last
        e.len(0); // gauges
        e.i64(0); // peak_active
        e.u8(0); // peak_rss_kib
        e.u8(0); // cpu_s
        e.len(0); // histograms
        e.len(0); // steps
        e
    }

    #[test]
    fn names_are_looked_up_and_unknown_or_repeated_names_refused() {
        let mut e = encoder();
        e.u64(0);
        e.u8(0);
        e.len(1);
        e.str("sleeping");
        e.i64(1);
        let err = read_frame(&mut raw_frame(INTERVAL, &e.buf).as_slice()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the worker's interval frame cannot be decoded (gauges have no `sleeping`): the \
             worker is another wsoak version, or its output is corrupt"
        );

        let mut e = encoder();
        e.u64(0);
        e.u8(0);
        e.len(2);
        e.str("bound");
        e.i64(1);
        e.str("bound");
        e.i64(2);
        assert_eq!(
            problem(&raw_frame(INTERVAL, &e.buf)),
            "gauges list `bound` twice"
        );

        let mut e = until_counters();
        e.len(1);
        e.str("heartbeats.lost");
        e.u64(1);
        assert_eq!(
            problem(&raw_frame(INTERVAL, &e.buf)),
            "counters have no `heartbeats.lost`"
        );

        // A complete recorder whose counters are in the reverse of the index order: each
        // count lands on its name.
        let mut e = until_counters();
        e.counts(
            Counter::ALL
                .iter()
                .rev()
                .map(|c| (c.name(), c.index() as u64 + 1)),
        );
        for _ in 0..6 {
            e.len(0); // reconnects, errors, script errors, both custom, internal
        }
        let Frame::Interval(back) = read_frame(&mut raw_frame(INTERVAL, &e.buf).as_slice())
            .unwrap()
            .unwrap()
        else {
            panic!("not an interval");
        };
        for c in Counter::ALL {
            assert_eq!(
                back.recorder.counter(*c),
                c.index() as u64 + 1,
                "{}",
                c.name()
            );
        }

        // A hook no scenario can have: not leaked into the interned names, refused.
        let mut e = until_counters();
        for _ in 0..3 {
            e.len(0); // counters, reconnects, errors
        }
        e.len(1);
        e.str("on_connect");
        e.u64(1);
        assert_eq!(
            problem(&raw_frame(INTERVAL, &e.buf)),
            "no hook is `on_connect`"
        );

        let mut e = until_counters();
        e.buf.truncate(e.buf.len() - 4);
        e.len(1);
        e.str("Auth");
        assert!(
            problem(&raw_frame(INTERVAL, &e.buf)).contains("is not a step name"),
            "step names are checked as the scenario checks them"
        );
    }

    /// zlib's stored (uncompressed) form, to build histograms the encoder never would.
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let len = data.len() as u16;
        let mut out = vec![0x78, 0x01, 1];
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(data);
        let (mut a, mut b) = (1u32, 0u32);
        for x in data {
            a = (a + u32::from(*x)) % 65_521;
            b = (b + a) % 65_521;
        }
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }

    /// A histogram in the wire's form (length-prefixed V2-compressed) with wsoak's bounds
    /// and these encoded counts.
    fn crafted_histogram(counts: &[u8]) -> Vec<u8> {
        let (low, high, sigfig) = *standard_bounds();
        let mut v2 = 0x1c84_9313u32.to_be_bytes().to_vec();
        v2.extend_from_slice(&(counts.len() as u32).to_be_bytes());
        v2.extend_from_slice(&0u32.to_be_bytes());
        v2.extend_from_slice(&u32::from(sigfig).to_be_bytes());
        v2.extend_from_slice(&low.to_be_bytes());
        v2.extend_from_slice(&high.to_be_bytes());
        v2.extend_from_slice(&1.0f64.to_be_bytes());
        v2.extend_from_slice(counts);
        let z = zlib_stored(&v2);
        let mut out = ((z.len() + 8) as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&HISTOGRAM_COOKIE.to_be_bytes());
        out.extend_from_slice(&(z.len() as u32).to_be_bytes());
        out.extend_from_slice(&z);
        out
    }

    #[test]
    fn histograms_the_encoder_never_makes_are_errors_not_panics() {
        // The crafting is right: one sample (zig-zag 2 is a count of 1) decodes.
        let one = Decoder {
            rest: &crafted_histogram(&[2]),
        }
        .histogram("h")
        .unwrap();
        assert_eq!(one.len(), 1);
        // A run of i64::MIN zeros: hdrhistogram negates it, which overflows.
        let problem = Decoder {
            rest: &crafted_histogram(&[0xff; 9]),
        }
        .histogram("h")
        .unwrap_err();
        assert_eq!(problem, "h cannot be decoded");

        let mut foreign = Histogram::<u64>::new_with_bounds(1, 1_000, 2).unwrap();
        foreign.record(10).unwrap();
        let mut e = encoder();
        e.histogram(&foreign).unwrap();
        let problem = Decoder { rest: &e.buf }.histogram("h").unwrap_err();
        assert!(problem.contains("not wsoak's 1..="), "{problem}");

        // A histogram whose own length disagrees with the frame's is not inflated at all.
        // (Bytes 0..4 are the wire's length, 4..8 the cookie, 8..12 the deflated length.)
        let mut e = encoder();
        e.histogram(&new_histogram()).unwrap();
        e.buf[11] ^= 1;
        let problem = Decoder { rest: &e.buf }.histogram("h").unwrap_err();
        assert_eq!(
            problem,
            "h has a deflated length that disagrees with its own"
        );
        e.buf[11] ^= 1;
        e.buf[4] ^= 1;
        let problem = Decoder { rest: &e.buf }.histogram("h").unwrap_err();
        assert_eq!(problem, "h is not an HdrHistogram V2-compressed histogram");
    }

    #[test]
    fn garbage_never_panics() {
        let valid: Vec<Vec<u8>> = every_frame().iter().map(encoded).collect();
        let mut rng = fastrand::Rng::with_seed(0x5eed_2024);
        for i in 0..3_000 {
            let bytes = match i % 3 {
                // Random bytes, mostly refused at the magic.
                0 => {
                    let mut b = vec![0; rng.usize(0..64)];
                    rng.fill(&mut b);
                    b
                }
                // A valid header of any kind around a random payload: decoders see it.
                1 => {
                    let mut payload = vec![0; rng.usize(0..256)];
                    rng.fill(&mut payload);
                    raw_frame(rng.u8(0..6), &payload)
                }
                // A valid frame with a few bytes changed: deeper parts see it.
                _ => {
                    let mut b = valid[rng.usize(..valid.len())].clone();
                    for _ in 0..rng.usize(1..4) {
                        let at = rng.usize(..b.len());
                        b[at] = rng.u8(..);
                    }
                    b
                }
            };
            let mut r = bytes.as_slice();
            // Whatever it reads, it ends: each frame consumes bytes.
            while let Ok(Some(_)) = read_frame(&mut r) {}
        }
    }

    #[test]
    fn merging_decoded_recorders_gives_the_originals_totals() {
        let a = full_recorder();
        let mut b = full_recorder().fresh();
        b.record(Metric::Heartbeat, Duration::from_micros(70));
        b.record(Metric::ScheduleLag, Duration::from_micros(5));
        b.step_accepted(1, Duration::from_micros(1_500));
        b.step(1).reached = 2;
        b.count(Counter::HeartbeatsSent);
        b.reconnect(Cause::Script);
        b.error(ErrorKind::Tls);
        b.script_error(Hook::ON_MESSAGE.name(), false);
        b.script_error(Hook::build("bind_card").name(), false);
        b.custom_count("kicked");
        b.custom_record("login", Duration::from_millis(40));
        b.internal("a third panic".into());

        let mut originals = Recorder::new();
        originals.merge(&a);
        originals.merge(&b);
        let mut decoded = Recorder::new();
        decoded.merge(&recorder_round_trip(&a));
        decoded.merge(&recorder_round_trip(&b));
        assert_same_recorder(&originals, &decoded);

        assert_eq!(decoded.counter(Counter::HeartbeatsSent), 3);
        assert_eq!(decoded.histogram(Metric::Heartbeat).len(), 4);
        assert_eq!(decoded.histogram(Metric::Heartbeat).min(), 70);
        assert_eq!(decoded.histogram(Metric::ScheduleLag).len(), 1);
        assert_eq!(decoded.steps[1].latency.len(), 2);
        assert_eq!(decoded.steps[1].reached, 3);
        assert_eq!(decoded.reconnects_total(), 5);
        assert_eq!(decoded.errors[ErrorKind::Tls.index()], 2);
        assert_eq!(decoded.script_errors["on_message"], 2);
        assert_eq!(decoded.script_errors["bind_card"], 1);
        assert_eq!(decoded.custom_counters["kicked"], 3);
        assert_eq!(decoded.custom_latencies["login"].len(), 1);
        assert_eq!(decoded.internal.len(), 3);
    }
}
