//! The interval logs: `intervals.jsonl` and `latency.hlog`, written by a thread of
//! their own so that the aggregator never blocks on the disk.

use std::io::Write as _;
use std::time::SystemTime;

use crate::metrics::Recorder;
use crate::report::{hlog, IntervalLine};

/// The run's interval logs.
#[derive(Debug)]
pub struct Logs {
    /// `intervals.jsonl`: one JSON line per interval.
    pub intervals: std::fs::File,
    /// `latency.hlog`: every interval's histograms, one tag per metric.
    pub hlog: std::fs::File,
}

/// Histograms with samples, tagged by metric or step name (`custom.<name>` for
/// scripts').
pub fn tagged_histograms(r: &Recorder) -> Vec<(String, hdrhistogram::Histogram<u64>)> {
    let builtin = r
        .latencies()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (name.to_string(), h.clone()));
    let custom = r
        .custom_latencies
        .iter()
        .map(|(name, h)| (format!("custom.{name}"), h.clone()));
    builtin.chain(custom).collect()
}

/// One interval for the writer thread.
struct Entry {
    line: IntervalLine,
    histograms: hlog::Interval,
    started_at: SystemTime,
}

/// Writes the interval logs on a thread of its own, so the aggregator never blocks on
/// the disk. Each interval is written and flushed as it comes: a crash, even `kill -9`,
/// loses nothing before the last interval.
pub(super) struct IntervalWriter {
    tx: std::sync::mpsc::SyncSender<Entry>,
    thread: std::thread::JoinHandle<u64>,
    /// Entries dropped because the queue was full (the disk far behind).
    dropped: std::cell::Cell<u64>,
}

impl IntervalWriter {
    pub(super) fn start(logs: Logs) -> std::io::Result<IntervalWriter> {
        // Bounded: a stalled disk must not grow memory. 1024 intervals is 17 minutes of
        // 1 s intervals; entries that do not fit are counted as lost, never queued forever.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Entry>(1024);
        let Logs {
            mut intervals,
            hlog,
        } = logs;
        let thread = std::thread::Builder::new()
            .name("wsoak-intervals".into())
            .spawn(move || {
                let mut lost = 0;
                let mut hlog = hlog;
                let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
                let mut rx = rx.into_iter().peekable();
                // The latency log starts at the first interval's start time, and stays
                // open (its headers written once) until the last.
                let start = rx.peek().map(|e| e.started_at);
                let mut log = start.and_then(|s| hlog::begin(&mut hlog, &mut serializer, s).ok());
                for entry in rx {
                    let mut text = serde_json::to_string(&entry.line).expect("lines serialise");
                    text.push('\n');
                    let written = intervals
                        .write_all(text.as_bytes())
                        .and_then(|_| intervals.flush());
                    let logged = match &mut log {
                        Some(log) => hlog::write(log, &entry.histograms),
                        None => Err(std::io::Error::other("the latency log did not open")),
                    };
                    if written.is_err() || logged.is_err() {
                        lost += 1;
                    }
                }
                lost
            })?;
        Ok(IntervalWriter {
            tx,
            thread,
            dropped: std::cell::Cell::new(0),
        })
    }

    pub(super) fn write(
        &self,
        line: IntervalLine,
        histograms: hlog::Interval,
        started_at: SystemTime,
    ) {
        // A full queue means the disk is far behind; the entry is lost, and counted.
        let sent = self.tx.try_send(Entry {
            line,
            histograms,
            started_at,
        });
        if sent.is_err() {
            self.dropped.set(self.dropped.get() + 1);
        }
    }

    /// Waits for the writer to finish the queue; returns the entries lost. Blocks: call
    /// it outside any async runtime.
    pub(super) fn finish(self) -> u64 {
        drop(self.tx);
        self.dropped.get() + self.thread.join().unwrap_or(0)
    }
}
