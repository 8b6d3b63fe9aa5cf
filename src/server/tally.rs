//! One server's final counts in a form that adds up exactly with another's: what
//! `wsoak serve --workers` sums over its processes.
//!
//! Counts and count maps add up as they are; the hold summary (`heartbeat_hold_ms`) does
//! not (the median of two medians is nobody's median), so a tally carries the histogram
//! behind it and the summary is rebuilt from the merged histogram. It must not do I/O:
//! how a tally travels between processes is the caller's business.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::{HoldSummary, ServerStats};

/// What one server saw, summable.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// The counts, as printed on exit; `heartbeat_hold_ms` summarises `holds`.
    pub stats: ServerStats,
    /// Holds given to heartbeat replies, µs: the data behind `heartbeat_hold_ms`. `None`
    /// until a hold is recorded.
    pub holds: Option<Histogram<u64>>,
}

impl Tally {
    /// Adds another server's tally to this one: every count summed, every map summed key
    /// by key, and the hold summary rebuilt from both histograms. Each map's cap (64
    /// keys, 256 peers) is per server, so a sum may hold more keys than one server keeps.
    pub fn merge(&mut self, other: Tally) {
        // Destructured, not read field by field: a count added to `ServerStats` does not
        // compile until it is summed here too.
        let ServerStats {
            connections,
            handshake_failed,
            auth_ok,
            auth_rejected,
            bind_card,
            heartbeats,
            heartbeats_unanswered,
            heartbeat_acks_dropped,
            heartbeat_acks_held,
            heartbeat_hold_ms: _, // rebuilt from the histograms below
            messages,
            unknown,
            dropped,
            stalled,
            pushes,
            push_acks,
            close_codes,
            subprotocols,
            unanswered_at_close,
            peers,
            headers,
            headers_over_cap,
            subprotocols_over_cap,
            messages_by_type,
            messages_by_type_over_cap,
            close_codes_over_cap,
            unanswered_at_close_over_cap,
            handshake_timeouts,
            idle_timeouts,
            refused,
            evicted,
        } = other.stats;
        let s = &mut self.stats;
        for (total, n) in [
            (&mut s.connections, connections),
            (&mut s.handshake_failed, handshake_failed),
            (&mut s.auth_ok, auth_ok),
            (&mut s.auth_rejected, auth_rejected),
            (&mut s.bind_card, bind_card),
            (&mut s.heartbeats, heartbeats),
            (&mut s.heartbeats_unanswered, heartbeats_unanswered),
            (&mut s.heartbeat_acks_dropped, heartbeat_acks_dropped),
            (&mut s.heartbeat_acks_held, heartbeat_acks_held),
            (&mut s.messages, messages),
            (&mut s.unknown, unknown),
            (&mut s.dropped, dropped),
            (&mut s.stalled, stalled),
            (&mut s.pushes, pushes),
            (&mut s.push_acks, push_acks),
            (&mut s.headers_over_cap, headers_over_cap),
            (&mut s.subprotocols_over_cap, subprotocols_over_cap),
            (&mut s.messages_by_type_over_cap, messages_by_type_over_cap),
            (&mut s.close_codes_over_cap, close_codes_over_cap),
            (
                &mut s.unanswered_at_close_over_cap,
                unanswered_at_close_over_cap,
            ),
            (&mut s.handshake_timeouts, handshake_timeouts),
            (&mut s.idle_timeouts, idle_timeouts),
            (&mut s.refused, refused),
            (&mut s.evicted, evicted),
        ] {
            *total += n;
        }
        add_map(&mut s.close_codes, close_codes);
        add_map(&mut s.subprotocols, subprotocols);
        add_map(&mut s.unanswered_at_close, unanswered_at_close);
        add_map(&mut s.peers, peers);
        add_map(&mut s.headers, headers);
        add_map(&mut s.messages_by_type, messages_by_type);
        self.holds = match (self.holds.take(), other.holds) {
            (Some(mut total), Some(more)) => {
                // Resizable, so that adding can never fail whatever bounds the other
                // histogram was made with.
                total.auto(true);
                total
                    .add(&more)
                    .expect("a resizable histogram takes any other");
                Some(total)
            }
            (total, more) => total.or(more),
        };
        s.heartbeat_hold_ms = HoldSummary::of(self.holds.as_ref());
    }
}

/// Adds `more`'s counts to `total`'s, key by key.
fn add_map<K: Ord>(total: &mut BTreeMap<K, u64>, more: BTreeMap<K, u64>) {
    for (key, n) in more {
        *total.entry(key).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use super::super::{answer, Faults, Stats};
    use super::*;

    /// Event `i` of a made-up server's life: something for every count and map.
    fn see(stats: &Stats, i: u64) {
        let faults = Faults::default();
        stats.connections.fetch_add(1, Relaxed);
        stats.count_peer([127, 0, 0, 1 + (i % 3) as u8].into());
        stats.record_headers(vec![format!("x-n: {}", i % 5)]);
        stats.record_subprotocol(format!("p{}", i % 2));
        for message in [
            r#"{"type":"auth"}"#,
            r#"{"type":"bindCard"}"#,
            r#"{"type":"heartBeat"}"#,
            "not json",
        ] {
            stats.messages.fetch_add(1, Relaxed);
            answer(message, &faults, stats);
        }
        stats.record_close_code(if i.is_multiple_of(4) { 1001 } else { 1000 });
        stats.record_unanswered(i % 3);
        stats.record_hold(Duration::from_micros(1_000 + i * 997));
        stats.dropped.fetch_add(i % 2, Relaxed);
        stats.evicted.fetch_add(1, Relaxed);
    }

    #[test]
    fn two_servers_sum_to_what_one_would_have_counted() {
        let (whole, even, odd) = (Stats::default(), Stats::default(), Stats::default());
        for i in 0..200 {
            see(&whole, i);
            see(if i % 2 == 0 { &even } else { &odd }, i);
        }
        let mut sum = even.tally();
        sum.merge(odd.tally());
        let whole = whole.tally();
        assert_eq!(sum.stats, whole.stats);
        assert_eq!(sum.stats.connections, 200);
        assert_eq!(sum.stats.peers["127.0.0.2"], 67);
        assert_eq!(sum.stats.close_codes[&1001], 50);
        assert_eq!(sum.stats.messages_by_type["heartBeat"], 200);
        // The summary is the merged data's, not a blend of the two summaries.
        assert_eq!(sum.stats.heartbeat_hold_ms.count, 200);
        assert_ne!(
            even.snapshot().heartbeat_hold_ms.p50,
            whole.stats.heartbeat_hold_ms.p50
        );
        assert_eq!(sum.holds, whole.holds);
    }

    #[test]
    fn a_server_that_held_nothing_adds_nothing_to_the_holds() {
        let (held, idle) = (Stats::default(), Stats::default());
        held.record_hold(Duration::from_millis(5));
        let mut sum = idle.tally();
        sum.merge(held.tally());
        sum.merge(Tally::default());
        assert_eq!(
            sum.stats.heartbeat_hold_ms,
            held.snapshot().heartbeat_hold_ms
        );
        let mut empty = Tally::default();
        empty.merge(Tally::default());
        assert_eq!(empty.stats, ServerStats::default());
        assert!(empty.holds.is_none());
    }
}
