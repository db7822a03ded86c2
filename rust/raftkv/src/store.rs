//! The Raft log and the state machine, both in memory.
//!
//! openraft asks the application for storage (traits `RaftLogStorage` and
//! `RaftStateMachine`); this is the smallest honest version: the log in a
//! `BTreeMap` by index, the key-value data in another. A killed node does not
//! come back in this chapter, so nothing needs to reach a disk: durability
//! comes from the majority holding each committed entry.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use crate::{NodeId, TypeConfig};

/// A write: set `key` to `value`. One entry of the replicated log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub key: String,
    pub value: String,
}

// --- the log -----------------------------------------------------------------

#[derive(Debug, Default)]
struct LogData {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The log store; clones share one log (the reader openraft asks for is a
/// clone).
#[derive(Debug, Clone, Default)]
pub struct LogStore {
    // std Mutex: no lock is held across an await
    inner: Arc<Mutex<LogData>>,
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let log = self.inner.lock().expect("log lock poisoned");
        Ok(log.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let log = self.inner.lock().expect("log lock poisoned");
        let last = log.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last.or(log.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner.lock().expect("log lock poisoned").vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().expect("log lock poisoned").vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.inner.lock().expect("log lock poisoned").committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().expect("log lock poisoned").committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut log = self.inner.lock().expect("log lock poisoned");
            for entry in entries {
                log.entries.insert(entry.log_id.index, entry);
            }
        }
        // In memory, an append is "flushed" as soon as it is in the map.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.inner.lock().expect("log lock poisoned");
        log.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.inner.lock().expect("log lock poisoned");
        let kept = log.entries.split_off(&(log_id.index + 1));
        log.entries = kept;
        log.last_purged = Some(log_id);
        Ok(())
    }
}

// --- the state machine -------------------------------------------------------

/// What the state machine holds; shared with the HTTP handlers, which read it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StateData {
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, openraft::BasicNode>,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    bytes: Vec<u8>,
}

/// The key-value state machine. Clones share one state.
#[derive(Debug, Clone, Default)]
pub struct StateMachine {
    // RwLock: HTTP reads many at a time, Raft applies one batch at a time
    pub state: Arc<RwLock<StateData>>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    snapshots_built: Arc<Mutex<u64>>,
}

fn io_error(error: &(impl std::error::Error + 'static)) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(openraft::AnyError::new(error)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (bytes, last_applied, last_membership) = {
            let state = self.state.read().expect("state lock poisoned");
            let bytes = serde_json::to_vec(&*state).map_err(|e| io_error(&e))?;
            (bytes, state.last_applied, state.last_membership.clone())
        };
        let built = {
            let mut count = self.snapshots_built.lock().expect("counter lock poisoned");
            *count += 1;
            *count
        };
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{built}", id.leader_id, id.index),
            None => format!("empty-{built}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        *self.snapshot.lock().expect("snapshot lock poisoned") = Some(StoredSnapshot {
            meta: meta.clone(),
            bytes: bytes.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        let state = self.state.read().expect("state lock poisoned");
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write().expect("state lock poisoned");
        let mut responses = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    state.data.insert(command.key, command.value);
                }
                EntryPayload::Membership(membership) => {
                    state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            responses.push(());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let restored: StateData = serde_json::from_slice(&bytes).map_err(|e| io_error(&e))?;
        *self.state.write().expect("state lock poisoned") = StateData {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            data: restored.data,
        };
        *self.snapshot.lock().expect("snapshot lock poisoned") = Some(StoredSnapshot {
            meta: meta.clone(),
            bytes,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored = self
            .snapshot
            .lock()
            .expect("snapshot lock poisoned")
            .clone();
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.bytes)),
        }))
    }
}
