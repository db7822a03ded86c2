//! A session service that keeps what it is given, in two modes.
//!
//! `bounded` holds at most `capacity` sessions and evicts the oldest;
//! `unbounded` holds every session it ever created. The API matches the
//! leaking Java service in `snippets/java/leak/`, so the leak chapter can load
//! all three the same way and compare their memory over time.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// How the registry treats old sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// At most `capacity` sessions; the oldest goes when a new one arrives.
    Bounded { capacity: usize },
    /// Every session stays: the Rust twin of the Java leak.
    Unbounded,
}

/// The body of `POST /sessions`. Unknown fields are refused, so a typo in the
/// bench's payload is a 422 instead of a silently smaller session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub user: String,
    pub items: Vec<String>,
}

/// What the registry holds per request: the parsed request and a payload
/// buffer of `leak_bytes`, the "leak size per request" knob.
#[derive(Debug)]
pub struct Session {
    pub request: NewSession,
    pub payload: Vec<u8>,
}

/// Sessions by id. One map for both modes, so the only difference between
/// them is whether anything is ever removed.
#[derive(Debug)]
pub struct Registry {
    mode: Mode,
    sessions: HashMap<u64, Session>,
    // Ids in creation order; only the bounded mode reads it, to find the
    // oldest session. The unbounded mode leaves it empty.
    order: VecDeque<u64>,
}

impl Registry {
    pub fn new(mode: Mode) -> Self {
        Registry {
            mode,
            sessions: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Stores `session` under `id` and returns the session it evicted, if
    /// any. Returning it lets the caller drop it after releasing the lock.
    pub fn insert(&mut self, id: u64, session: Session) -> Option<Session> {
        self.sessions.insert(id, session);
        let Mode::Bounded { capacity } = self.mode else {
            return None;
        };

        // This bound is the whole fix: ownership frees a session the moment
        // nothing owns it, but a registry that owns every session forever
        // (the unbounded mode) grows like the Java leak. Evicting the oldest
        // caps what outlives a request at `capacity` sessions, so memory
        // stays flat however long the load runs.
        self.order.push_back(id);
        if self.order.len() > capacity {
            let oldest_id = self.order.pop_front()?;
            return self.sessions.remove(&oldest_id);
        }
        None
    }

    pub fn get(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// Shared by every worker thread.
#[derive(Debug)]
pub struct AppState {
    pub leak_bytes: usize,
    next_id: AtomicU64,
    // A plain Mutex: each request holds it for one map insert, far shorter
    // than the HTTP work around it, so it is not what the chapter measures.
    registry: Mutex<Registry>,
}

impl AppState {
    pub fn new(mode: Mode, leak_bytes: usize) -> Self {
        AppState {
            leak_bytes,
            next_id: AtomicU64::new(1),
            registry: Mutex::new(Registry::new(mode)),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map half-written
        // in a way that matters here, so a poisoned lock is still usable.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Serialize)]
struct Created {
    session: u64,
    items: usize,
}

#[derive(Serialize)]
struct SessionView<'a> {
    session: u64,
    user: &'a str,
    items: usize,
    payload_bytes: usize,
}

/// `GET /stats`. The GC fields exist so the bench reads one shape from the
/// Java and the Rust services; Rust has no collector, hence 0 and null.
#[derive(Serialize)]
struct Stats {
    sessions: usize,
    heap_used_bytes: Option<u64>,
    gc_time_ms: u64,
    gc_count: u64,
}

/// A refused request: its status, a short kind and a sentence for a human.
/// Handlers return it with `?`; actix turns it into the JSON error body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({
            "error": self.kind,
            "detail": self.detail,
        }))
    }
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// `POST /sessions`: stores a session and answers its id.
async fn create_session(
    state: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = match body.to_bytes_limited(BODY_LIMIT_BYTES).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            let detail = format!("could not read the body: {err}");
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_body", detail));
        }
        Err(_) => {
            let detail = format!("the body is over the limit of {BODY_LIMIT_BYTES} bytes");
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                detail,
            ));
        }
    };
    let request = parse_new_session(&bytes)?;

    // A non-zero fill makes every page of the buffer really written, so the
    // memory the session holds shows in RSS; a zeroed allocation could be
    // left untouched by the allocator and hide the leak.
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let payload = vec![(id % 251) as u8 + 1; state.leak_bytes];
    let created = Created {
        session: id,
        items: request.items.len(),
    };

    let evicted = state.registry().insert(id, Session { request, payload });
    // The guard above is already gone: the evicted session (if any) is freed
    // here, outside the lock, and everything else this handler owned (the
    // body bytes) is freed when it returns.
    drop(evicted);
    Ok(HttpResponse::Ok().json(created))
}

/// `GET /sessions/{id}`: what the registry still holds for one session, so a
/// test or a reader can see which sessions were evicted.
async fn show_session(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = path.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "the session id must be a non-negative integer",
        )
    })?;
    let registry = state.registry();
    let session = registry.get(id).ok_or_else(|| {
        let detail = format!("no session {id} is held (never created, or evicted)");
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    })?;
    Ok(HttpResponse::Ok().json(SessionView {
        session: id,
        user: &session.request.user,
        items: session.request.items.len(),
        payload_bytes: session.payload.len(),
    }))
}

/// `GET /stats`: how many sessions are held.
async fn stats(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Stats {
        sessions: state.registry().len(),
        heap_used_bytes: None,
        gc_time_ms: 0,
        gc_count: 0,
    })
}

async fn not_found() -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: try POST /sessions, GET /sessions/{id} or GET /stats",
    )
    .error_response()
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
    .error_response()
}

/// Parses and checks a `POST /sessions` body: 400 when it is not JSON, 422
/// when it is JSON of the wrong shape.
pub fn parse_new_session(bytes: &[u8]) -> Result<NewSession, ApiError> {
    let request: NewSession = serde_json::from_slice(bytes).map_err(|err| {
        if err.is_data() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_type",
                err.to_string(),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", err.to_string())
        }
    })?;

    // serde also fills a struct from an array (`["u1", []]`); the API takes
    // an object only, as the Java service does.
    let first_byte = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first_byte != Some(&b'{') {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
            "the body must be a JSON object",
        ));
    }
    Ok(request)
}

/// Registers the routes on an app; the binary and the tests share it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sessions")
            .route(web::post().to(create_session))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/sessions/{id}")
            .route(web::get().to(show_session))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/stats")
            .route(web::get().to(stats))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// Largest `POST /sessions` body; the bench sends about 1 KB.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Payload buffer per session unless `--leak-bytes` says otherwise.
pub const DEFAULT_LEAK_BYTES: usize = 16 * 1024;

/// Largest `--leak-bytes`, so a typo cannot ask for gigabytes per request.
pub const MAX_LEAK_BYTES: usize = 16 * 1024 * 1024;

/// Sessions the bounded registry keeps unless `--capacity` says otherwise.
pub const DEFAULT_CAPACITY_SESSIONS: usize = 1024;

/// How long shutdown waits for requests in flight; the contract allows 5 s.
pub const SHUTDOWN_GRACE_S: u64 = 3;
