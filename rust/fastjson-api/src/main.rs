//! `fastjson-api --port N [--workers N]`: serve the API on 127.0.0.1.

use std::io::Write;
use std::process::ExitCode;

use actix_web::rt::signal::unix::{signal, SignalKind};
use actix_web::{App, HttpServer};

/// How long in-flight requests get to finish after SIGTERM or SIGINT; under
/// the 5 s the service contract allows.
const SHUTDOWN_GRACE_S: u64 = 4;

const USAGE: &str = "usage: fastjson-api --port N [--workers N]
  --port N     TCP port on 127.0.0.1 (0: the OS picks one)
  --workers N  actix worker threads (default: the cores this process may use)";

struct Args {
    port: u16,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    // available_parallelism honours the CPU affinity mask, so a server pinned
    // to two cores with taskset starts two workers.
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let text = value()?;
                port = Some(text.parse().map_err(|_| format!("bad --port {text:?}"))?);
            }
            "--workers" => {
                let text = value()?;
                workers = match text.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("bad --workers {text:?}: a positive integer")),
                };
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    Ok(Args { port, workers })
}

async fn serve(args: Args) -> std::io::Result<()> {
    let server = HttpServer::new(|| App::new().configure(fastjson_api::configure))
        .workers(args.workers)
        .shutdown_timeout(SHUTDOWN_GRACE_S)
        // Signals are handled below, so that SIGINT is as graceful as SIGTERM
        // (actix's own handler makes SIGINT a forced stop).
        .disable_signals()
        .bind(("127.0.0.1", args.port))?;

    // The socket is listening once bind returns: connections made from now on
    // wait in the backlog until the workers accept them.
    let port = server.addrs()[0].port();
    println!("listening on 127.0.0.1:{port}");
    std::io::stdout().flush()?;
    eprintln!(
        "fastjson-api: {} workers, body limit {} bytes",
        args.workers,
        fastjson_api::BODY_LIMIT_BYTES
    );

    let server = server.run();
    let handle = server.handle();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    actix_web::rt::spawn(async move {
        first_of(terminate.recv(), interrupt.recv()).await;
        eprintln!("fastjson-api: stopping, {SHUTDOWN_GRACE_S} s for requests in flight");
        handle.stop(true).await;
    });
    server.await?;
    eprintln!("fastjson-api: stopped");
    Ok(())
}

/// Waits for whichever of two futures finishes first.
async fn first_of<A, B>(a: A, b: B)
where
    A: std::future::Future,
    B: std::future::Future,
{
    futures_util::future::select(std::pin::pin!(a), std::pin::pin!(b)).await;
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("fastjson-api: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fastjson-api: {e}");
            ExitCode::FAILURE
        }
    }
}
