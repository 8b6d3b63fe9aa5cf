//! Live metrics in the Prometheus text exposition format (version 0.0.4), for watching a
//! soak on Grafana: `--metrics-listen 127.0.0.1:9464` serves `/metrics` during the run.
//!
//! Names follow Prometheus conventions: a `wsoak_` prefix, `_total` for counters, base
//! unit seconds. Every series carries the [`Labels`] `run`, `scenario` and `shard`, so the
//! shards of one run can be summed and told apart. Latencies are classic histograms
//! (cumulative since the start) with the same fixed buckets ([`BUCKETS_US`]) in every
//! process, counted exactly from the merged HdrHistograms, so that
//! `sum by (le) (rate(wsoak_latency_seconds_bucket[1m]))` adds up across shards and
//! windows. The text is rendered by the aggregator once per interval; a scrape only
//! copies it, so scraping costs the run nothing.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::{Counter, Gauges, Recorder, State};

/// The latest exposition, shared between the aggregator and the HTTP server.
pub type Exposition = Arc<Mutex<String>>;

/// The labels every wsoak series carries: which run, scenario and shard it measures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// The run's name: its run directory's (`mini-20261129T150000Z`).
    pub run: String,
    /// The scenario's name.
    pub scenario: String,
    /// Which shard of the run this process runs (`0` when the run is not split).
    pub shard: String,
}

/// The upper bounds of every latency histogram's buckets in microseconds, the unit the
/// HdrHistograms record in (`+Inf` comes after them). From 100 µs, a reply on loopback,
/// to 60 s, past any timeout and a long reconnect episode, in 1–2.5–5 steps. Fixed, and
/// the same in every process: buckets with the same `le` on every shard are what make
/// `sum by (le)` across shards exact. Changing them splits a run's series in two.
pub const BUCKETS_US: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Renders totals and current gauges, every series labelled with `labels`.
pub fn render(total: &Recorder, gauges: &Gauges, labels: &Labels) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let common = common_labels(labels);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "wsoak_build_info",
        "gauge",
        "A metric with a constant '1' value labeled by the version, OS and architecture \
         wsoak was built for.",
    );
    sample(
        &mut out,
        "wsoak_build_info",
        &common,
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ],
        1,
    );
    family(
        &mut out,
        "wsoak_sessions",
        "gauge",
        "Live sessions by state.",
    );
    for s in State::ALL {
        let n = gauges[s.index()];
        sample(
            &mut out,
            "wsoak_sessions",
            &common,
            &[("state", s.name())],
            n,
        );
    }
    for c in Counter::ALL {
        let name = format!("wsoak_{}_total", c.name().replace('.', "_"));
        family(
            &mut out,
            &name,
            "counter",
            &format!("Count of {}.", c.name()),
        );
        sample(&mut out, &name, &common, &[], total.counter(*c));
    }
    family(
        &mut out,
        "wsoak_reconnects_total",
        "counter",
        "Reconnect episodes (connection lost, then bound again), by the cause that began them.",
    );
    for (cause, n) in total.reconnect_counts() {
        sample(
            &mut out,
            "wsoak_reconnects_total",
            &common,
            &[("cause", &cause)],
            n,
        );
    }
    family(
        &mut out,
        "wsoak_errors_total",
        "counter",
        "Failures by kind.",
    );
    for (kind, n) in total.error_counts() {
        sample(
            &mut out,
            "wsoak_errors_total",
            &common,
            &[("kind", &kind)],
            n,
        );
    }
    for (hook, n) in &total.script_errors {
        let kind = format!("script.{hook}");
        sample(
            &mut out,
            "wsoak_errors_total",
            &common,
            &[("kind", &kind)],
            n,
        );
    }
    family(
        &mut out,
        "wsoak_latency_seconds",
        "histogram",
        "Latency per step since the start (heartbeat measured from its schedule).",
    );
    for (name, h) in total.latencies() {
        histogram(
            &mut out,
            "wsoak_latency_seconds",
            &common,
            ("step", name),
            h,
        );
    }
    if !total.steps.is_empty() {
        family(
            &mut out,
            "wsoak_steps_total",
            "counter",
            "Request/reply steps by name: reached (message sent), accepted, rejected, timed_out, and sessions that passed the step at least once.",
        );
        for step in &total.steps {
            for (count, n) in step.counts() {
                let own = [("step", &*step.name), ("count", count)];
                sample(&mut out, "wsoak_steps_total", &common, &own, n);
            }
        }
    }
    if !total.custom_counters.is_empty() {
        family(
            &mut out,
            "wsoak_script_total",
            "counter",
            "Counters scripts recorded.",
        );
        for (name, n) in &total.custom_counters {
            sample(
                &mut out,
                "wsoak_script_total",
                &common,
                &[("name", name)],
                n,
            );
        }
    }
    if !total.custom_latencies.is_empty() {
        family(
            &mut out,
            "wsoak_script_latency_seconds",
            "histogram",
            "Latencies scripts recorded, since the start.",
        );
        for (name, h) in &total.custom_latencies {
            histogram(
                &mut out,
                "wsoak_script_latency_seconds",
                &common,
                ("name", name),
                h,
            );
        }
    }
    out
}

/// `run="…",scenario="…",shard="…"`, escaped, for the start of every label set.
fn common_labels(labels: &Labels) -> String {
    format!(
        "run=\"{}\",scenario=\"{}\",shard=\"{}\"",
        escape(&labels.run),
        escape(&labels.scenario),
        escape(&labels.shard)
    )
}

/// Writes one sample: `name{common,own…} value`.
fn sample(
    out: &mut String,
    name: &str,
    common: &str,
    own: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    let _ = write!(out, "{name}{{{common}");
    for (key, v) in own {
        let _ = write!(out, ",{key}=\"{}\"", escape(v));
    }
    let _ = writeln!(out, "}} {value}");
}

/// Writes one latency histogram's series: a `_bucket` per bound and `+Inf`, `_sum` in
/// seconds and `_count`.
fn histogram(
    out: &mut String,
    name: &str,
    common: &str,
    (key, value): (&str, &str),
    h: &Histogram<u64>,
) {
    let bucket = format!("{name}_bucket");
    let counts = cumulative(h, &BUCKETS_US);
    for (bound, n) in BUCKETS_US.iter().zip(&counts) {
        let le = seconds(*bound);
        sample(out, &bucket, common, &[(key, value), ("le", &le)], n);
    }
    let inf = counts.last().copied().unwrap_or(0);
    sample(out, &bucket, common, &[(key, value), ("le", "+Inf")], inf);
    let sum = sum_us(h) as f64 / 1e6;
    sample(out, &format!("{name}_sum"), common, &[(key, value)], sum);
    sample(
        out,
        &format!("{name}_count"),
        common,
        &[(key, value)],
        h.len(),
    );
}

/// A bound in microseconds as an `le` value in seconds: `2500` → `0.0025`.
fn seconds(us: u64) -> String {
    (us as f64 / 1e6).to_string()
}

/// The cumulative count of `h`'s samples at or below each of `bounds` (microseconds,
/// ascending), then of all its samples (`+Inf`): `bounds.len() + 1` counts.
///
/// An HdrHistogram keeps three significant digits: each recorded value stands for its
/// equivalence range (values below 2048 µs alone; 2500 µs for 2500–2501, 25000 µs for
/// 24992–25007). The rule for a bound: **a sample counts as at or below the bound when
/// the lowest value of its equivalence range is**. So a sample exactly on a bound is
/// always in that bound's bucket, and so are the samples the histogram cannot tell from
/// the bound (above it by less than 0.1%). It is the rule of HdrHistogram's own
/// `count_between(0, bound)`.
fn cumulative(h: &Histogram<u64>, bounds: &[u64]) -> Vec<u64> {
    let mut counts = vec![0u64; bounds.len() + 1];
    let mut bucket = 0;
    // Recorded values come in ascending order, so the bucket only moves forward.
    for v in h.iter_recorded() {
        let lowest = h.lowest_equivalent(v.value_iterated_to());
        while bucket < bounds.len() && bounds[bucket] < lowest {
            bucket += 1;
        }
        counts[bucket] += v.count_at_value();
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    counts
}

/// The sum of `h`'s samples in microseconds, each taken at the middle of its equivalence
/// range, as HdrHistogram's `mean` takes it (so `_sum / _count` is the report's mean).
fn sum_us(h: &Histogram<u64>) -> u128 {
    h.iter_recorded()
        .map(|v| {
            u128::from(h.median_equivalent(v.value_iterated_to())) * u128::from(v.count_at_value())
        })
        .sum()
}

/// Escapes a label value as the text format asks: backslash, double quote and newline.
fn escape(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// Scrapes served at once. A scraper is one Prometheus or a person with curl; the cap
/// bounds the descriptors the listener can take from the run's open-file budget (the
/// run counts `MAX_CONNECTIONS + 1` for it), and later connections wait in the backlog,
/// holding no descriptor of ours, until one is done.
pub const MAX_CONNECTIONS: usize = 4;

/// The longest one scrape may take, reading the request to writing the reply: a client
/// that stalls must not hold one of the few slots for long.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `/metrics` from `listener` until the task is dropped. Each connection gets
/// the latest exposition and is closed.
pub async fn serve(listener: TcpListener, exposition: Exposition) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A slot first, then accept: past the cap, connections stay in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let Ok((socket, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off briefly instead of spinning
            // on an error that will not go away by itself at once.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(socket, exposition)).await;
        });
    }
}

/// Answers one HTTP request: the exposition for `/metrics`, 404 otherwise.
async fn scrape(mut socket: tokio::net::TcpStream, exposition: Exposition) {
    let mut request = [0u8; 2048];
    let mut read = 0;
    // Read the request head (bounded), then answer.
    while read < request.len() {
        match socket.read(&mut request[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&request[..read]);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let metrics = path == "/metrics" || path.starts_with("/metrics?");
    let response = if metrics && matches!(method, "GET" | "HEAD") {
        let body = exposition.lock().map(|t| t.clone()).unwrap_or_default();
        // HEAD: the same head, no body.
        let shown = if method == "HEAD" { "" } else { body.as_str() };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{shown}",
            body.len()
        )
    } else if metrics {
        let body = "only GET and HEAD\n";
        format!(
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        let body = "wsoak serves /metrics\n";
        format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_get_and_head_of_metrics_are_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exposition: Exposition = Arc::new(Mutex::new("wsoak_up 1\n".into()));
        let server = tokio::spawn(serve(listener, exposition));
        let ask = |request: &'static str| async move {
            let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
            socket.write_all(request.as_bytes()).await.unwrap();
            let mut reply = Vec::new();
            socket.read_to_end(&mut reply).await.unwrap();
            String::from_utf8(reply).unwrap()
        };
        let get = ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(get.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(get.ends_with("\r\n\r\nwsoak_up 1\n"), "{get}");
        let head = ask("HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 11\r\n") && head.ends_with("\r\n\r\n"));
        let post = ask("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        let other = ask("GET /other HTTP/1.1\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        server.abort();
    }

    #[tokio::test]
    async fn at_most_a_few_scrapes_are_served_at_once_and_the_rest_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exposition: Exposition = Arc::new(Mutex::new("wsoak_up 1\n".into()));
        let server = tokio::spawn(serve(listener, exposition));
        // Clients that connect and say nothing take every slot.
        let mut silent = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut scraper = tokio::net::TcpStream::connect(addr).await.unwrap();
        scraper
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            scraper.read_to_end(&mut reply),
        )
        .await;
        assert!(waited.is_err(), "answered while every slot was taken");
        // One silent client leaves: its slot goes to the waiting scraper.
        drop(silent.pop());
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            scraper.read_to_end(&mut reply),
        )
        .await
        .unwrap()
        .unwrap();
        let text = String::from_utf8_lossy(&reply[..n]);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.ends_with("wsoak_up 1\n"), "{text}");
        server.abort();
    }

    fn labels() -> Labels {
        Labels {
            run: "mini-20261129T150000Z".into(),
            scenario: "mini".into(),
            shard: "0".into(),
        }
    }

    const COMMON: &str = r#"run="mini-20261129T150000Z",scenario="mini",shard="0""#;

    /// The value of the one sample line that starts with `series `.
    fn value(text: &str, series: &str) -> f64 {
        let mut found = text
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
        let v = found
            .next()
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(found.next().is_none(), "{series} twice");
        v.parse().unwrap()
    }

    /// A latency histogram holding `values` (µs).
    fn holding(values: &[u64]) -> Histogram<u64> {
        let mut h = crate::metrics::new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn exposition_names_follow_conventions() {
        let mut r = Recorder::for_steps(&["auth".into(), "subscribe".into()]);
        r.count(Counter::HeartbeatsAcked);
        r.step(1).reached += 2;
        r.step(1).rejected += 1;
        r.step(1).rejected_reconnects += 1;
        r.record(
            crate::metrics::Metric::Heartbeat,
            std::time::Duration::from_micros(1500),
        );
        r.custom_count("kick\"ed");
        let text = render(&r, &[0; State::COUNT], &labels());
        let has = |line: String| assert!(text.contains(&line), "{line} not in\n{text}");
        has(format!("wsoak_heartbeats_acked_total{{{COMMON}}} 1\n"));
        has("# TYPE wsoak_latency_seconds histogram\n".into());
        has(format!(
            "wsoak_latency_seconds_count{{{COMMON},step=\"heartbeat\"}} 1\n"
        ));
        has(format!(
            "wsoak_latency_seconds_bucket{{{COMMON},step=\"heartbeat\",le=\"0.001\"}} 0\n"
        ));
        has(format!(
            "wsoak_latency_seconds_bucket{{{COMMON},step=\"heartbeat\",le=\"0.0025\"}} 1\n"
        ));
        has(format!(
            "wsoak_latency_seconds_sum{{{COMMON},step=\"heartbeat\"}} 0.0015\n"
        ));
        has(format!(
            "wsoak_script_total{{{COMMON},name=\"kick\\\"ed\"}} 1\n"
        ));
        // Steps are named by the scenario, not by the code; an empty histogram is zeros.
        has(format!(
            "wsoak_latency_seconds_bucket{{{COMMON},step=\"auth\",le=\"+Inf\"}} 0\n"
        ));
        has(format!(
            "wsoak_latency_seconds_sum{{{COMMON},step=\"auth\"}} 0\n"
        ));
        has(format!(
            "wsoak_latency_seconds_count{{{COMMON},step=\"subscribe\"}} 0\n"
        ));
        has(format!(
            "wsoak_steps_total{{{COMMON},step=\"subscribe\",count=\"reached\"}} 2\n"
        ));
        has(format!(
            "wsoak_errors_total{{{COMMON},kind=\"subscribe_rejected\"}} 1\n"
        ));
        has(format!(
            "wsoak_reconnects_total{{{COMMON},cause=\"subscribe_rejected\"}} 1\n"
        ));
        assert!(!text.contains("bind_card"), "{text}");
        assert!(
            !text.contains("quantile") && !text.contains("NaN"),
            "{text}"
        );
        // HELP and TYPE once per family, before its samples, which are contiguous; every
        // sample carries the run's labels first.
        let mut families: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(!families.iter().any(|f| f == name), "{name} typed twice");
                families.push(name.to_string());
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let family = families.last().expect("a sample before any TYPE");
            let name = line.split('{').next().unwrap();
            let of_family = name == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family.as_str()));
            assert!(of_family, "{line} outside its family {family}");
            assert!(line.starts_with(&format!("{name}{{{COMMON}")), "{line}");
        }
        assert_eq!(text.matches("# HELP ").count(), families.len());
    }

    #[test]
    fn bucket_bounds_are_fixed_round_seconds_ending_with_inf() {
        let text = render(&Recorder::new(), &[0; State::COUNT], &labels());
        let prefix = format!("wsoak_latency_seconds_bucket{{{COMMON},step=\"heartbeat\",le=\"");
        let les: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix)?.split('"').next())
            .collect();
        assert_eq!(
            les,
            [
                "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"
            ]
        );
    }

    #[test]
    fn a_sample_on_a_bound_is_in_its_bucket_and_one_just_above_is_not() {
        // The equivalence ranges this test relies on: below 2048 µs every value is its
        // own; 2500–2501, 2502–2503, 24976–24991, 24992–25007 and 25008–25023 are one
        // range each.
        let h = holding(&[]);
        assert_eq!(h.equivalent_range(1000), 1);
        assert_eq!(h.lowest_equivalent(2501), 2500);
        assert_eq!(h.lowest_equivalent(2502), 2502);
        assert_eq!(h.lowest_equivalent(25000), 24992);
        assert_eq!(h.highest_equivalent(25000), 25007);
        assert_eq!(h.lowest_equivalent(25008), 25008);
        let h = holding(&[
            99,
            100,   // on 0.0001, representable
            1000,  // on 0.001, representable
            1001,  // just above it
            2500,  // on 0.0025, whose range is 2500–2501
            2501,  // above it, but in its range: counted with it
            2502,  // the next range
            24991, // below 0.025, in the range before its own
            25007, // above 0.025, in its range 24992–25007: counted with it
            25008, // the next range
            3_600_000_000,
        ]);
        let counts = cumulative(&h, &BUCKETS_US);
        assert_eq!(
            counts,
            [2, 2, 2, 3, 6, 7, 7, 9, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11]
        );
        // The rule is HdrHistogram's own, and +Inf is every sample.
        for (bound, n) in BUCKETS_US.iter().zip(&counts) {
            assert_eq!(h.count_between(0, *bound), *n, "le {bound} µs");
        }
        assert_eq!(counts[BUCKETS_US.len()], h.len());
        // Rendered: cumulative, monotone, +Inf and _count equal.
        let mut r = Recorder::new();
        r.histograms[crate::metrics::Metric::Connect.index()] = h;
        let text = render(&r, &[0; State::COUNT], &labels());
        let series = |le: &str| {
            format!("wsoak_latency_seconds_bucket{{{COMMON},step=\"connect\",le=\"{le}\"}}")
        };
        assert_eq!(value(&text, &series("0.0001")), 2.0);
        assert_eq!(value(&text, &series("0.001")), 3.0);
        assert_eq!(value(&text, &series("0.0025")), 6.0);
        assert_eq!(value(&text, &series("0.005")), 7.0);
        assert_eq!(value(&text, &series("0.025")), 9.0);
        assert_eq!(value(&text, &series("0.05")), 10.0);
        assert_eq!(value(&text, &series("60")), 10.0);
        assert_eq!(value(&text, &series("+Inf")), 11.0);
        let count = format!("wsoak_latency_seconds_count{{{COMMON},step=\"connect\"}}");
        assert_eq!(value(&text, &count), 11.0);
        let prefix = format!("wsoak_latency_seconds_bucket{{{COMMON},step=\"connect\",");
        let mut last = 0.0;
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            let n: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
            assert!(n >= last, "{line}");
            last = n;
        }
        assert_eq!(last, 11.0);
    }

    #[test]
    fn sum_is_in_seconds_and_count_is_every_sample() {
        let mut r = Recorder::new();
        for us in [1000, 1500, 250] {
            r.record(
                crate::metrics::Metric::ScheduleLag,
                std::time::Duration::from_micros(us),
            );
        }
        r.custom_record("db\\query", std::time::Duration::from_micros(2000));
        let text = render(&r, &[0; State::COUNT], &labels());
        let step = format!("{COMMON},step=\"schedule_lag\"");
        assert_eq!(
            value(&text, &format!("wsoak_latency_seconds_sum{{{step}}}")),
            0.00275
        );
        assert_eq!(
            value(&text, &format!("wsoak_latency_seconds_count{{{step}}}")),
            3.0
        );
        assert_eq!(
            value(
                &text,
                &format!("wsoak_latency_seconds_bucket{{{step},le=\"0.00025\"}}")
            ),
            1.0
        );
        // Script latencies are histograms too, by name.
        assert!(text.contains("# TYPE wsoak_script_latency_seconds histogram\n"));
        let name = format!("{COMMON},name=\"db\\\\query\"");
        for (series, n) in [
            (
                format!("wsoak_script_latency_seconds_bucket{{{name},le=\"0.001\"}}"),
                0.0,
            ),
            (
                format!("wsoak_script_latency_seconds_bucket{{{name},le=\"0.0025\"}}"),
                1.0,
            ),
            (
                format!("wsoak_script_latency_seconds_bucket{{{name},le=\"+Inf\"}}"),
                1.0,
            ),
            (format!("wsoak_script_latency_seconds_sum{{{name}}}"), 0.002),
            (format!("wsoak_script_latency_seconds_count{{{name}}}"), 1.0),
        ] {
            assert_eq!(value(&text, &series), n, "{series}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\\b \"q\"\nz"), "a\\\\b \\\"q\\\"\\nz");
        let odd = Labels {
            run: "C:\\runs\\1".into(),
            scenario: "say \"hi\"".into(),
            shard: "0\n1".into(),
        };
        let text = render(&Recorder::new(), &[0; State::COUNT], &odd);
        let escaped = r#"{run="C:\\runs\\1",scenario="say \"hi\"",shard="0\n1""#;
        assert!(
            text.contains(&format!("wsoak_heartbeats_sent_total{escaped}}} 0\n")),
            "{text}"
        );
        // No raw newline inside a label set: every line is a comment or a whole sample.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("wsoak_"),
                "{line}"
            );
        }
    }

    #[test]
    fn build_info_is_one_with_the_version_and_the_run_labels() {
        let text = render(&Recorder::new(), &[0; State::COUNT], &labels());
        let line = format!(
            "wsoak_build_info{{{COMMON},version=\"{}\",os=\"{}\",arch=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        assert!(text.contains(&line), "{line} not in\n{text}");
        assert!(text.contains("# TYPE wsoak_build_info gauge\n"));
        assert_eq!(text.matches("wsoak_build_info{").count(), 1);
    }
}
