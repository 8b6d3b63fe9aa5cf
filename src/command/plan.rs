//! Connection planning for `wsoak run`: resolves the target, prepares TLS, the upgrade
//! request's headers and subprotocols, and the local addresses sessions connect from.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::Context as _;
use tokio_tungstenite::tungstenite::ClientRequestBuilder;

use crate::cli::RunArgs;
use crate::scenario::{Scenario, TargetUrl};
use crate::session::{self, Plan};
use crate::source;
use crate::tls;

/// Resolves the target and builds what every session needs to connect.
pub(crate) fn plan(
    scenario: &Arc<Scenario>,
    url: &TargetUrl,
    args: &RunArgs,
) -> anyhow::Result<Plan> {
    let addr: SocketAddr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", url.host))?
        .next()
        .with_context(|| format!("{} resolves to no address", url.host))?;
    let tls = if url.tls {
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .with_context(|| format!("`{}` is not a valid TLS server name", url.host))?;
        let config = tls::client_config(args.ca.as_deref(), args.insecure)?;
        Some((tokio_rustls::TlsConnector::from(config), name))
    } else {
        None
    };
    if url.tls && args.insecure {
        note!("wsoak: warning: --insecure: TLS certificates are not verified");
    }
    let ports = source::PortRange::read();
    let sources = match &args.source_addrs {
        Some(source::Sources(list)) => {
            source::check(list, addr).context("--source-addrs")?;
            list.clone()
        }
        None => source::loopback_sources(addr, scenario.sessions, ports),
    };
    // `sessions` is the most the run can hold open at once: the closed model's peak, the
    // open model's `max_sessions` cap.
    if let Some(warning) = source::crowding(addr, scenario.sessions, &sources, ports) {
        note!("{warning}");
    }
    let mut request = ClientRequestBuilder::new(url.uri.clone());
    for (key, value) in &scenario.connect.headers {
        request = request.with_header(key.clone(), value.clone());
    }
    for protocol in &scenario.connect.subprotocols {
        request = request.with_sub_protocol(protocol.clone());
    }
    Ok(Plan {
        scenario: scenario.clone(),
        addr,
        sources,
        request,
        tls,
        ws_config: session::client_ws_config(),
    })
}
