//! `wsoak serve`: the reference server on its own, with fault injection, its timeouts
//! and a connection cap that fits the open-file limit.

use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::limits::raise_open_files_limit;
use super::EXIT_OK;
use crate::cli::ServeArgs;
use crate::runner;
use crate::server;
use crate::units;

/// Descriptors `wsoak serve` keeps for itself (listener, runtime, stdio) below its
/// open-file limit when it picks its own connection cap.
const SERVE_RESERVED_FILES: u64 = 64;

/// `wsoak serve`'s timeouts and connection cap, from its flags and the open-file limit.
fn serve_limits(args: &ServeArgs) -> server::Limits {
    let max_connections = args.max_connections.unwrap_or_else(|| {
        raise_open_files_limit().map_or(server::MAX_CONNECTIONS_CEILING as u64, |limit| {
            limit.saturating_sub(SERVE_RESERVED_FILES).max(1)
        })
    });
    server::Limits {
        handshake_timeout: args.handshake_timeout,
        idle_timeout: Some(args.idle_timeout).filter(|d| !d.is_zero()),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
    }
}

/// `wsoak serve`: the reference server on its own.
pub(crate) fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let faults = server::Faults {
        delay: args.delay,
        drop_ack_every: args.drop_ack_every,
        slow_ack_every: args.slow_ack_every,
        slow_ack: args.slow_ack,
        drop_after: args.drop_after,
        stall_after: args.stall_after,
        reject_auth: args.reject_auth,
        push_every: args.push_every,
    };
    if let Err((key, message)) = faults.validate() {
        bail!("--{}: {message}", key.replace('_', "-"));
    }
    if args.handshake_timeout.is_zero() {
        bail!("--handshake-timeout: must be longer than 0s");
    }
    let limits = serve_limits(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = server::bind(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let certificate = args
            .tls
            .then(server::SelfSigned::generate)
            .transpose()
            .context("cannot generate a certificate")?;
        if let (Some(cert), Some(path)) = (&certificate, &args.cert_out) {
            std::fs::write(path, &cert.pem)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let config = server::ServerConfig {
            faults,
            tls: certificate
                .as_ref()
                .map(server::SelfSigned::acceptor)
                .transpose()?,
            limits,
        };
        let scheme = if args.tls { "wss" } else { "ws" };
        say!("listening on {scheme}://{addr}/");
        eprintln!(
            "limits: handshake {}, idle {}, at most {} connections",
            units::format_duration(limits.handshake_timeout),
            limits
                .idle_timeout
                .map_or("off".into(), units::format_duration),
            limits.max_connections
        );
        let _ = std::io::stdout().flush();
        let stats = Arc::new(server::Stats::default());
        let duration = args.duration;
        let shutdown = async move {
            match duration {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = runner::shutdown_signal() => {}
                    }
                }
                None => runner::shutdown_signal().await,
            }
        };
        server::run(listener, config, stats.clone(), shutdown).await;
        say!("{}", serde_json::to_string(&stats.snapshot())?);
        Ok(EXIT_OK)
    })
}
