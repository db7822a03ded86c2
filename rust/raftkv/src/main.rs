//! raftkv: the consistency chapter's replicated key-value store in Rust, one
//! node of a Raft cluster built on openraft. A write is acknowledged only
//! once a majority has the entry and the leader has applied it, so it
//! survives the loss of any minority. Writes to a follower are refused with
//! 421 and the leader's identity. The HTTP API is the same as the Go node's
//! (go/raftkv), so the bench drives both alike.

mod network;
mod store;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState};
use serde::{Deserialize, Serialize};
use serde_json::json;

use network::HeartbeatLog;
use store::{Command, LogStore, StateMachine};

// --- types -------------------------------------------------------------------

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The cluster's types: commands in, nothing out, nodes known by address.
    pub TypeConfig:
        D = Command,
        R = (),
);

pub type RaftNode = Raft<TypeConfig>;

/// What every handler shares.
struct AppState {
    id: NodeId,
    raft: RaftNode,
    state_machine: StateMachine,
    heartbeats: Arc<HeartbeatLog>,
    election_timeout_ms: u64,
}

#[derive(Deserialize)]
struct ReadQuery {
    consistent: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader_raft_addr: Option<String>,
}

// --- handlers ----------------------------------------------------------------

fn error(status: StatusCode, kind: &str, detail: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: kind,
        detail: detail.into(),
        leader_id: None,
        leader_raft_addr: None,
    })
}

/// 421 with the leader this node knows of (ids are sent as strings, as the
/// Go node does, so the bench reads one shape).
fn not_leader(leader: Option<(NodeId, Option<BasicNode>)>) -> HttpResponse {
    let (leader_id, leader_raft_addr) = match leader {
        Some((id, node)) => (Some(id.to_string()), node.map(|n| n.addr)),
        None => (None, None),
    };
    HttpResponse::build(StatusCode::MISDIRECTED_REQUEST).json(ErrorBody {
        error: "not_leader",
        detail: "this node is not the leader; send writes to the leader".into(),
        leader_id,
        leader_raft_addr,
    })
}

fn known_leader(app: &AppState) -> Option<(NodeId, Option<BasicNode>)> {
    let metrics = app.raft.metrics().borrow().clone();
    let id = metrics.current_leader?;
    let node = metrics
        .membership_config
        .membership()
        .get_node(&id)
        .cloned();
    Some((id, node))
}

/// The refusal for a key out of bounds, if it is.
fn key_refusal(key: &str) -> Option<HttpResponse> {
    (key.is_empty() || key.len() > MAX_KEY_BYTES).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_key",
            format!("the key must be 1 to {MAX_KEY_BYTES} bytes"),
        )
    })
}

/// PUT /kv/{key}: answered once the write is committed and applied.
async fn put(
    app: web::Data<AppState>,
    key: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let key = key.into_inner();
    if let Some(refusal) = key_refusal(&key) {
        return refusal;
    }
    // Read with our own limit, so an oversized value gets a JSON 413.
    let body = match payload.to_bytes_limited(MAX_VALUE_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_body", e.to_string()),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the value must be at most {MAX_VALUE_BYTES} bytes"),
            )
        }
    };
    let Ok(value) = String::from_utf8(body.to_vec()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_value",
            "the value must be UTF-8 text",
        );
    };
    match app
        .raft
        .client_write(Command {
            key: key.clone(),
            value,
        })
        .await
    {
        Ok(written) => HttpResponse::Ok().json(json!({
            "key": key, "index": written.log_id.index, "node": app.id.to_string(),
        })),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            not_leader(forward.leader_id.map(|id| (id, forward.leader_node)))
        }
        // The write may or may not commit later: it is not acknowledged.
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_committed",
            e.to_string(),
        ),
    }
}

/// GET /kv/{key}: this node's state machine; with ?consistent=1, only on the
/// leader and after openraft confirms leadership and catches up (a
/// linearizable read).
async fn get(
    app: web::Data<AppState>,
    key: web::Path<String>,
    query: web::Query<ReadQuery>,
) -> HttpResponse {
    let key = key.into_inner();
    if let Some(refusal) = key_refusal(&key) {
        return refusal;
    }
    if query.consistent.as_deref() == Some("1") {
        match app.raft.ensure_linearizable().await {
            Ok(_) => {}
            Err(e) if e.forward_to_leader::<BasicNode>().is_some() => {
                return not_leader(known_leader(&app));
            }
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_confirmed",
                    e.to_string(),
                )
            }
        }
    }
    let state = app.state_machine.state.read().expect("state lock poisoned");
    match state.data.get(&key) {
        Some(value) => HttpResponse::Ok().json(json!({"key": key, "value": value})),
        None => error(
            StatusCode::NOT_FOUND,
            "no_such_key",
            format!("no value for key {key}"),
        ),
    }
}

async fn status(app: web::Data<AppState>) -> HttpResponse {
    let metrics = app.raft.metrics().borrow().clone();
    let role = match metrics.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    let leader = known_leader(&app);
    let keys = app
        .state_machine
        .state
        .read()
        .expect("state lock poisoned")
        .data
        .len();
    HttpResponse::Ok().json(json!({
        "id": app.id.to_string(),
        "role": role,
        "term": metrics.current_term,
        "leader_id": leader.as_ref().map(|(id, _)| id.to_string()).unwrap_or_default(),
        "leader_raft_addr": leader.and_then(|(_, n)| n).map(|n| n.addr).unwrap_or_default(),
        "commit_index": metrics.last_log_index.unwrap_or(0),
        "applied_index": metrics.last_applied.map(|l| l.index).unwrap_or(0),
        "keys": keys,
        "heartbeats": app.heartbeats.received(),
        "election_timeout_ms": app.election_timeout_ms,
        "engine": "openraft",
    }))
}

/// GET /heartbeats: the gaps recorded since the last call.
async fn heartbeat_gaps(app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "gaps_us": app.heartbeats.take_gaps() }))
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {}", request.path()),
    )
}

// --- limits ------------------------------------------------------------------

const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const ALLOC_OBJECT_BYTES: usize = 256;
const ALLOC_TICK: Duration = Duration::from_millis(10);
const HTTP_WORKERS: usize = 2;
const SHUTDOWN_TIMEOUT_S: u64 = 4;

// --- allocation pressure -----------------------------------------------------

/// A heap object of the same size as the Go node's, linked the same way.
struct Garbage {
    _next: Option<Box<Garbage>>,
    _payload: [u8; ALLOC_OBJECT_BYTES - 8],
}

/// The same side work as the Go node's: keep `live_bytes` of objects alive
/// and replace them at `bytes_per_s`. Here each replaced object is freed on
/// the spot; there is no collector to hand it to.
fn allocate(bytes_per_s: u64, live_bytes: u64) {
    let slots = (live_bytes as usize / ALLOC_OBJECT_BYTES).max(1);
    let per_tick =
        ((bytes_per_s as f64 * ALLOC_TICK.as_secs_f64()) as usize / ALLOC_OBJECT_BYTES).max(1);
    let mut live: Vec<Option<Box<Garbage>>> = (0..slots).map(|_| None).collect();
    let mut slot = 0;
    loop {
        std::thread::sleep(ALLOC_TICK);
        for _ in 0..per_tick {
            let object = Box::new(Garbage {
                _next: None,
                _payload: [slot as u8; ALLOC_OBJECT_BYTES - 8],
            });
            live[slot] = Some(std::hint::black_box(object));
            slot = (slot + 1) % slots;
        }
    }
}

// --- start and graceful shutdown ---------------------------------------------

struct Args {
    port: u16,
    id: NodeId,
    peers: BTreeMap<NodeId, String>,
    election_timeout_ms: u64,
    alloc_mb_per_s: f64,
    alloc_live_mb: f64,
}

/// Reads the same flags as the Go node; ids are numbers here (openraft's
/// default NodeId), so the bench names nodes 1, 2, 3.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 0,
        id: 0,
        peers: BTreeMap::new(),
        election_timeout_ms: 300,
        alloc_mb_per_s: 0.0,
        alloc_live_mb: 64.0,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--port" => parsed.port = value.parse().map_err(|e| bad(&e))?,
            "--id" => parsed.id = value.parse().map_err(|e| bad(&e))?,
            "--peers" => parsed.peers = parse_peers(&value)?,
            "--election-timeout-ms" => {
                parsed.election_timeout_ms = value.parse().map_err(|e| bad(&e))?
            }
            "--alloc-mb-per-s" => parsed.alloc_mb_per_s = value.parse().map_err(|e| bad(&e))?,
            "--alloc-live-mb" => parsed.alloc_live_mb = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !parsed.peers.contains_key(&parsed.id) {
        return Err(format!("--id {} is not among --peers", parsed.id));
    }
    Ok(parsed)
}

/// "1=127.0.0.1:7001,2=127.0.0.1:7002" -> {1: "127.0.0.1:7001", ...}
fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, String>, String> {
    text.split(',')
        .map(|part| {
            let (id, addr) = part
                .trim()
                .split_once('=')
                .ok_or(format!("peer {part:?} is not id=host:port"))?;
            let id = id.parse().map_err(|e| format!("peer id {id:?}: {e}"))?;
            if !addr.starts_with("127.0.0.1:") {
                return Err(format!("peer address {addr} is not on loopback"));
            }
            Ok((id, addr.to_string()))
        })
        .collect()
}

fn raft_config(election_timeout_ms: u64) -> Result<Config, String> {
    // The Go node's follower waits 1 to 2 election timeouts, and its leader
    // beats every 1/10 to 1/5 of one (45 ms on average at 300 ms). openraft
    // checks for a due heartbeat on a tick of 1.5 heartbeat intervals, so an
    // interval of 1/10 gives the same 45 ms.
    Config {
        cluster_name: "raftkv".into(),
        election_timeout_min: election_timeout_ms,
        election_timeout_max: 2 * election_timeout_ms,
        heartbeat_interval: (election_timeout_ms / 10).max(1),
        ..Default::default()
    }
    .validate()
    .map_err(|e| e.to_string())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("raftkv: {message}");
            std::process::exit(2);
        }
    };
    let config = raft_config(args.election_timeout_ms).map_err(std::io::Error::other)?;

    let raft_listener = tokio::net::TcpListener::bind(&args.peers[&args.id]).await?;
    let state_machine = StateMachine::default();
    let raft = Raft::new(
        args.id,
        Arc::new(config),
        network::Network::default(),
        LogStore::default(),
        state_machine.clone(),
    )
    .await
    .map_err(std::io::Error::other)?;
    let heartbeats = Arc::new(HeartbeatLog::default());
    tokio::spawn(network::serve(
        raft_listener,
        raft.clone(),
        heartbeats.clone(),
    ));

    // Every node initializes with the same membership, which openraft
    // allows; whichever wins the first election leads.
    let members: BTreeMap<NodeId, BasicNode> = args
        .peers
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    if let Err(e) = raft.initialize(members).await {
        // NotAllowed: a peer's initialization reached this node first.
        eprintln!("raftkv: initialize: {e}");
    }

    if args.alloc_mb_per_s > 0.0 {
        let bytes_per_s = (args.alloc_mb_per_s * 1048576.0) as u64;
        let live_bytes = (args.alloc_live_mb * 1048576.0) as u64;
        std::thread::spawn(move || allocate(bytes_per_s, live_bytes));
    }

    let app = web::Data::new(AppState {
        id: args.id,
        raft: raft.clone(),
        state_machine,
        heartbeats,
        election_timeout_ms: args.election_timeout_ms,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app.clone())
            .route("/kv/{key}", web::put().to(put))
            .route("/kv/{key}", web::get().to(get))
            .route("/status", web::get().to(status))
            .route("/heartbeats", web::get().to(heartbeat_gaps))
            .default_service(web::to(not_found))
    })
    .workers(HTTP_WORKERS)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_S)
    .bind(("127.0.0.1", args.port))?;
    let port = server.addrs()[0].port();
    println!("listening on 127.0.0.1:{port}");
    use std::io::Write;
    std::io::stdout().flush()?;

    // actix-web stops on SIGTERM and SIGINT; then Raft is stopped too.
    server.run().await?;
    let _ = raft.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_peers() {
        let args = parse_args(
            [
                "--port",
                "0",
                "--id",
                "2",
                "--peers",
                "1=127.0.0.1:7001,2=127.0.0.1:7002",
            ]
            .map(String::from)
            .into_iter(),
        )
        .expect("valid flags");
        assert_eq!(args.id, 2);
        assert_eq!(args.peers[&2], "127.0.0.1:7002");
    }

    #[test]
    fn refuses_bad_flags() {
        assert!(parse_peers("1=10.0.0.1:7001").is_err(), "off-loopback peer");
        assert!(parse_peers("1").is_err(), "peer without address");
        let missing_self = ["--id", "3", "--peers", "1=127.0.0.1:7001"].map(String::from);
        assert!(parse_args(missing_self.into_iter()).is_err());
    }

    #[test]
    fn config_is_valid_and_heartbeats_fit_in_a_timeout() {
        let config = raft_config(300).expect("valid config");
        assert!(config.heartbeat_interval * 2 < config.election_timeout_min);
    }

    #[test]
    fn cursor_type_is_snapshot_data() {
        // The snapshot type the macro defaults to: what store.rs builds.
        let _: Box<<TypeConfig as openraft::RaftTypeConfig>::SnapshotData> =
            Box::new(Cursor::new(Vec::new()));
    }
}
