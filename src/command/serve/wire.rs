//! What the processes of `wsoak serve --workers` say to each other: one JSON line from
//! the parent on each worker's stdin ([`Hello`]), then JSON lines from the worker on its
//! stdout ([`Report`]). After the hello, the parent's only word is closing the pipe,
//! which tells the worker to stop (as it would if the parent died). A worker's stderr is
//! the parent's, for people.
//!
//! It owns the messages and their encoding only; no I/O.

use serde::{Deserialize, Serialize};

use crate::report::hlog;
use crate::server::{SelfSigned, ServerStats, Tally};

/// The parent's first and only line to a worker, before the worker listens.
#[derive(Serialize, Deserialize)]
pub(super) struct Hello {
    /// With `--tls`: the certificate every process serves, so that a client's `--ca`
    /// trusts all of them. Sent over the pipe, as it carries its private key.
    pub certificate: Option<SelfSigned>,
}

/// A worker's line to its parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Report {
    /// Bound to the parent's address and listening.
    Listening,
    /// Stopped: everything it saw, to be summed with the others'.
    Stopped {
        /// Its counts, as its own exit line would print them. Boxed: the report that
        /// says only `listening` should not be this large.
        stats: Box<ServerStats>,
        /// The histogram behind `stats.heartbeat_hold_ms` ([`hlog::encode_histogram`]),
        /// without which holds could not be summed exactly.
        heartbeat_holds: Option<String>,
    },
}

impl Report {
    /// The report of a worker that saw `tally`.
    pub fn stopped(tally: Tally) -> Report {
        Report::Stopped {
            stats: Box::new(tally.stats),
            heartbeat_holds: tally.holds.as_ref().map(hlog::encode_histogram),
        }
    }
}

/// What a `Stopped` report carried, summable; or what was wrong with it.
pub(super) fn tally(
    stats: Box<ServerStats>,
    heartbeat_holds: Option<String>,
) -> Result<Tally, String> {
    let holds = heartbeat_holds
        .map(|text| hlog::decode_histogram(&text))
        .transpose()
        .map_err(|e| format!("its heartbeat holds cannot be read: {e}"))?;
    Ok(Tally {
        stats: *stats,
        holds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_arrives_whole() {
        assert!(matches!(
            serde_json::from_str::<Report>(r#""listening""#),
            Ok(Report::Listening)
        ));
        let mut holds = crate::metrics::new_histogram();
        for us in [900, 1_000, 51_000] {
            holds.record(us).unwrap();
        }
        let mut sent = Tally::default();
        sent.stats.connections = 3;
        sent.stats.close_codes.insert(1000, 3);
        sent.stats.heartbeat_hold_ms.count = 3;
        sent.holds = Some(holds);
        for sent in [sent, Tally::default()] {
            let line = serde_json::to_string(&Report::stopped(sent.clone())).unwrap();
            assert!(!line.contains('\n'));
            let Ok(Report::Stopped {
                stats,
                heartbeat_holds,
            }) = serde_json::from_str(&line)
            else {
                panic!("{line}")
            };
            let back = tally(stats, heartbeat_holds).unwrap();
            assert_eq!(back.stats, sent.stats);
            assert_eq!(back.holds, sent.holds);
        }
        let garbled = tally(Box::default(), Some("aGk=".into()));
        assert!(garbled.unwrap_err().contains("heartbeat holds"));
    }
}
