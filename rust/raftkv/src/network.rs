//! How Raft messages travel between nodes: length-prefixed JSON over
//! loopback TCP.
//!
//! openraft leaves the transport to the application (trait `RaftNetwork`);
//! the protocol itself (votes, terms, log matching) is openraft's. Each
//! message is one frame, a u32 length then serde_json bytes, and one
//! connection carries one request at a time, so connections are pooled per
//! peer and a slow append does not hold up a vote.
//!
//! The receiving side also notes when each heartbeat (an append with no
//! entries) arrives, for the chapter's heartbeat-delay figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{NodeId, RaftNode, TypeConfig};

/// Largest frame accepted: a snapshot chunk or a batch of appends.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Idle connections kept per peer.
const POOL_PER_PEER: usize = 4;
/// Heartbeat gaps kept between two reads of /heartbeats (an hour at 20/s).
pub const MAX_GAP_SAMPLES: usize = 200_000;

#[derive(Serialize, Deserialize)]
enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Serialize, Deserialize)]
enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
}

async fn write_frame(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let length =
        u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("frame longer than 4 GiB"))?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(bytes).await?;
    stream.flush().await
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "frame of {length} bytes is over the {MAX_FRAME_BYTES}-byte limit"
        )));
    }
    let mut bytes = vec![0u8; length];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes)
}

// --- sending -----------------------------------------------------------------

type Pool = Arc<Mutex<Vec<TcpStream>>>;

/// Makes one client per peer; the pools outlive the clients openraft drops.
#[derive(Clone, Default)]
pub struct Network {
    pools: Arc<Mutex<HashMap<NodeId, Pool>>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let pool = self
            .pools
            .lock()
            .expect("pool map lock poisoned")
            .entry(target)
            .or_default()
            .clone();
        PeerClient {
            target,
            addr: node.addr.clone(),
            pool,
        }
    }
}

/// Sends Raft messages to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    pool: Pool,
}

/// A failed call: whether the peer was unreachable or answered badly.
enum CallError {
    Unreachable(std::io::Error),
    Network(std::io::Error),
}

impl PeerClient {
    async fn call(&self, request: &Request, ttl: Duration) -> Result<Response, CallError> {
        let bytes = serde_json::to_vec(request)
            .map_err(|e| CallError::Network(std::io::Error::other(e)))?;
        let pooled = self.pool.lock().expect("pool lock poisoned").pop();
        let mut stream = match pooled {
            Some(stream) => stream,
            None => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| CallError::Unreachable(std::io::ErrorKind::TimedOut.into()))?
                .map_err(CallError::Unreachable)?,
        };
        let _ = stream.set_nodelay(true);
        let exchange = async {
            write_frame(&mut stream, &bytes).await?;
            read_frame(&mut stream).await
        };
        let answer = tokio::time::timeout(ttl, exchange)
            .await
            .map_err(|_| CallError::Network(std::io::ErrorKind::TimedOut.into()))?
            .map_err(CallError::Network)?;
        let response = serde_json::from_slice(&answer)
            .map_err(|e| CallError::Network(std::io::Error::other(e)))?;
        let mut pool = self.pool.lock().expect("pool lock poisoned");
        if pool.len() < POOL_PER_PEER {
            pool.push(stream);
        }
        Ok(response)
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        error: CallError,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match error {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => {
                let detail = std::io::Error::other(format!("peer {}: {e}", self.target));
                RPCError::Network(NetworkError::new(&detail))
            }
        }
    }
}

fn unexpected() -> CallError {
    CallError::Network(std::io::Error::other("the peer answered a different call"))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(&Request::Append(rpc), option.hard_ttl()).await {
            Ok(Response::Append(result)) => result.map_err(|e| {
                RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e))
            }),
            Ok(_) => Err(self.rpc_error(unexpected())),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(&Request::Snapshot(rpc), option.hard_ttl()).await {
            Ok(Response::Snapshot(result)) => result.map_err(|e| {
                RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e))
            }),
            Ok(_) => Err(self.rpc_error(unexpected())),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await {
            Ok(Response::Vote(result)) => result.map_err(|e| {
                RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e))
            }),
            Ok(_) => Err(self.rpc_error(unexpected())),
            Err(e) => Err(self.rpc_error(e)),
        }
    }
}

// --- receiving ---------------------------------------------------------------

/// When heartbeats arrived, as gaps between consecutive ones from one leader.
#[derive(Default)]
pub struct HeartbeatLog {
    inner: Mutex<HeartbeatState>,
}

#[derive(Default)]
struct HeartbeatState {
    leader: Option<(u64, NodeId)>, // (term, node) whose heartbeat came last
    last_at: Option<Instant>,
    gaps_us: Vec<u64>,
    received: u64,
}

impl HeartbeatLog {
    fn note(&self, term: u64, leader: NodeId) {
        let now = Instant::now();
        let mut state = self.inner.lock().expect("heartbeat lock poisoned");
        state.received += 1;
        // A gap across a change of leader measures the election, not a delay.
        if let (Some(last), true) = (state.last_at, state.leader == Some((term, leader))) {
            if state.gaps_us.len() < MAX_GAP_SAMPLES {
                let gap_us = now.duration_since(last).as_micros() as u64;
                state.gaps_us.push(gap_us);
            }
        }
        state.leader = Some((term, leader));
        state.last_at = Some(now);
    }

    /// The gaps recorded since the last call; they are forgotten here.
    pub fn take_gaps(&self) -> Vec<u64> {
        std::mem::take(&mut self.inner.lock().expect("heartbeat lock poisoned").gaps_us)
    }

    pub fn received(&self) -> u64 {
        self.inner.lock().expect("heartbeat lock poisoned").received
    }
}

/// Accepts peers' connections and hands their messages to Raft.
pub async fn serve(listener: TcpListener, raft: RaftNode, heartbeats: Arc<HeartbeatLog>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_peer(stream, raft.clone(), heartbeats.clone()));
    }
}

async fn serve_peer(mut stream: TcpStream, raft: RaftNode, heartbeats: Arc<HeartbeatLog>) {
    while let Ok(bytes) = read_frame(&mut stream).await {
        let Ok(request) = serde_json::from_slice::<Request>(&bytes) else {
            return; // not a peer of this cluster: drop the connection
        };
        let response = match request {
            Request::Append(rpc) => {
                if rpc.entries.is_empty() {
                    let leader = rpc.vote.leader_id();
                    heartbeats.note(leader.term, leader.node_id);
                }
                Response::Append(raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::Snapshot(rpc) => Response::Snapshot(raft.install_snapshot(rpc).await),
        };
        let Ok(answer) = serde_json::to_vec(&response) else {
            return;
        };
        if write_frame(&mut stream, &answer).await.is_err() {
            return;
        }
    }
}
