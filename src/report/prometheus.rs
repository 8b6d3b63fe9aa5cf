//! Live metrics in the Prometheus text exposition format (version 0.0.4), for watching a
//! soak on Grafana: `--metrics-listen 127.0.0.1:9464` serves `/metrics` during the run.
//!
//! Names follow Prometheus conventions: a `wsoak_` prefix, `_total` for counters, base
//! unit seconds. Latencies are summaries over the whole run so far (quantiles from the
//! merged HdrHistograms, plus `_sum` and `_count`). The text is rendered by the aggregator
//! once per interval; a scrape only copies it, so scraping costs the run nothing.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::{Counter, Gauges, Recorder, State};

/// The latest exposition, shared between the aggregator and the HTTP server.
pub type Exposition = Arc<Mutex<String>>;

/// Renders totals and current gauges.
pub fn render(total: &Recorder, gauges: &Gauges) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut out,
        "wsoak_sessions",
        "gauge",
        "Live sessions by state.",
    );
    for s in State::ALL {
        let _ = writeln!(
            out,
            "wsoak_sessions{{state=\"{}\"}} {}",
            s.name(),
            gauges[s.index()]
        );
    }
    for c in Counter::ALL {
        let name = format!("wsoak_{}_total", c.name().replace('.', "_"));
        head(
            &mut out,
            &name,
            "counter",
            &format!("Count of {}.", c.name()),
        );
        let _ = writeln!(out, "{name} {}", total.counter(*c));
    }
    head(
        &mut out,
        "wsoak_reconnects_total",
        "counter",
        "Reconnect episodes (connection lost, then bound again), by the cause that began them.",
    );
    for (cause, n) in total.reconnect_counts() {
        let _ = writeln!(out, "wsoak_reconnects_total{{cause=\"{cause}\"}} {n}");
    }
    head(
        &mut out,
        "wsoak_errors_total",
        "counter",
        "Failures by kind.",
    );
    for (kind, n) in total.error_counts() {
        let _ = writeln!(out, "wsoak_errors_total{{kind=\"{kind}\"}} {n}");
    }
    for (hook, n) in &total.script_errors {
        let _ = writeln!(out, "wsoak_errors_total{{kind=\"script.{hook}\"}} {n}");
    }
    head(
        &mut out,
        "wsoak_latency_seconds",
        "summary",
        "Latency per step since the start (heartbeat measured from its schedule).",
    );
    for (name, h) in total.latencies() {
        summary(&mut out, "wsoak_latency_seconds", "step", name, h);
    }
    if !total.steps.is_empty() {
        head(
            &mut out,
            "wsoak_steps_total",
            "counter",
            "Request/reply steps by name: reached (message sent), accepted, rejected, timed_out, and sessions that passed the step at least once.",
        );
        for step in &total.steps {
            for (count, n) in step.counts() {
                let _ = writeln!(
                    out,
                    "wsoak_steps_total{{step=\"{}\",count=\"{count}\"}} {n}",
                    step.name
                );
            }
        }
    }
    if !total.custom_counters.is_empty() {
        head(
            &mut out,
            "wsoak_script_total",
            "counter",
            "Counters scripts recorded.",
        );
        for (name, n) in &total.custom_counters {
            let _ = writeln!(out, "wsoak_script_total{{name=\"{}\"}} {n}", label(name));
        }
    }
    if !total.custom_latencies.is_empty() {
        head(
            &mut out,
            "wsoak_script_latency_seconds",
            "summary",
            "Latencies scripts recorded.",
        );
        for (name, h) in &total.custom_latencies {
            summary(
                &mut out,
                "wsoak_script_latency_seconds",
                "name",
                &label(name),
                h,
            );
        }
    }
    out
}

fn summary(out: &mut String, name: &str, key: &str, value: &str, h: &Histogram<u64>) {
    for q in [0.5, 0.9, 0.99, 0.999] {
        let v = if h.is_empty() {
            "NaN".to_string()
        } else {
            format!("{}", h.value_at_quantile(q) as f64 / 1e6)
        };
        let _ = writeln!(out, "{name}{{{key}=\"{value}\",quantile=\"{q}\"}} {v}");
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{{{key}=\"{value}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{{key}=\"{value}\"}} {}", h.len());
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let text = render(&r, &[0; State::COUNT]);
        assert!(text.contains("wsoak_heartbeats_acked_total 1\n"), "{text}");
        assert!(text.contains("wsoak_latency_seconds_count{step=\"heartbeat\"} 1\n"));
        assert!(text.contains("wsoak_latency_seconds{step=\"heartbeat\",quantile=\"0.99\"} 0.0015"));
        assert!(text.contains("wsoak_script_total{name=\"kick\\\"ed\"} 1"));
        // Steps are named by the scenario, not by the code.
        assert!(text.contains("wsoak_latency_seconds{step=\"auth\",quantile=\"0.5\"} NaN"));
        assert!(text.contains("wsoak_latency_seconds_count{step=\"subscribe\"} 0\n"));
        assert!(text.contains("wsoak_steps_total{step=\"subscribe\",count=\"reached\"} 2\n"));
        assert!(text.contains("wsoak_errors_total{kind=\"subscribe_rejected\"} 1\n"));
        assert!(text.contains("wsoak_reconnects_total{cause=\"subscribe_rejected\"} 1\n"));
        assert!(!text.contains("bind_card"), "{text}");
    }
}
