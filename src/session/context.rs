//! What a session is given: the run's [`Plan`] (how to reach the target, shared by every
//! shard) and its shard's [`Context`] (the recorder, gauges and stop signal it shares with
//! the shard's other sessions).
//!
//! It owns the bookkeeping on that shared state (counting, recording, moving a session
//! between gauge states). It must not know what a session does: no sockets, no timers,
//! no awaits (the shard's alarm clock is held here, and lives in `alarm`).

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::ClientRequestBuilder;
use tokio_util::sync::CancellationToken;

use super::alarm::Alarms;
use crate::metrics::{Active, Counter, ErrorKind, Gauges, Metric, Recorder, State};
use crate::scenario::Scenario;

/// How the sessions of a run reach the target. Built once, shared by every shard.
pub struct Plan {
    /// The scenario being run.
    pub scenario: Arc<Scenario>,
    /// The target's address, resolved once at start so reconnect storms do no DNS.
    pub addr: SocketAddr,
    /// Local addresses to connect from, spread over the sessions by id (see
    /// [`crate::source`]); empty: the kernel chooses. Checked at start.
    pub sources: Vec<IpAddr>,
    /// The handshake request (URL, headers, subprotocols); cloned per connect.
    pub request: ClientRequestBuilder,
    /// For `wss://`: the run's TLS client and the name to verify.
    pub tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    /// Socket buffers sized for many clients, not tungstenite's server-sized defaults.
    pub ws_config: WebSocketConfig,
}

/// What every session on one shard shares. Lives as long as the shard.
pub struct Context {
    /// The run's plan.
    pub plan: Arc<Plan>,
    /// The shard's measurements for the current interval; swapped out by the shard.
    pub recorder: RefCell<Recorder>,
    /// Live sessions per state on this shard.
    pub gauges: Cell<Gauges>,
    /// Cancelled when the run ends: sessions close politely and return. The heartbeat
    /// loops learn it from [`Context::stopping`] instead.
    pub stop: CancellationToken,
    /// Sessions running on every shard, for the open model's `max_sessions` cap.
    pub running: Arc<AtomicU32>,
    /// Open sockets on every shard, for an exact `peak_active`.
    pub active: Arc<Active>,
    /// The shard's alarm clock: what the heartbeat loops wait on, one tokio timer for
    /// all of them.
    pub(crate) alarms: Rc<Alarms>,
    /// Set once by the shard when `stop` is cancelled ([`Context::stopping`]).
    stopping: Cell<bool>,
}

impl Context {
    /// The shard's context, stopping when `stop` is cancelled and the shard says so
    /// ([`Context::stop_beats`]).
    pub(crate) fn new(
        plan: Arc<Plan>,
        stop: CancellationToken,
        running: Arc<AtomicU32>,
        active: Arc<Active>,
    ) -> Context {
        Context {
            recorder: RefCell::new(Recorder::for_steps(&plan.scenario.step_names())),
            plan,
            gauges: Cell::new([0; State::COUNT]),
            stop,
            running,
            active,
            alarms: Rc::new(Alarms::new()),
            stopping: Cell::new(false),
        }
    }

    /// Whether the shard has seen the run stop. The heartbeat loops look at this flag
    /// instead of waiting on `stop`, whose every poll takes a lock shared by all shards;
    /// they learn of it when their alarm rings ([`Context::stop_beats`]).
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// The shard has seen `stop` cancelled: the heartbeat loops are told, by the flag
    /// and by ringing every alarm on the shard's clock, which wakes them all.
    pub(crate) fn stop_beats(&self) {
        self.stopping.set(true);
        self.alarms.ring_all();
    }

    pub(crate) fn record(&self, metric: Metric, latency: Duration) {
        self.recorder.borrow_mut().record(metric, latency);
    }
    pub(crate) fn count(&self, counter: Counter) {
        self.recorder.borrow_mut().count(counter);
    }
    pub(crate) fn error(&self, kind: ErrorKind) {
        self.recorder.borrow_mut().error(kind);
    }
    pub(super) fn shift(&self, from: Option<State>, to: Option<State>) {
        let mut g = self.gauges.get();
        if let Some(s) = from {
            g[s.index()] -= 1;
        }
        if let Some(s) = to {
            g[s.index()] += 1;
        }
        self.gauges.set(g);
        let open = |s: Option<State>| s.is_some_and(State::is_active);
        match (open(from), open(to)) {
            (false, true) => self.active.add(1),
            (true, false) => self.active.add(-1),
            _ => {}
        }
    }
}

#[cfg(test)]
impl Context {
    /// A shard's context for unit tests: `yaml`'s scenario, a target nobody listens on
    /// (the tests bring their own streams), sessions connecting from `sources`.
    pub(crate) fn for_test(yaml: &str, sources: Vec<IpAddr>) -> Rc<Context> {
        let scenario =
            crate::scenario::parse(yaml, std::path::Path::new("t.yaml"), &Default::default())
                .expect("a valid test scenario");
        let plan = Arc::new(Plan {
            scenario: Arc::new(scenario),
            addr: ([127, 0, 0, 1], 1).into(),
            sources,
            request: ClientRequestBuilder::new("ws://127.0.0.1:1/".parse().unwrap()),
            tls: None,
            ws_config: super::client_ws_config(),
        });
        Rc::new(Context::new(
            plan,
            CancellationToken::new(),
            Arc::new(AtomicU32::new(1)),
            Arc::default(),
        ))
    }
}
