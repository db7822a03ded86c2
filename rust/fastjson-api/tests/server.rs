//! The real binary on 127.0.0.1:0: the `listening on` line, the headers on
//! the wire, a chunked body over the limit, and graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fastjson_api::BODY_LIMIT_BYTES;

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// The server process, killed if a test fails before stopping it.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fastjson-api"))
            .args(["--port", "0", "--workers", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fastjson-api");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim_end()
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Server { child, port }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }

    /// Sends `signal` and returns how long the process took to exit.
    fn stop_with(mut self, signal: &str) -> Duration {
        let start = Instant::now();
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        while start.elapsed() < SHUTDOWN_LIMIT * 2 {
            if self.child.try_wait().unwrap().is_some() {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("still running {:?} after {signal}", start.elapsed());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response: the head as text, then Content-Length bytes of body.
fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = header(&head, "content-length")
        .expect("a Content-Length header")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (head, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[test]
fn json_on_the_wire() {
    let server = Server::start();
    let mut stream = server.connect();
    let request = b"GET /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    stream.write_all(request).unwrap();
    let (head, body) = read_response(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, br#"{"message":"Hello, World!"}"#);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(header(&head, "content-length"), Some("27"));
    assert!(header(&head, "server").is_some(), "{head}");
    // An HTTP date: "Fri, 04 Dec 2026 08:37:11 GMT".
    let date = header(&head, "date").expect("a Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");

    // Keep-alive: the same connection answers again.
    stream.write_all(request).unwrap();
    let (head, _) = read_response(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    server.stop_with("-TERM");
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = Server::start();
    let mut stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    // Write from another thread: the server answers, and may stop reading,
    // before all of the body is sent.
    let sender = std::thread::spawn(move || {
        let head = "POST /statuses HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes())?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..(BODY_LIMIT_BYTES * 3 / 2) / chunk.len() {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            writer.write_all(&chunk)?;
            writer.write_all(b"\r\n")?;
        }
        writer.write_all(b"0\r\n\r\n")
    });
    let (head, body) = read_response(&mut stream);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "body_too_large");
    // The sender may have been cut off; either way it must end.
    let _ = sender.join().unwrap();
    server.stop_with("-TERM");
}

#[test]
fn sigterm_and_sigint_stop_it_within_five_seconds() {
    for signal in ["-TERM", "-INT"] {
        let server = Server::start();
        // An idle keep-alive connection must not hold the shutdown up.
        let _idle = server.connect();
        let took = server.stop_with(signal);
        assert!(took < SHUTDOWN_LIMIT, "{signal} took {took:?}");
    }
}
