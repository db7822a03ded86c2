//! Start and graceful shutdown of the leak service.
//!
//! `leak-service --port 0 --mode bounded|unbounded [--capacity N]
//! [--leak-bytes N]` prints `listening on 127.0.0.1:PORT` once it accepts
//! connections, and stops on SIGTERM or SIGINT.

use std::io::Write;
use std::process::ExitCode;

use actix_web::{web, App, HttpServer};
use leak_service::{
    configure, AppState, Mode, DEFAULT_CAPACITY_SESSIONS, DEFAULT_LEAK_BYTES, MAX_LEAK_BYTES,
    SHUTDOWN_GRACE_S,
};

const USAGE: &str = "usage: leak-service --port N --mode bounded|unbounded \
                     [--capacity SESSIONS] [--leak-bytes N]";

#[derive(Debug, PartialEq, Eq)]
struct Config {
    port: u16,
    mode: Mode,
    leak_bytes: usize,
}

/// Reads the flags; every flag takes a value.
fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut port = None;
    let mut mode_name = None;
    let mut capacity = DEFAULT_CAPACITY_SESSIONS;
    let mut leak_bytes = DEFAULT_LEAK_BYTES;

    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = Some(parse_number::<u16>(flag, value)?),
            "--mode" => mode_name = Some(value.clone()),
            "--capacity" => capacity = parse_number(flag, value)?,
            "--leak-bytes" => leak_bytes = parse_number(flag, value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }

    let port = port.ok_or("--port is required (0 lets the OS choose)")?;
    let mode = match mode_name.as_deref() {
        Some("bounded") if capacity == 0 => return Err("--capacity must be at least 1".into()),
        Some("bounded") => Mode::Bounded { capacity },
        Some("unbounded") => Mode::Unbounded,
        Some(other) => return Err(format!("--mode must be bounded or unbounded, not {other}")),
        None => return Err("--mode is required (bounded or unbounded)".into()),
    };
    if leak_bytes > MAX_LEAK_BYTES {
        return Err(format!("--leak-bytes must be at most {MAX_LEAK_BYTES}"));
    }
    Ok(Config {
        port,
        mode,
        leak_bytes,
    })
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} takes a non-negative integer, not {value:?}"))
}

#[actix_web::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("leak-service: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // One state for all workers: the registry must be shared, or each
    // worker thread would hold (and bound) its own map.
    let state = web::Data::new(AppState::new(config.mode, config.leak_bytes));
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(configure))
        .shutdown_timeout(SHUTDOWN_GRACE_S)
        .bind(("127.0.0.1", config.port));
    let server = match server {
        Ok(server) => server,
        Err(err) => {
            eprintln!("leak-service: cannot bind 127.0.0.1:{}: {err}", config.port);
            return ExitCode::FAILURE;
        }
    };

    // The socket listens from bind on, so the port is real and connections
    // queue even before the workers start.
    let port = server.addrs()[0].port();
    println!("listening on 127.0.0.1:{port}");
    let _ = std::io::stdout().flush();
    eprintln!(
        "leak-service: mode={:?} leak_bytes={}",
        config.mode, config.leak_bytes
    );

    // actix-web stops on SIGTERM and SIGINT by itself: it stops accepting,
    // lets requests in flight finish for up to SHUTDOWN_GRACE_S, then exits.
    match server.run().await {
        Ok(()) => {
            eprintln!("leak-service: stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("leak-service: server error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_parse_with_defaults() {
        let config = parse_args(&args("--port 0 --mode bounded")).unwrap();
        assert_eq!(
            config,
            Config {
                port: 0,
                mode: Mode::Bounded {
                    capacity: DEFAULT_CAPACITY_SESSIONS
                },
                leak_bytes: DEFAULT_LEAK_BYTES,
            }
        );
        let config = parse_args(&args("--mode unbounded --leak-bytes 10 --port 8")).unwrap();
        assert_eq!(config.mode, Mode::Unbounded);
        assert_eq!(config.leak_bytes, 10);
    }

    #[test]
    fn bad_flags_are_refused() {
        for line in [
            "",
            "--port",
            "--port 0",
            "--port x --mode bounded",
            "--port 0 --mode leaky",
            "--port 0 --mode bounded --capacity 0",
            "--port 0 --mode bounded --leak-bytes 999999999999",
            "--port 0 --mode bounded --verbose yes",
        ] {
            assert!(parse_args(&args(line)).is_err(), "accepted {line:?}");
        }
    }
}
