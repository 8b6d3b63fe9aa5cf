//! Reports: the HTML in a real browser, the HdrHistogram log through the crate's reader,
//! live Prometheus metrics, `wsoak report` after a crash, and `wsoak compare`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wsoak::report::{hlog, read_intervals, Report};

mod common;
use common::{wsoak, FLOW};

const HEAD: &str = "\
sessions: 30
duration: 2500ms
server: {drop_after: 1200ms}
reconnect: {delay: 100ms}
";

fn scenario(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("s.yaml");
    std::fs::write(&path, format!("{HEAD}{FLOW}{extra}")).unwrap();
    path
}

fn run_in_process(args: &[&str]) -> wsoak::RunOutput {
    common::run(args).unwrap()
}

#[test]
fn hlog_round_trips_through_the_crate_reader() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "");
    let report = dir.path().join("run/report.json");
    let out = run_in_process(&[
        s.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--interval",
        "500ms",
    ]);
    let bytes = std::fs::read(dir.path().join("run/latency.hlog")).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("#[StartTime: "), "{text}");
    assert!(text.contains("#[BaseTime: "), "{text}");
    // Per interval: the histogram in the log is the one the interval line summarised.
    let lines = read_intervals(&out.intervals).unwrap();
    let mut per_interval: Vec<BTreeMap<String, hdrhistogram::Histogram<u64>>> = Vec::new();
    let mut last_start = None;
    hlog::for_each(&bytes, |tag, start, h| {
        if last_start != Some(start) {
            per_interval.push(BTreeMap::new());
            last_start = Some(start);
        }
        per_interval.last_mut().unwrap().insert(tag.to_string(), h);
        Ok(())
    })
    .unwrap();
    let with_latency: Vec<_> = lines.iter().filter(|l| !l.latency_ms.is_empty()).collect();
    assert_eq!(per_interval.len(), with_latency.len());
    for (line, logged) in with_latency.iter().zip(&per_interval) {
        for (metric, latency) in &line.latency_ms {
            let h = &logged[metric];
            assert_eq!(h.len(), latency.count, "{metric} count");
            assert_eq!(
                Some(h.value_at_quantile(0.99) as f64 / 1000.0),
                latency.p99,
                "{metric} p99"
            );
            assert_eq!(Some(h.max() as f64 / 1000.0), latency.max, "{metric} max");
        }
    }
    // Merged, the log gives the report's totals exactly.
    let totals = hlog::read_totals(&dir.path().join("run/latency.hlog")).unwrap();
    for (metric, latency) in &out.report.latency_ms {
        match totals.get(metric) {
            Some(h) => {
                assert_eq!(h.len(), latency.count, "{metric}");
                assert_eq!(Some(h.value_at_quantile(0.5) as f64 / 1000.0), latency.p50);
                assert_eq!(
                    Some(h.value_at_quantile(0.999) as f64 / 1000.0),
                    latency.p999
                );
            }
            None => assert_eq!(latency.count, 0, "{metric}"),
        }
    }
    assert!(out.report.latency_ms["reconnect"].count >= 30);
}

/// Minimal validator for the Prometheus text exposition format (0.0.4): names, HELP and
/// TYPE at most once per family and before its samples, a family's samples together,
/// counters named `_total`, and a histogram's buckets cumulative in ascending `le`,
/// ending with `+Inf`, which equals its `_count`.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    // Families whose samples are over: none may come back.
    let mut done: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    // A histogram's buckets by the series they belong to (`_count`'s name and labels):
    // each bucket's `le` and value, in order.
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(name_ok(name), "{line}");
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(!helped.iter().any(|h| h == name), "HELP twice: {line}");
            helped.push(name.to_string());
            continue;
        }
        if line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "{line}");
        let labels = series.strip_prefix(name).unwrap();
        let mut le = None;
        if !labels.is_empty() {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(name_ok(k) && v.starts_with('"'), "{line}");
                if k == "le" {
                    le = Some(v.trim_matches('"').to_string());
                }
            }
        }
        let value: f64 = match value {
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(name);
        let kind = typed
            .get(family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if current.as_deref() != Some(family) {
            assert!(!done.iter().any(|d| d == family), "family split: {line}");
            done.extend(current.replace(family.to_string()));
        }
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
        if kind == "histogram" && name.ends_with("_bucket") {
            let le = le.unwrap_or_else(|| panic!("bucket without le: {line}"));
            let le: f64 = match le.as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad le: {line}")),
            };
            let rest = match labels.split_once("le=") {
                Some((before, _)) => before.trim_end_matches(','),
                None => labels,
            };
            let of = match rest {
                "{" => format!("{family}_count"),
                rest if rest.ends_with('}') => format!("{family}_count{rest}"),
                rest => format!("{family}_count{rest}}}"),
            };
            buckets.entry(of).or_default().push((le, value));
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "series twice: {line}"
        );
    }
    for (count, series) in &buckets {
        for pair in series.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{count}: le not ascending");
            assert!(pair[0].1 <= pair[1].1, "{count}: buckets not cumulative");
        }
        let (le, inf) = *series.last().unwrap();
        assert_eq!(le, f64::INFINITY, "{count}: no +Inf bucket");
        assert_eq!(
            samples.get(count),
            Some(&inf),
            "{count} is not its +Inf bucket"
        );
    }
    samples
}

/// The validator above is the only check of the exposition format (promtool is not
/// installed for it: Debian ships it inside the whole Prometheus server), so it must be
/// able to fail.
#[test]
fn exposition_validator_rejects_broken_text() {
    let good = "# HELP wsoak_x_total X.\n# TYPE wsoak_x_total counter\nwsoak_x_total 3\n\
                # TYPE wsoak_l_seconds histogram\n\
                wsoak_l_seconds_bucket{step=\"a\",le=\"0.1\"} 1\n\
                wsoak_l_seconds_bucket{step=\"a\",le=\"+Inf\"} 2\n\
                wsoak_l_seconds_sum{step=\"a\"} 1\nwsoak_l_seconds_count{step=\"a\"} 2\n";
    assert_eq!(parse_exposition(good).len(), 5);
    let histogram = |buckets: &str, count: u32| {
        format!(
            "# TYPE wsoak_l histogram\n{buckets}wsoak_l_sum{{s=\"a\"}} 1\n\
             wsoak_l_count{{s=\"a\"}} {count}\n"
        )
    };
    for bad in [
        "wsoak_x_total 3\n".to_string(), // sample before its TYPE
        "# TYPE wsoak_x counter\nwsoak_x 3\n".into(), // counter without _total
        "# TYPE wsoak_x_total counter\nwsoak_x_total three\n".into(), // not a number
        "# TYPE wsoak_x_total counter\nwsoak_x_total 1\nwsoak_x_total 2\n".into(), // twice
        "# TYPE 1wsoak gauge\n".into(),  // bad name
        "# TYPE wsoak_g gauge\nwsoak_g{state=bound} 1\n".into(), // unquoted label
        "# TYPE wsoak_g meter\n".into(), // unknown type
        "# TYPE wsoak_g gauge\n# TYPE wsoak_g gauge\n".into(), // TYPE twice
        "# HELP wsoak_g G.\n# HELP wsoak_g G.\n".into(), // HELP twice
        "# nonsense\n".into(),           // unknown comment
        // A family's samples apart.
        "# TYPE wsoak_g gauge\n# TYPE wsoak_h gauge\nwsoak_g 1\nwsoak_h 1\nwsoak_g{a=\"b\"} 1\n"
            .into(),
        // Buckets that fall, come out of order, lack +Inf, or disagree with _count.
        histogram(
            "wsoak_l_bucket{s=\"a\",le=\"1\"} 2\nwsoak_l_bucket{s=\"a\",le=\"+Inf\"} 1\n",
            1,
        ),
        histogram(
            "wsoak_l_bucket{s=\"a\",le=\"2\"} 1\nwsoak_l_bucket{s=\"a\",le=\"1\"} 1\n\
             wsoak_l_bucket{s=\"a\",le=\"+Inf\"} 1\n",
            1,
        ),
        histogram("wsoak_l_bucket{s=\"a\",le=\"1\"} 1\n", 1),
        histogram(
            "wsoak_l_bucket{s=\"a\",le=\"1\"} 1\nwsoak_l_bucket{s=\"a\",le=\"+Inf\"} 2\n",
            3,
        ),
    ] {
        let caught = std::panic::catch_unwind(|| parse_exposition(&bad));
        assert!(caught.is_err(), "accepted: {bad:?}");
    }
}

fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

#[test]
fn live_metrics_are_valid_and_agree_with_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let report = dir.path().join("run/report.json");
    let args: Vec<String> = vec![
        s.to_str().unwrap().into(),
        "--report".into(),
        report.to_str().unwrap().into(),
        "--interval".into(),
        "250ms".into(),
        "--metrics-listen".into(),
        addr.clone(),
    ];
    let runner = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_in_process(&args)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let live = parse_exposition(&scrape(&addr));
    let out = runner.join().unwrap();
    let final_text = std::fs::read_to_string(dir.path().join("run/metrics.prom")).unwrap();
    let last = parse_exposition(&final_text);
    let r = &out.report;
    let get =
        |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or_else(|| panic!("{k}"));
    for (key, value) in [
        (series("wsoak_sessions_bound_total", ""), r.sessions.bound),
        (
            series("wsoak_heartbeats_acked_total", ""),
            r.heartbeats.acked,
        ),
        (series("wsoak_heartbeats_sent_total", ""), r.heartbeats.sent),
        (
            series("wsoak_connects_attempted_total", ""),
            r.connects.attempted,
        ),
        (
            series("wsoak_reconnects_total", "cause=\"server_close\""),
            r.reconnects.by_cause["server_close"],
        ),
        (
            series("wsoak_errors_total", "kind=\"server_reset\""),
            r.errors["server_reset"],
        ),
        (
            series("wsoak_latency_seconds_count", "step=\"heartbeat\""),
            r.latency_ms["heartbeat"].count,
        ),
    ] {
        assert_eq!(get(&last, &key), value as f64, "{key}");
        assert!(get(&live, &key) <= value as f64, "{key} only grows");
    }
    assert!(get(&live, &series("wsoak_heartbeats_acked_total", "")) > 0.0);
    let live_sessions: f64 = live
        .iter()
        .filter(|(k, _)| k.starts_with("wsoak_sessions{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        live_sessions, 30.0,
        "every session is in some state mid-run"
    );
}

/// The labels every series of a run of `s.yaml` written to `run/report.json` carries.
const RUN_LABELS: &str = r#"run="run",scenario="s",shard="0""#;

/// `name{RUN_LABELS,own}`.
fn series(name: &str, own: &str) -> String {
    match own {
        "" => format!("{name}{{{RUN_LABELS}}}"),
        own => format!("{name}{{{RUN_LABELS},{own}}}"),
    }
}

/// Every tag's histograms in a `latency.hlog`, merged, decoded with the hdrhistogram
/// crate alone.
fn hlog_totals(path: &Path) -> BTreeMap<String, hdrhistogram::Histogram<u64>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let bytes = std::fs::read(path).unwrap();
    let mut deserializer = hdrhistogram::serialization::Deserializer::new();
    let mut totals: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.unwrap() else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .unwrap();
        let h: hdrhistogram::Histogram<u64> =
            deserializer.deserialize(&mut raw.as_slice()).unwrap();
        let tag = interval.tag().unwrap().as_str().to_string();
        match totals.get_mut(&tag) {
            Some(total) => total.add(&h).unwrap(),
            None => drop(totals.insert(tag, h)),
        }
    }
    totals
}

/// The exposition's latency histograms count exactly what the run recorded: for every
/// step and script latency, `_count` and `+Inf` are the report's count, and each
/// `le` bucket holds the samples at or below `le` in the run's `latency.hlog`. A sample
/// counts as at or below `le` when the lowest value of its HdrHistogram equivalence
/// range is, which is the crate's `count_between(0, le)`.
#[test]
fn exposition_histograms_count_the_logged_samples_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // A script latency of 1 to 7 ms by session: on and between the bucket bounds.
    std::fs::write(
        dir.path().join("hooks.rhai"),
        "fn heartbeat_reply(session, msg) {\n\
         \x20   if msg.msgType != \"heartBeat_ack\" { return false; }\n\
         \x20   session.record(\"think\", 1 + session.id % 7);\n\
         \x20   true\n\
         }\n",
    )
    .unwrap();
    let s = scenario(dir.path(), "script: hooks.rhai\n");
    let report = dir.path().join("run/report.json");
    let out = run_in_process(&[
        s.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--interval",
        "250ms",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let run = dir.path().join("run");
    let text = std::fs::read_to_string(run.join("metrics.prom")).unwrap();
    let samples = parse_exposition(&text);
    let logged = hlog_totals(&run.join("latency.hlog"));
    let r = &out.report;
    let latencies = r.latency_ms.iter().map(|(step, l)| {
        (
            "wsoak_latency_seconds",
            "step",
            step.clone(),
            step.clone(),
            l,
        )
    });
    let custom = r.custom.latency_ms.iter().map(|(name, l)| {
        let tag = format!("custom.{name}");
        ("wsoak_script_latency_seconds", "name", name.clone(), tag, l)
    });
    let mut checked = 0;
    for (family, key, name, tag, latency) in latencies.chain(custom) {
        let own = format!("{key}=\"{name}\"");
        let get = |series: &str| {
            samples
                .get(series)
                .copied()
                .unwrap_or_else(|| panic!("{series} not in\n{text}"))
        };
        let count = latency.count as f64;
        assert_eq!(get(&series(&format!("{family}_count"), &own)), count);
        let inf = format!("{own},le=\"+Inf\"");
        assert_eq!(get(&series(&format!("{family}_bucket"), &inf)), count);
        // `_sum` is in seconds, and over `_count` the report's mean (rounded to the µs).
        let sum = get(&series(&format!("{family}_sum"), &own));
        if let Some(mean) = latency.mean {
            assert!(
                (sum / count * 1000.0 - mean).abs() < 0.0006,
                "{name}: {sum}"
            );
        } else {
            assert_eq!(sum, 0.0);
        }
        let h = logged.get(&tag);
        assert_eq!(h.map_or(0, |h| h.len()), latency.count, "{tag}");
        let prefix = series(&format!("{family}_bucket"), &format!("{own},le=\""));
        let prefix = prefix.trim_end_matches('}');
        let mut bounds = 0;
        for (series, value) in samples.range(prefix.to_string()..) {
            let Some(le) = series.strip_prefix(prefix) else {
                break;
            };
            let le = le.trim_end_matches("\"}");
            if le == "+Inf" {
                continue;
            }
            let us = (le.parse::<f64>().unwrap() * 1e6).round() as u64;
            let expected = h.map_or(0, |h| h.count_between(0, us));
            assert_eq!(*value, expected as f64, "{series}");
            bounds += 1;
        }
        assert_eq!(bounds, 18, "{family} {name}: every bound");
        checked += 1;
    }
    // connect, auth, bind_card, heartbeat, reconnect, schedule_lag, and the script's.
    assert_eq!(checked, 7);
    assert!(r.latency_ms["reconnect"].count > 0);
    // The script's samples spread over several buckets, so the check above has teeth.
    let think = |le: &str| {
        samples[&series(
            "wsoak_script_latency_seconds_bucket",
            &format!("name=\"think\",le=\"{le}\""),
        )]
    };
    assert!(think("0.001") > 0.0, "{text}");
    assert!(think("0.001") < think("0.0025"), "{text}");
    assert!(think("0.0025") < think("0.005"), "{text}");
    assert!(think("0.005") < think("0.01"), "{text}");
    // Every sample carries the run's labels, first.
    for key in samples.keys() {
        let name = key.split('{').next().unwrap();
        assert!(key.starts_with(&format!("{name}{{{RUN_LABELS}")), "{key}");
    }
    assert!(samples.len() > 100, "{text}");
}

/// Where Chromium may be found; `.ci/run` installs Debian's `chromium`.
const CHROMIUMS: [&str; 4] = [
    "chromium",
    "/usr/bin/chromium",
    "chromium-browser",
    "google-chrome",
];

/// Chromium, headless, offline-minded, with a fresh profile in `profile`, stopped after
/// a minute if it hangs.
fn headless(chromium: &str, profile: &Path) -> Command {
    let mut command = Command::new("timeout");
    command.args(["60", chromium]).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// report.html must open with no network: nothing in it may load anything.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    // Inline script only: the charts' own, and their series as JSON. A `src` is caught
    // below with the other attributes that fetch.
    for (at, _) in lower.match_indices("<script") {
        let open = &lower[at..at + lower[at..].find('>').unwrap_or(lower.len() - at)];
        assert!(
            open == "<script" || open == r#"<script type="application/json" id="wsoak-series""#,
            "report.html has a script that is not inline: {open}>"
        );
    }
    for api in [
        "fetch(",
        "xmlhttprequest",
        "websocket(",
        "eventsource(",
        "import(",
    ] {
        assert!(!lower.contains(api), "report.html's script calls {api}");
    }
    // Elements that fetch (or navigate) by their nature.
    for tag in [
        "<link", "<img", "<iframe", "<frame", "<object", "<embed", "<base", "<video", "<audio",
        "<source", "<track", "<image", "<use",
    ] {
        assert!(!lower.contains(tag), "report.html contains {tag}");
    }
    // `<meta charset>` is fine; a refresh or a content policy from outside is not.
    assert!(
        !lower.contains("http-equiv"),
        "report.html contains http-equiv"
    );
    // Attributes that fetch, wherever they appear, unless they point inside the page.
    for attr in [
        "src=",
        "srcset=",
        "href=",
        "action=",
        "formaction=",
        "poster=",
        "background=",
        "data=",
    ] {
        for (at, _) in lower.match_indices(attr) {
            let value = lower[at + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                value.starts_with('#'),
                "report.html has {attr} pointing outside the page: {}",
                &html[at..(at + 80).min(html.len())]
            );
        }
    }
    for css in ["url(", "@import", "image-set("] {
        assert!(!lower.contains(css), "report.html contains {css}");
    }
    // The one absolute URL allowed is the SVG namespace: an identifier, never fetched.
    let rest = lower.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
    for scheme in ["http://", "https://", "ftp://", "file:", "//cdn", "\"//"] {
        assert!(!rest.contains(scheme), "report.html contains {scheme}");
    }
    assert!(
        lower.starts_with("<!doctype html>"),
        "{}",
        &html[..80.min(html.len())]
    );
}

#[test]
fn self_contained_check_catches_what_would_load() {
    let page = |body: &str| {
        format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>{body}</body></html>")
    };
    assert_self_contained(&page(
        r##"<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg><a href="#top">top</a>"##,
    ));
    assert_self_contained(&page("<script>document.title = 'inline';</script>"));
    for bad in [
        r#"<script src="x.js"></script>"#,
        r#"<script type="module">import("x.js")</script>"#,
        r#"<script>fetch("x.json")</script>"#,
        r#"<img src="x.png">"#,
        r#"<a href="https://example.com/">x</a>"#,
        r#"<div style="background: url(x.png)"></div>"#,
        r#"<svg><image xlink:href="x.png"/></svg>"#,
        r#"<p>see http://example.com</p>"#,
        r#"<meta http-equiv="refresh" content="0">"#,
    ] {
        let html = page(bad);
        let caught = std::panic::catch_unwind(|| assert_self_contained(&html));
        assert!(caught.is_err(), "accepted: {bad}");
    }
}

#[test]
fn html_shows_every_chart_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "");
    let report = dir.path().join("report.json");
    let out = run_in_process(&[s.to_str().unwrap(), "--report", report.to_str().unwrap()]);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_self_contained(&html);
    let mut expected: Vec<String> = [
        "chart-sessions",
        "chart-heartbeats",
        "chart-messages",
        "chart-connects",
        "chart-errors",
    ]
    .map(String::from)
    .to_vec();
    for (metric, l) in &out.report.latency_ms {
        if l.count > 0 {
            expected.push(format!("chart-latency-{metric}"));
            expected.push(format!("percentiles-{metric}"));
        }
    }
    let chromium = CHROMIUMS
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "no Chromium on this machine ({CHROMIUMS:?}), so report.html cannot be opened \
                 in a browser. Run `.ci/run`, which installs Debian's `chromium`, or install \
                 it yourself (`apt-get install -y chromium`)."
            )
        });
    let url = format!("file://{}", dir.path().join("report.html").display());
    let dom = headless(chromium, &dir.path().join("profile-dom"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in &expected {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("chart {id} missing from the rendered page"));
        let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
        assert!(svg.contains("<path d=\"M"), "chart {id} draws no line");
    }
    // The summary's key numbers, each with its unit.
    let card = |id: &str| {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("summary card {id} missing from the rendered page"));
        dom[at..at + dom[at..].find("</div></div>").unwrap()].to_string()
    };
    let r = &out.report;
    assert!(card("summary-verdict").contains("no thresholds"));
    assert!(card("summary-sessions")
        .contains(&format!("{} of {}", r.sessions.bound, r.sessions.planned)));
    assert!(card("summary-heartbeats").contains(" /s"));
    assert!(card("summary-messages").contains(" /s"));
    assert!(card("summary-errors").contains('%'));
    let p99 = r.latency_ms["heartbeat"].p99.unwrap();
    assert!(
        card("summary-p99-heartbeat")
            .contains(&format!("{} ms", wsoak::units::format_number(p99, 3))),
        "{}",
        card("summary-p99-heartbeat")
    );
    assert!(dom.contains("data-charts=\"ready\"") && dom.contains("id=\"wsoak-tip\""));

    // The script runs, and redraws every chart over time for a range: the address can
    // open the page zoomed, as a drag across a chart does.
    let zoomed = headless(chromium, &dir.path().join("profile-zoom"))
        .args(["--dump-dom", &format!("{url}#t=0.5-1.5")])
        .output()
        .unwrap();
    let zoomed = String::from_utf8_lossy(&zoomed.stdout);
    assert!(
        zoomed.contains("data-charts=\"ready\""),
        "the script did not finish"
    );
    for id in expected.iter().filter(|id| id.starts_with("chart-")) {
        let at = zoomed.find(&format!("id=\"{id}\"")).unwrap();
        let svg = &zoomed[at..at + zoomed[at..].find("</svg>").unwrap()];
        assert!(
            svg.contains("data-range=\"0.5-1.5\""),
            "{id} not redrawn: {svg}"
        );
        assert!(svg.contains(">1s</text>"), "{id}: no tick at 1 s: {svg}");
    }
    assert!(zoomed.contains("Showing 0.5 s to 1.5 s of the run"));
    let shot = dir.path().join("shot.png");
    let status = headless(chromium, &dir.path().join("profile-shot"))
        .args([
            "--window-size=1050,4000",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 50_000,
        "a page with charts, not a blank one: {} bytes",
        png.len()
    );
}

#[test]
fn report_rebuilt_from_the_logs_equals_the_report_the_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        "thresholds: [\"heartbeat.p99 < 1s\", \"reconnects.total >= 30\"]\n",
    );
    let run_dir = dir.path().join("run");
    let out = wsoak()
        .args(["run", "--quiet", "--interval", "200ms"])
        .arg(&s)
        .arg("--report")
        .arg(run_dir.join("report.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As after a crash right after the last interval was flushed: the logs are complete
    // and report.json was never written.
    let original: Report =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    std::fs::remove_file(run_dir.join("report.json")).unwrap();

    let out = wsoak().arg("report").arg(&run_dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt: Report =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();

    // What the logs cannot carry, each checked for what it can be:
    let mut expected = original.clone();
    // - The run finished; the logs cannot say so, so a rebuilt run is marked cut short.
    assert!(!original.interrupted);
    expected.interrupted = true;
    // - The embedded server's counts live only in report.json.
    assert!(original.server.is_some());
    expected.server = None;
    // - The duration ends at the last interval line, which the run wrote just before
    //   measuring its own end.
    assert!(
        rebuilt.duration_s <= original.duration_s && original.duration_s - rebuilt.duration_s < 0.2,
        "{} vs {}",
        rebuilt.duration_s,
        original.duration_s
    );
    expected.duration_s = rebuilt.duration_s;
    // - CPU before the first interval and after the last, and the RSS peak between two
    //   samples, were never logged: the rebuilt footprint is a lower bound.
    let (was, now) = (&original.tester, &rebuilt.tester);
    assert!(now.cpu_s.unwrap() > 0.0 && now.cpu_s.unwrap() <= was.cpu_s.unwrap() + 1e-9);
    // (The run's peak takes its interval samples into account: Linux's high-water mark
    // can read below an earlier VmRSS sample.)
    assert!(
        now.peak_rss_kib.unwrap() > 0 && now.peak_rss_kib <= was.peak_rss_kib,
        "{now:?} {was:?}"
    );
    expected.tester = rebuilt.tester.clone();
    // Everything else (counts, reconnects, errors, every latency statistic, peak
    // sessions, thresholds and their observed values) is exactly what the run wrote.
    assert_eq!(rebuilt, expected);
    assert_eq!(rebuilt.sessions.bound, 30);
    assert!(rebuilt.reconnects.by_cause["server_close"] >= 30);
    assert_eq!(rebuilt.thresholds.len(), 2);
}

#[test]
fn report_rebuilds_a_killed_run_from_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "");
    let run_dir = dir.path().join("run");
    let mut child = wsoak()
        .args(["run", "--quiet", "--interval", "200ms", "--duration", "60s"])
        .arg(&s)
        .arg("--report")
        .arg(run_dir.join("report.json"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL: nothing gets to clean up
    child.wait().unwrap();
    assert!(!run_dir.join("report.json").exists());
    let lines = read_intervals(&run_dir.join("intervals.jsonl")).unwrap();
    assert!(lines.len() >= 8, "{} intervals", lines.len());

    let out = wsoak().arg("report").arg(&run_dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Report =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    // Exact agreement with a finished run is the test above; here, that a run killed
    // mid-interval (its last line possibly cut) still rebuilds, up to its last line.
    assert!(r.interrupted);
    assert_eq!(r.sessions.bound, 30);
    assert!(r.reconnects.by_cause["server_close"] >= 30);
    assert_eq!(r.duration_s, lines.last().unwrap().t);
    assert!(run_dir.join("report.html").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("latency (ms)"));
}

#[test]
fn compare_flags_a_regression_and_passes_the_same_build() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &str| {
        let s = dir.path().join(format!("{name}.yaml"));
        let head = HEAD.replace("server: {drop_after: 1200ms}\n", "");
        // A 990 ms ack window: on a loaded test machine (benchmarks and builds
        // alongside) one heartbeat missing a shorter window is a failure per 1,000 the
        // same build did not have, and the comparison rightly flags it.
        let flow = FLOW
            .replace("interval: 100ms", "interval: 1s")
            .replace("timeout: 90ms", "timeout: 990ms");
        std::fs::write(&s, format!("{head}{flow}{extra}")).unwrap();
        let report = dir.path().join(name).join("report.json");
        run_in_process(&[s.to_str().unwrap(), "--report", report.to_str().unwrap()]);
        dir.path().join(name)
    };
    let base = run("base", "");
    let same = run("same", "");
    let slow = run("slow", "server: {delay: 40ms}\n");
    let compare = |a: &Path, b: &Path| {
        wsoak()
            .arg("compare")
            .arg(a)
            .arg(b)
            // Loopback latencies here are well under a millisecond; on a loaded test
            // machine (two cores, builds alongside) a p99 has wobbled past 10 ms. The
            // injected 40 ms, in every reply's p50, cannot hide under 25.
            .args(["--latency-floor", "25ms", "--tolerance", "20%"])
            .output()
            .unwrap()
    };
    let out = compare(&base, &same);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = compare(&base, &slow);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let flagged: Vec<&str> = text.lines().filter(|l| l.ends_with("REGRESSION")).collect();
    assert!(
        flagged.iter().any(|l| l.starts_with("heartbeat.p99")),
        "{text}"
    );
    assert!(flagged.iter().any(|l| l.starts_with("auth.p50")), "{text}");
}

#[test]
fn report_rebuilds_from_the_valid_prefix_of_damaged_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "");
    let run_dir = dir.path().join("run");
    let out = run_in_process(&[
        s.to_str().unwrap(),
        "--interval",
        "200ms",
        "--report",
        run_dir.join("report.json").to_str().unwrap(),
    ]);
    let original = out.report;
    let intervals = run_dir.join("intervals.jsonl");
    let hlog_path = run_dir.join("latency.hlog");
    let (text, hlog_text) = (
        std::fs::read_to_string(&intervals).unwrap(),
        std::fs::read_to_string(&hlog_path).unwrap(),
    );
    let rebuild = || {
        let _ = std::fs::remove_file(run_dir.join("report.json"));
        let out = wsoak().arg("report").arg(&run_dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let r: Report =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
                .unwrap();
        (r, stderr)
    };

    // 1. Both logs end in a line cut short, as after a kill mid-write: the rest is exact.
    let last_hlog = hlog_text.lines().last().unwrap();
    let mut cut = std::fs::OpenOptions::new()
        .append(true)
        .open(&hlog_path)
        .unwrap();
    write!(cut, "{}", &last_hlog[..last_hlog.len() / 2]).unwrap();
    let last_line = text.lines().last().unwrap();
    let mut cut = std::fs::OpenOptions::new()
        .append(true)
        .open(&intervals)
        .unwrap();
    write!(cut, "{}", &last_line[..last_line.len() / 2]).unwrap();
    let (r, stderr) = rebuild();
    // Both cut lines are reported, each with its file.
    assert!(
        stderr.contains("intervals.jsonl") && stderr.contains("latency.hlog"),
        "{stderr}"
    );
    assert_eq!(r.latency_ms, original.latency_ms);
    assert_eq!(r.heartbeats, original.heartbeats);
    assert_eq!(r.reconnects, original.reconnects);

    // 2. A line in the middle says t = 1e300: the prefix before it is rebuilt, counters
    //    and histograms alike, and nothing after it.
    std::fs::write(&hlog_path, &hlog_text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let k = lines.len() / 2;
    let mut damaged: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut bad: serde_json::Value = serde_json::from_str(lines[k]).unwrap();
    bad["t"] = serde_json::json!(1e300);
    damaged[k] = bad.to_string();
    std::fs::write(&intervals, damaged.join("\n") + "\n").unwrap();
    let (r, stderr) = rebuild();
    assert!(stderr.contains("is not a time"), "{stderr}");
    let prefix: Vec<wsoak::report::IntervalLine> = lines[..k]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sum = |name: &str| -> u64 {
        prefix
            .iter()
            .map(|l| l.counts.get(name).copied().unwrap_or(0))
            .sum()
    };
    let latency_count = |name: &str| -> u64 {
        prefix
            .iter()
            .map(|l| l.latency_ms.get(name).map_or(0, |x| x.count))
            .sum()
    };
    assert!(sum("heartbeats.sent") > 0 && sum("heartbeats.sent") < original.heartbeats.sent);
    assert_eq!(r.heartbeats.sent, sum("heartbeats.sent"));
    assert_eq!(r.heartbeats.acked, sum("heartbeats.acked"));
    assert_eq!(r.latency_ms["heartbeat"].count, latency_count("heartbeat"));
    assert_eq!(r.latency_ms["connect"].count, latency_count("connect"));
    assert_eq!(r.duration_s, prefix.last().unwrap().t);
}

#[test]
fn report_on_a_run_that_never_wrote_an_interval_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "");
    let run_dir = dir.path().join("run");
    run_in_process(&[
        s.to_str().unwrap(),
        "--duration",
        "300ms",
        "--report",
        run_dir.join("report.json").to_str().unwrap(),
    ]);
    // As a run that failed at start leaves it: run.json, and logs with nothing in them.
    std::fs::remove_file(run_dir.join("report.json")).unwrap();
    std::fs::write(run_dir.join("intervals.jsonl"), "").unwrap();
    std::fs::write(run_dir.join("latency.hlog"), "").unwrap();
    let out = wsoak().arg("report").arg(&run_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing to rebuild"), "{stderr}");
    assert!(!run_dir.join("report.json").exists());
}
