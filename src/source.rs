//! Source addresses: which local IP address a session's TCP connect leaves from.
//!
//! Linux picks an ephemeral port for every outgoing connection, and the ports are only
//! unique per (source address, destination) pair. `connect()` tries even ports first and
//! walks past every port already in use to the same destination; once a pair holds about
//! half the range (~14,100 connections with the default 32768–60999), every further
//! connect walks all of them: about a millisecond of kernel time per connect instead of
//! tens of microseconds, which stalls the shard that called it. Spreading sessions over
//! several source addresses keeps every pair short of that.
//!
//! This module owns the socket-level part (bind with `IP_BIND_ADDRESS_NO_PORT`, then
//! connect), parsing and checking a list of sources, and the arithmetic of how many a
//! run needs. It must not record metrics or know about scenarios: the caller decides
//! what a failure means.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Most source addresses a list may hold. A range is expanded in memory; this bounds it.
pub const MAX_SOURCES: usize = 1024;

/// The kernel's default `ip_local_port_range` (32768–60999), used when the real one
/// cannot be read (not Linux, or no /proc).
pub const DEFAULT_PORT_RANGE: PortRange = PortRange {
    first: 32768,
    last: 60999,
};

/// Why a list of source addresses cannot be used. Each message names the address or
/// the text at fault.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Nothing between the commas.
    #[error("the list of source addresses is empty: write e.g. 10.0.0.1,10.0.0.2 or 127.0.0.1-127.0.0.8")]
    Empty,
    /// An item that is neither an address nor a range.
    #[error("`{0}` is not an IP address: write e.g. 10.0.0.1,10.0.0.2 or 127.0.0.1-127.0.0.8")]
    NotAnAddress(String),
    /// A range that is not two IPv4 addresses in ascending order.
    #[error("`{0}` is not a range: write FIRST-LAST with two IPv4 addresses, FIRST not after LAST, e.g. 127.0.0.1-127.0.0.8")]
    BadRange(String),
    /// The list would hold too many addresses.
    #[error("the source addresses number more than {MAX_SOURCES}")]
    TooMany,
    /// The same address twice would give it twice the sessions of the others.
    #[error("source address {0} is listed twice")]
    Duplicate(IpAddr),
    /// An IPv4 source for an IPv6 target, or the reverse.
    #[error("source address {source_addr} is {} but the target {target} is {}", family(*.source_addr), family(.target.ip()))]
    Family {
        /// The address at fault.
        source_addr: IpAddr,
        /// The target it cannot reach.
        target: SocketAddr,
    },
    /// The address is not one of this machine's.
    #[error("source address {addr} cannot be bound on this machine: {error}")]
    NotLocal {
        /// The address at fault.
        addr: IpAddr,
        /// What the kernel said.
        error: std::io::Error,
    },
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Source addresses as given to `--source-addrs`: parsed, not yet checked against this
/// machine (see [`check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(pub Vec<IpAddr>);

impl Sources {
    /// Parses a comma list whose items are addresses (`10.0.0.1`, `::1`) or inclusive
    /// IPv4 ranges (`127.0.0.1-127.0.0.8`).
    pub fn parse(text: &str) -> Result<Sources, SourceError> {
        let mut addrs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('-') {
                Some((first, last)) => {
                    let bad = || SourceError::BadRange(item.to_string());
                    let first: Ipv4Addr = first.trim().parse().map_err(|_| bad())?;
                    let last: Ipv4Addr = last.trim().parse().map_err(|_| bad())?;
                    let (first, last) = (u32::from(first), u32::from(last));
                    if first > last {
                        return Err(bad());
                    }
                    if (last - first) as usize >= MAX_SOURCES {
                        return Err(SourceError::TooMany);
                    }
                    addrs.extend((first..=last).map(|a| IpAddr::V4(a.into())));
                }
                None => addrs.push(
                    item.parse()
                        .map_err(|_| SourceError::NotAnAddress(item.to_string()))?,
                ),
            }
            if addrs.len() > MAX_SOURCES {
                return Err(SourceError::TooMany);
            }
        }
        if addrs.is_empty() {
            return Err(SourceError::Empty);
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = addrs.iter().find(|a| !seen.insert(**a)) {
            return Err(SourceError::Duplicate(*twice));
        }
        Ok(Sources(addrs))
    }
}

/// Checks that every source can reach `target`'s family and can be bound here.
pub fn check(sources: &[IpAddr], target: SocketAddr) -> Result<(), SourceError> {
    for &addr in sources {
        if addr.is_ipv4() != target.is_ipv4() {
            return Err(SourceError::Family {
                source_addr: addr,
                target,
            });
        }
        // The same bind a connect does: with IP_BIND_ADDRESS_NO_PORT it takes no port.
        bind(addr).map_err(|error| SourceError::NotLocal { addr, error })?;
    }
    Ok(())
}

/// A TCP socket bound to `addr` whose port is left to `connect()`.
///
/// Without `IP_BIND_ADDRESS_NO_PORT`, `bind()` would pick the port at once, from the
/// ports free on *every* destination: one address could then hold only one range of
/// connections in total, instead of one range per destination.
pub fn bind(addr: IpAddr) -> std::io::Result<TcpSocket> {
    let socket = match addr {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let on: libc::c_int = 1;
        // SAFETY: the fd is open and owned by `socket`; the option value is a c_int that
        // outlives the call, and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                std::ptr::from_ref(&on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    socket.bind(SocketAddr::new(addr, 0))?;
    Ok(socket)
}

/// Connects to `target` from `source`, or from the address the kernel chooses.
pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    match source {
        None => TcpStream::connect(target).await,
        Some(addr) => bind(addr)?.connect(target).await,
    }
}

/// The ephemeral ports `connect()` may use, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The lowest port.
    pub first: u16,
    /// The highest port.
    pub last: u16,
}

impl PortRange {
    /// This machine's `net.ipv4.ip_local_port_range` (it applies to IPv6 too), or the
    /// kernel's default when it cannot be read.
    pub fn read() -> PortRange {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| PortRange::parse(&text))
            .unwrap_or(DEFAULT_PORT_RANGE)
    }

    fn parse(text: &str) -> Option<PortRange> {
        let mut parts = text.split_whitespace().map(str::parse::<u16>);
        let (first, last) = (parts.next()?.ok()?, parts.next()?.ok()?);
        (first <= last).then_some(PortRange { first, last })
    }

    /// How many ports the range holds.
    pub fn len(self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// The sources spread over by default: for an IPv4 loopback target on Linux, enough of
/// 127.0.0.1, 127.0.0.2, … that each (source, destination) pair holds at most a quarter
/// of the port range; otherwise none (the kernel chooses, one address per route).
///
/// A quarter, not the half where connects slow down: the margin covers what `sessions`
/// does not count (sockets in TIME_WAIT after reconnects and churn, another process
/// connecting to the same destination). Runs small enough for one address get no
/// list, so they connect exactly as an unbound socket does. Other targets get none
/// because only loopback is known to answer on every 127.x address; elsewhere the
/// addresses must be configured (`--source-addrs`).
pub fn loopback_sources(target: SocketAddr, sessions: u32, ports: PortRange) -> Vec<IpAddr> {
    let loopback_v4 = matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback());
    if !loopback_v4 || !cfg!(target_os = "linux") {
        return Vec::new();
    }
    let per_source = (ports.len() / 4).max(1);
    // 127.0.0.1 to 127.0.0.254 hold 254 quarters of the range: millions of sessions.
    let needed = sessions.div_ceil(per_source).min(254);
    if needed <= 1 {
        return Vec::new();
    }
    (1..=needed as u8)
        .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .collect()
}

/// The source for session `id`: the same one on every reconnect, and consecutive ids
/// on different sources, so any run of ids (a ramp, the open model's arrivals) spreads
/// evenly.
pub fn pick(sources: &[IpAddr], id: u32) -> Option<IpAddr> {
    if sources.is_empty() {
        return None;
    }
    Some(sources[id as usize % sources.len()])
}

/// A one-line warning when the busiest (source, destination) pair would hold more than
/// half the port range: past that, every connect walks the used ports, and the ports may
/// run out (`source_ports_exhausted`). `sessions` is the most sessions the run can hold
/// at once: the closed model's peak, or the open model's `max_sessions` cap.
pub fn crowding(
    target: SocketAddr,
    sessions: u32,
    sources: &[IpAddr],
    ports: PortRange,
) -> Option<String> {
    let per_pair = sessions.div_ceil(sources.len().max(1) as u32);
    if per_pair <= ports.len() / 2 {
        return None;
    }
    let fix = if target.ip().is_loopback() && target.is_ipv6() {
        "::1 is the only IPv6 loopback address, so it cannot be spread: target an IPv4 \
         loopback address (127.0.0.1) or widen net.ipv4.ip_local_port_range"
    } else {
        "add source addresses with --source-addrs, widen net.ipv4.ip_local_port_range, or \
         spread the load over more machines"
    };
    let from = match sources.len() {
        0 => "the one source address the kernel picks".to_string(),
        1 => format!("source {}", sources[0]),
        n => format!("each of {n} source addresses"),
    };
    Some(format!(
        "wsoak: warning: up to {per_pair} sessions from {from} to {target}, more than half \
         of the {} ephemeral ports ({}-{}): connects will slow down and may fail \
         (source_ports_exhausted); {fix}",
        ports.len(),
        ports.first,
        ports.last
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn lists_and_ranges_parse_in_order() {
        assert_eq!(
            Sources::parse("10.0.0.1, 10.0.0.2").unwrap().0,
            [v4("10.0.0.1"), v4("10.0.0.2")]
        );
        let range = Sources::parse("127.0.0.254-127.0.1.1").unwrap().0;
        assert_eq!(
            range,
            [
                v4("127.0.0.254"),
                v4("127.0.0.255"),
                v4("127.0.1.0"),
                v4("127.0.1.1")
            ]
        );
        assert_eq!(
            Sources::parse("::1,127.0.0.1-127.0.0.2").unwrap().0,
            [v4("::1"), v4("127.0.0.1"), v4("127.0.0.2")]
        );
    }

    #[test]
    fn bad_lists_name_what_is_wrong() {
        let err = |t: &str| Sources::parse(t).unwrap_err().to_string();
        assert!(err("127.0.0.8-127.0.0.1").contains("`127.0.0.8-127.0.0.1` is not a range"));
        assert!(err("127.0.0.1-::1").contains("`127.0.0.1-::1` is not a range"));
        assert!(err("127.0.0.1,localhost").contains("`localhost` is not an IP address"));
        assert!(err(" , ").contains("empty"));
        assert!(err("127.0.0.1,127.0.0.1").contains("127.0.0.1 is listed twice"));
        assert!(err("10.0.0.0-10.0.255.255").contains("more than 1024"));
        assert!(err("10.0.0.0-10.0.3.255,10.1.0.1").contains("more than 1024"));
    }

    #[cfg(target_os = "linux")] // only Linux answers on every 127.x address unconfigured
    #[test]
    fn check_refuses_a_foreign_family_and_a_foreign_address() {
        let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let family = check(&[v4("::1")], target).unwrap_err().to_string();
        assert_eq!(
            family,
            "source address ::1 is IPv6 but the target 127.0.0.1:9 is IPv4"
        );
        // TEST-NET-1 (RFC 5737) is never assigned to a machine.
        let foreign = check(&[v4("127.0.0.1"), v4("192.0.2.1")], target)
            .unwrap_err()
            .to_string();
        assert!(
            foreign.starts_with("source address 192.0.2.1 cannot be bound on this machine"),
            "{foreign}"
        );
        check(&[v4("127.0.0.1"), v4("127.0.0.2")], target).unwrap();
    }

    #[test]
    fn the_port_range_parses_and_falls_back() {
        assert_eq!(
            PortRange::parse("32768\t60999\n"),
            Some(PortRange {
                first: 32768,
                last: 60999
            })
        );
        assert_eq!(PortRange::parse("60999 32768"), None);
        assert_eq!(PortRange::parse("garbage"), None);
        assert_eq!(DEFAULT_PORT_RANGE.len(), 28_232);
    }

    #[test]
    fn loopback_targets_get_a_source_per_quarter_of_the_range() {
        let target: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let ports = DEFAULT_PORT_RANGE; // a quarter is 7,058
        if !cfg!(target_os = "linux") {
            assert!(loopback_sources(target, 15_000, ports).is_empty());
            return;
        }
        assert!(loopback_sources(target, 7_058, ports).is_empty());
        assert_eq!(
            loopback_sources(target, 7_059, ports),
            [v4("127.0.0.1"), v4("127.0.0.2")]
        );
        assert_eq!(loopback_sources(target, 15_000, ports).len(), 3);
        assert_eq!(loopback_sources(target, u32::MAX, ports).len(), 254);
        let narrow = PortRange {
            first: 40000,
            last: 40999,
        };
        assert_eq!(loopback_sources(target, 15_000, narrow).len(), 60);
        // Not loopback, or IPv6: the kernel chooses.
        assert!(loopback_sources("10.0.0.1:80".parse().unwrap(), 15_000, ports).is_empty());
        assert!(loopback_sources("[::1]:80".parse().unwrap(), 15_000, ports).is_empty());
    }

    #[test]
    fn a_session_keeps_its_source_and_neighbours_differ() {
        let sources = [v4("127.0.0.1"), v4("127.0.0.2"), v4("127.0.0.3")];
        assert_eq!(pick(&[], 7), None);
        assert_eq!(pick(&sources, 7), Some(v4("127.0.0.2")));
        assert_eq!(pick(&sources, 7), pick(&sources, 7));
        let mut counts = [0; 3];
        for id in 100..400 {
            let source = pick(&sources, id).unwrap();
            counts[sources.iter().position(|s| *s == source).unwrap()] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn crowding_warns_past_half_the_range_per_pair() {
        let ports = DEFAULT_PORT_RANGE; // half is 14,116
        let v4_target: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(crowding(v4_target, 14_116, &[], ports), None);
        let one = crowding(v4_target, 14_117, &[], ports).unwrap();
        assert!(
            one.contains("up to 14117 sessions from the one source address the kernel picks"),
            "{one}"
        );
        assert!(one.contains("--source-addrs"), "{one}");
        let two = [v4("127.0.0.1"), v4("127.0.0.2")];
        assert_eq!(crowding(v4_target, 28_232, &two, ports), None);
        assert!(crowding(v4_target, 28_233, &two, ports)
            .unwrap()
            .contains("up to 14117 sessions from each of 2 source addresses"));
        let v6 = crowding("[::1]:80".parse().unwrap(), 15_000, &[], ports).unwrap();
        assert!(v6.contains("::1 is the only IPv6 loopback address"), "{v6}");
        assert_eq!(v6.lines().count(), 1);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_bound_connect_leaves_from_its_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let mut peers = Vec::new();
            for _ in 0..2 {
                peers.push(listener.accept().await.unwrap().1.ip());
            }
            peers
        });
        let a = connect(target, Some(v4("127.0.0.2"))).await.unwrap();
        let b = connect(target, None).await.unwrap();
        assert_eq!(a.local_addr().unwrap().ip(), v4("127.0.0.2"));
        assert_ne!(a.local_addr().unwrap().port(), 0);
        assert_eq!(accepting.await.unwrap(), [v4("127.0.0.2"), v4("127.0.0.1")]);
        drop(b);
    }
}
