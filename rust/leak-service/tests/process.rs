//! The binary as the bench runs it: port 0, the listening line, one request
//! over real TCP on 127.0.0.1, then a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The contract allows 5 s for a graceful stop.
const STOP_LIMIT_S: u64 = 5;

/// Kills the child if a test fails before it is stopped on purpose.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(mode_flags: &[&str]) -> (Running, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leak-service"))
        .args(["--port", "0", "--leak-bytes", "2048"])
        .args(mode_flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn leak-service");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let port = line
        .trim()
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("a port number");
    (Running(child), port)
}

/// One HTTP/1.1 request with `Connection: close`; returns the raw answer.
fn request(port: u16, head_and_body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    stream.write_all(head_and_body.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    answer
}

fn post_session(port: u16, body: &str) -> String {
    request(
        port,
        &format!(
            "POST /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn stop_with_sigterm(mut running: Running) {
    let pid = running.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");

    let deadline = Instant::now() + Duration::from_secs(STOP_LIMIT_S);
    while Instant::now() < deadline {
        if let Some(exit) = running.0.try_wait().expect("wait") {
            assert!(exit.success(), "exit after SIGTERM: {exit}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("still running {STOP_LIMIT_S} s after SIGTERM");
}

#[test]
fn serves_on_loopback_and_stops_on_sigterm() {
    let (running, port) = start(&["--mode", "bounded", "--capacity", "2"]);

    let answer = post_session(port, r#"{"user":"u1","items":["a","b"]}"#);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"session":1,"items":2}"#), "{answer}");

    let answer = post_session(port, "{not json");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""error":"malformed_json""#), "{answer}");

    let answer = request(
        port,
        "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.contains(r#""sessions":1"#), "{answer}");

    stop_with_sigterm(running);
}

#[test]
fn unbounded_mode_starts_too() {
    let (running, port) = start(&["--mode", "unbounded"]);
    for _ in 0..3 {
        let answer = post_session(port, r#"{"user":"u1","items":[]}"#);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let answer = request(
        port,
        "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.contains(r#""sessions":3"#), "{answer}");
    stop_with_sigterm(running);
}
