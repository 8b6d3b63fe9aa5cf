//! The reference server's fault settings: the ways it misbehaves on request (slow
//! replies, dropped or held heartbeat acks, dropped or stalled connections, rejected
//! auths, pushes), as a scenario's `server:` section and `wsoak serve`'s flags both state
//! them, and how each heartbeat's ack fares under them.
//!
//! It is vocabulary shared by the scenario (which reads and checks it) and the server
//! (which acts on it), so it sits below both and imports neither. It must not do I/O.

use std::time::Duration;

use serde::Deserialize;

use crate::units;

/// Ways the server misbehaves. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Wait this long before each reply (measured from reading the message).
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub delay: Option<Duration>,
    /// Answer no ack to the N-th, 2N-th, … heartbeat of each connection (heartbeats
    /// are numbered from 1 on every connection).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub drop_ack_every: Option<u64>,
    /// Hold the reply to the N-th, 2N-th, … heartbeat of each connection for
    /// `slow_ack` (1: every heartbeat). Needs `slow_ack`.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub slow_ack_every: Option<u64>,
    /// How long `slow_ack_every` holds a heartbeat's reply, on top of any `delay`.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub slow_ack: Option<Duration>,
    /// Close each connection abruptly (no close frame) once it has lived this long.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub drop_after: Option<Duration>,
    /// Stop answering once a connection has lived this long, keeping TCP open.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub stall_after: Option<Duration>,
    /// Fraction of auths answered with a rejection (`code "401"`), spread evenly.
    #[serde(default, with = "units::fraction")]
    #[schemars(with = "units::FractionText")]
    pub reject_auth: f64,
    /// Once a connection has bound its card, push an `order_push` message this often.
    #[serde(default, with = "units::opt_duration")]
    #[schemars(with = "Option<units::DurationText>")]
    pub push_every: Option<Duration>,
}

/// The longest a reply may be delayed or held: longer is a typo, and a client would
/// long have given up.
pub const MAX_HOLD: Duration = Duration::from_secs(3600);

impl Faults {
    /// Whether any fault is switched on.
    pub fn is_active(&self) -> bool {
        self.delay.is_some()
            || self.drop_ack_every.is_some()
            || self.slow_ack_every.is_some()
            || self.slow_ack.is_some()
            || self.drop_after.is_some()
            || self.stall_after.is_some()
            || self.reject_auth > 0.0
            || self.push_every.is_some()
    }

    /// Checks the faults make sense together; on error returns the offending key and
    /// what is wrong with it, for the caller to place (scenario line or CLI flag).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, every) in [
            ("drop_ack_every", self.drop_ack_every),
            ("slow_ack_every", self.slow_ack_every),
        ] {
            if every == Some(0) {
                return Err((
                    key,
                    "must be 1 or more (1 means every heartbeat, 3 every third)".into(),
                ));
            }
        }
        match (self.slow_ack_every, self.slow_ack) {
            (Some(_), None) => {
                return Err((
                    "slow_ack_every",
                    "needs `slow_ack`, how long to hold those replies (e.g. 50ms)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    "slow_ack",
                    "needs `slow_ack_every`, which heartbeats to hold (1 for every one)".into(),
                ))
            }
            _ => {}
        }
        if self.slow_ack.is_some_and(|d| d.is_zero()) {
            return Err(("slow_ack", "must be longer than 0s".into()));
        }
        // A push every 0s would send pushes in a busy loop.
        if self
            .push_every
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return Err(("push_every", "must be at least 1ms".into()));
        }
        for (key, hold) in [("delay", self.delay), ("slow_ack", self.slow_ack)] {
            if hold.is_some_and(|d| d > MAX_HOLD) {
                return Err((key, "must be at most 1h".into()));
            }
        }
        Ok(())
    }

    /// What this connection does with the reply to its `n`-th heartbeat (`n` from 1).
    pub fn heartbeat_fate(&self, n: u64) -> HeartbeatFate {
        let every = |e: Option<u64>| e.is_some_and(|e| e > 0 && n.is_multiple_of(e));
        if every(self.drop_ack_every) {
            // A dropped ack has nothing left to hold.
            HeartbeatFate::Drop
        } else if every(self.slow_ack_every) {
            HeartbeatFate::Hold(self.slow_ack.unwrap_or_default())
        } else {
            HeartbeatFate::Answer
        }
    }
}

/// What happens to one heartbeat's ack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeartbeatFate {
    /// Answered as usual (after `delay`, if any).
    Answer,
    /// Never answered.
    Drop,
    /// Answered after this much more than `delay`.
    Hold(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_heartbeat_is_dropped_or_held_and_drop_wins() {
        let faults = Faults {
            drop_ack_every: Some(3),
            slow_ack_every: Some(2),
            slow_ack: Some(Duration::from_millis(50)),
            ..Faults::default()
        };
        let fates: Vec<_> = (1..=6).map(|n| faults.heartbeat_fate(n)).collect();
        let hold = HeartbeatFate::Hold(Duration::from_millis(50));
        use HeartbeatFate::{Answer, Drop};
        assert_eq!(fates, [Answer, hold, Drop, hold, Answer, Drop]);
        assert_eq!(Faults::default().heartbeat_fate(1), Answer);
    }

    #[test]
    fn faults_that_make_no_sense_name_their_key() {
        let ms = |n| Some(Duration::from_millis(n));
        let key = |f: Faults| f.validate().unwrap_err().0;
        assert_eq!(
            key(Faults {
                push_every: ms(0),
                ..Faults::default()
            }),
            "push_every"
        );
        assert_eq!(
            key(Faults {
                drop_ack_every: Some(0),
                ..Faults::default()
            }),
            "drop_ack_every"
        );
        assert_eq!(
            key(Faults {
                slow_ack_every: Some(0),
                slow_ack: ms(5),
                ..Faults::default()
            }),
            "slow_ack_every"
        );
        assert_eq!(
            key(Faults {
                slow_ack_every: Some(1),
                ..Faults::default()
            }),
            "slow_ack_every"
        );
        assert_eq!(
            key(Faults {
                slow_ack: ms(5),
                ..Faults::default()
            }),
            "slow_ack"
        );
        assert_eq!(
            key(Faults {
                slow_ack_every: Some(1),
                slow_ack: ms(0),
                ..Faults::default()
            }),
            "slow_ack"
        );
        assert_eq!(
            key(Faults {
                delay: Some(MAX_HOLD + Duration::from_secs(1)),
                ..Faults::default()
            }),
            "delay"
        );
        let fine = Faults {
            drop_ack_every: Some(1),
            slow_ack_every: Some(1),
            slow_ack: Some(MAX_HOLD),
            ..Faults::default()
        };
        assert_eq!(fine.validate(), Ok(()));
        assert!(fine.is_active());
    }
}
