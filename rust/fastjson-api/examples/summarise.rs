//! `cargo run --release -p fastjson-api --example summarise`: how many times
//! per second one thread parses and summarises a body of statuses, with no
//! HTTP at all: the in-process benchmark the PHP-FPM chapter runs.
//!
//! Compared with the HTTP rate of `POST /statuses` on one core, it shows what
//! the HTTP layer costs, so it must parse the very bytes the load generator
//! sends: BENCH_BODY names that file (default: data/twitter.json as stored).
//! Runs for BENCH_DURATION_S seconds (default 3) after a one-second warm-up,
//! and prints one JSON line to stdout.
//!
//! An example rather than a `cargo bench` target: cargo builds bench targets
//! with unwinding whatever the release profile says, so a bench would time
//! differently compiled code than the server runs (and compile every crate
//! a second time). An example is built exactly like the server.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The one line printed, fields in this order.
#[derive(serde::Serialize)]
struct BenchLine {
    bench: &'static str,
    body_bytes: usize,
    iterations: u64,
    duration_s: f64,
    rate_per_s: f64,
}

const WARM_UP_S: f64 = 1.0;
const DEFAULT_DURATION_S: f64 = 3.0;
const TWITTER_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/twitter.json");

/// Calls `summarise` on `body` until `duration_s` has passed; returns the
/// number of calls and the time they really took.
fn run_for(body: &[u8], duration_s: f64) -> (u64, Duration) {
    let deadline = Duration::from_secs_f64(duration_s);
    let start = Instant::now();
    let mut iterations = 0u64;
    loop {
        // black_box: the optimiser must not drop a result nobody reads.
        let summary = fastjson_api::summarise(black_box(body)).expect("the body summarises");
        black_box(summary);
        iterations += 1;
        // Reading the clock costs ~20 ns against ~1 ms per call: negligible.
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            return (iterations, elapsed);
        }
    }
}

fn main() {
    let duration_s = match std::env::var("BENCH_DURATION_S") {
        Ok(text) => match text.parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => s,
            _ => {
                eprintln!("summarise: BENCH_DURATION_S={text:?} is not a positive number");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_DURATION_S,
    };
    let body_path = std::env::var("BENCH_BODY").unwrap_or_else(|_| TWITTER_JSON.into());
    let body = std::fs::read(&body_path).unwrap_or_else(|e| {
        eprintln!("summarise: cannot read {body_path}: {e}");
        std::process::exit(1);
    });

    run_for(&body, WARM_UP_S);
    let (iterations, elapsed) = run_for(&body, duration_s);

    let duration_s = elapsed.as_secs_f64();
    let line = BenchLine {
        bench: "summarise",
        body_bytes: body.len(),
        iterations,
        duration_s,
        rate_per_s: iterations as f64 / duration_s,
    };
    println!(
        "{}",
        serde_json::to_string(&line).expect("plain numbers serialise")
    );
}
