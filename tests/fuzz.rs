//! `wsoak check` on mutated copies of the shipped scenarios: it must answer every one
//! (exit 0 or 2) within a time bound, never panic, never abort, never hang.
//!
//! The generator has a fixed seed, so a failure reproduces: the failing case's text is
//! printed with its number.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

/// Cases per shipped file; three files.
const CASES_PER_FILE: usize = 100;
/// Longer than any legitimate check here (debug build, loaded machine), far shorter than
/// the pathological inputs took before their caps (20 s and more).
const BOUND: Duration = Duration::from_secs(10);

const ODD_NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "99999999999999999999999",
    "1e308",
    ".nan",
    "-.inf",
    "4294967296",
    "0x7fffffff",
    "1_000",
    "NaN",
];
const ODD_DURATIONS: [&str; 8] = [
    "0s",
    "1ns",
    "-1s",
    "99999999999h",
    "1.5.5s",
    "1e400s",
    "ms",
    "18446744073709551615s",
];
const SNIPPETS: [&str; 10] = [
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a:",
    "&a [*a, *a, *a, *a]",
    "\"\\u0000\\xff",
    "import \"miniprogram\";",
    "fn f(n) { f(n + 1) } f(0);",
    "loop { }",
    "'unterminated",
    "\t\t- - - - -",
    "limits: {max_operations: 0, max_call_levels: 500, max_string_size: 0}",
];

fn mutate(rng: &mut fastrand::Rng, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    // One to three mutations per case.
    for _ in 0..rng.usize(1..=3) {
        let len = bytes.len().max(1);
        let at = rng.usize(..len).min(bytes.len());
        match rng.u8(..8) {
            0 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = *rng.choice(b"[]{}:,-#'\"\n\t \\0\xff9").unwrap();
                }
            }
            1 => bytes.truncate(at),
            2 => {
                let end = (at + rng.usize(..200)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                for _ in 0..rng.usize(1..50) {
                    bytes.splice(at..at, copy.iter().copied());
                }
            }
            3 => {
                let snippet = rng.choice(SNIPPETS).unwrap();
                let repeat = if rng.bool() { 1 } else { rng.usize(1..2000) };
                bytes.splice(at..at, snippet.repeat(repeat).into_bytes());
            }
            4 | 5 => {
                // Replace the next number (or duration) after `at` with an odd one.
                let Some(start) = bytes[at..].iter().position(u8::is_ascii_digit) else {
                    continue;
                };
                let start = at + start;
                let end = start
                    + bytes[start..]
                        .iter()
                        .position(|b| !b.is_ascii_alphanumeric() && *b != b'.')
                        .unwrap_or(bytes.len() - start);
                let odd = if rng.bool() {
                    rng.choice(ODD_NUMBERS).unwrap()
                } else {
                    rng.choice(ODD_DURATIONS).unwrap()
                };
                bytes.splice(start..end, odd.bytes());
            }
            6 => {
                // Drop or duplicate a whole line.
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let i = rng.usize(..lines.len());
                let mut out: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
                if rng.bool() {
                    out.remove(i);
                } else {
                    out.insert(i, lines[i].to_vec());
                }
                bytes = out.join(&b'\n');
            }
            _ => {
                // Indent everything after `at` deeper.
                let tail: Vec<u8> = bytes.split_off(at);
                let indent = b" ".repeat(rng.usize(1..8));
                for line in tail.split(|b| *b == b'\n') {
                    bytes.extend_from_slice(&indent);
                    bytes.extend_from_slice(line);
                    bytes.push(b'\n');
                }
            }
        }
    }
    bytes
}

#[test]
fn check_answers_every_mutated_scenario_in_time_without_panicking() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::copy(
        shipped.join("data/cards.csv"),
        dir.path().join("data/cards.csv"),
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5eed_f422);
    let (mut ran, mut ok, mut refused, mut slowest) = (0, 0, 0, Duration::ZERO);
    for file in ["miniprogram.yaml", "miniprogram.rhai", "signed-push.rhai"] {
        let original = std::fs::read_to_string(shipped.join(file)).unwrap();
        let extension = file.rsplit('.').next().unwrap();
        for case in 0..CASES_PER_FILE {
            let text = mutate(&mut rng, &original);
            let path = dir.path().join(format!("case.{extension}"));
            std::fs::write(&path, &text).unwrap();
            let started = Instant::now();
            // stderr to a file, not a pipe: a long error message must not fill a pipe
            // nobody reads yet and look like a hang.
            let err_path = dir.path().join("stderr.txt");
            let err_file = std::fs::File::create(&err_path).unwrap();
            let mut child = common::wsoak()
                .arg("check")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::from(err_file))
                .spawn()
                .unwrap();
            // Poll rather than block: a hang must fail the test, not stall it.
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if started.elapsed() > BOUND {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{file} case {case}: no answer within {BOUND:?}:\n{}",
                        String::from_utf8_lossy(&text)
                    );
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            let took = started.elapsed();
            slowest = slowest.max(took);
            let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).to_string();
            // 0 = valid, 2 = a scenario error; anything else (101 = panic, no code = a
            // signal such as SIGABRT on stack overflow) is a defect.
            assert!(
                matches!(status.code(), Some(0 | 2)) && !stderr.contains("panicked"),
                "{file} case {case}: {status}\n{stderr}\n--- input ---\n{}",
                String::from_utf8_lossy(&text)
            );
            if status.code() == Some(0) {
                ok += 1;
            } else {
                refused += 1;
            }
            ran += 1;
        }
    }
    // Every case either answered 0 or 2 or failed the test above: none panicked or hung.
    eprintln!("fuzz: {ran} cases, {ok} valid, {refused} refused; slowest {slowest:?}");
    // The mutations must exercise both sides, or the generator is not doing its job.
    assert!(ok > 0 && refused > ran / 2, "{ok} valid, {refused} refused");
}
