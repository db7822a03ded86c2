//! The GC chapter's order service in Rust: the same object-heavy work as the
//! Java and Go versions (a large long-lived cache, a per-request object graph,
//! one cache entry replaced per request), with no garbage collector. Memory
//! is freed at the moment the last owner drops it, so there is no pause to
//! draw on the timeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::{fmt, marker::PhantomData};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use serde::de::{self, value::MapAccessDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// The request body: a batch of statuses shaped like data/twitter.json.
/// Only the fields the answer needs are typed; every other field is skipped,
/// as a Jackson or encoding/json service would skip them.
#[derive(Deserialize, Default)]
struct OrdersRequest {
    // Option so that a missing or null batch is told apart from an empty one.
    #[serde(default, deserialize_with = "objects_or_null")]
    statuses: Option<Vec<Status>>,
}

/// Absent or null fields below take their default, which is what Go's
/// encoding/json does; the three services must answer the same body alike.
#[derive(Deserialize, Default)]
struct Status {
    #[serde(default, deserialize_with = "null_as_default")]
    text: String,
    #[serde(default, deserialize_with = "object_or_null")]
    user: User,
    #[serde(default, deserialize_with = "object_or_null")]
    entities: Entities,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default, deserialize_with = "null_as_default")]
    followers_count: i64,
}

#[derive(Deserialize, Default)]
struct Entities {
    #[serde(default, deserialize_with = "objects_or_null")]
    hashtags: Option<Vec<Hashtag>>,
}

#[derive(Deserialize, Default)]
struct Hashtag {
    #[serde(default, deserialize_with = "null_as_default")]
    text: String,
}

/// `T` read only from a JSON object, or from null as `T::default()`. A derived
/// struct would also accept an array of its fields in order, which Go and
/// Java refuse; this wrapper refuses it too.
struct ObjectOrNull<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for ObjectOrNull<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object or null")
            }

            fn visit_unit<E: de::Error>(self) -> Result<T, E> {
                Ok(T::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_any(ObjectVisitor(PhantomData))
            .map(ObjectOrNull)
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn object_or_null<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(ObjectOrNull::<T>::deserialize(deserializer)?.0)
}

/// An array of objects (null items read as defaults), or None for null.
fn objects_or_null<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let items = Option::<Vec<ObjectOrNull<T>>>::deserialize(deserializer)?;
    Ok(items.map(|items| items.into_iter().map(|item| item.0).collect()))
}

/// The per-request object graph: one record per status, with its text split
/// into owned words. In Java and Go this is the garbage that dies young.
struct OrderRecord {
    words: Vec<String>,
    hashtags: Vec<String>,
    followers: i64,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct OrdersAnswer {
    statuses: usize,
    words: usize,
    hashtags: usize,
    followers: i64,
}

/// A 4xx answer: its status, kind and sentence.
struct RequestError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
}

impl RequestError {
    fn new(status: StatusCode, kind: &'static str, detail: String) -> RequestError {
        RequestError {
            status,
            kind,
            detail,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
}

/// One cache entry: a few small objects and strings, built from an index.
/// The fields are what a legacy order cache holds. Nothing reads the numbers:
/// the entry exists to occupy the heap the way the Java cache does.
#[allow(dead_code)]
struct CacheEntry {
    id: u64,
    key: String,
    customer: Customer,
    lines: Vec<OrderLine>,
    note: String,
}

struct Customer {
    name: String,
    email: String,
    address: Address,
}

struct Address {
    street: String,
    city: &'static str,
    zip: String,
}

#[allow(dead_code)]
struct OrderLine {
    sku: String,
    quantity: u32,
    price_cents: u64,
}

/// The long-lived working set. One mutex per slot, so two requests that
/// replace different slots never wait for each other.
struct Cache {
    slots: Vec<Mutex<CacheEntry>>,
    requests_served: AtomicU64,
}

const CITIES: [&str; 8] = [
    "Lisbon", "Porto", "Lyon", "Leeds", "Turin", "Ghent", "Graz", "Malmo",
];

impl CacheEntry {
    /// Builds the entry for `index`. The Java and Go services build the same
    /// strings, so the three caches hold the same data.
    fn build(index: u64) -> CacheEntry {
        let lines = (0..ORDER_LINES_PER_ENTRY)
            .map(|line| OrderLine {
                sku: format!("SKU-{index}-{line}"),
                quantity: ((index + line) % 9 + 1) as u32,
                price_cents: (index * 31 + line * 17) % 10_000,
            })
            .collect();
        CacheEntry {
            id: index,
            key: format!("order-{index:08}"),
            customer: Customer {
                name: format!("Customer {}", index % 9973),
                email: format!("customer{index}@example.test"),
                address: Address {
                    street: format!("{} Legacy Street", index % 997),
                    city: CITIES[(index % CITIES.len() as u64) as usize],
                    zip: format!("{:05}", index % 100_000),
                },
            },
            lines,
            note: format!("{:-<width$}", format!("order {index} "), width = NOTE_CHARS),
        }
    }

    /// Heap bytes the entry owns, roughly: string bytes plus the structs.
    fn approx_bytes(&self) -> usize {
        let strings = self.key.len()
            + self.customer.name.len()
            + self.customer.email.len()
            + self.customer.address.street.len()
            + self.customer.address.city.len()
            + self.customer.address.zip.len()
            + self.note.len()
            + self.lines.iter().map(|l| l.sku.len()).sum::<usize>();
        strings
            + std::mem::size_of::<CacheEntry>()
            + self.lines.len() * std::mem::size_of::<OrderLine>()
    }
}

impl Cache {
    fn fill(entries: u64) -> Cache {
        Cache {
            slots: (0..entries)
                .map(|i| Mutex::new(CacheEntry::build(i)))
                .collect(),
            requests_served: AtomicU64::new(0),
        }
    }

    /// Replaces the slot the request counter points at with a fresh entry.
    /// The old entry is dropped after the lock is released, so freeing its
    /// strings never holds up another request on the same slot.
    fn replace_next(&self) {
        let counter = self.requests_served.fetch_add(1, Ordering::Relaxed);
        let index = (counter % self.slots.len() as u64) as usize;
        let fresh = CacheEntry::build(counter);
        let old = {
            // A poisoned slot only means another request panicked mid-swap;
            // the entry in it is still a whole entry, so keep using it.
            let mut slot = self.slots[index].lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *slot, fresh)
        };
        drop(old);
    }
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

fn error_response(status: StatusCode, kind: &str, detail: String) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: kind,
        detail,
    })
}

/// The deepest nesting of arrays and objects in `body`, counted outside
/// strings. serde_json skips unknown fields without a depth limit, so the
/// service checks the limit the Go and Java services share itself.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if escaped {
            escaped = false;
        } else if in_string {
            match byte {
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

/// Parses and answers one batch, or says what is wrong with it. Syntax is
/// checked in a first pass over the whole body so that a body with both a
/// syntax and a type error is a 400 here as it is in Go and Java.
fn answer_orders(body: &[u8]) -> Result<OrdersAnswer, RequestError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        RequestError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    if nesting_depth(body) > MAX_NESTING_DEPTH {
        return Err(RequestError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body nests deeper than {MAX_NESTING_DEPTH} levels"),
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
        RequestError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let request: ObjectOrNull<OrdersRequest> = serde_json::from_str(text).map_err(|e| {
        // The first pass skipped string contents; a string that cannot be
        // decoded (a lone surrogate escape) surfaces here as a syntax error.
        if e.classify() == serde_json::error::Category::Data {
            RequestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_type",
                format!("the body does not match the orders schema: {e}"),
            )
        } else {
            RequestError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )
        }
    })?;
    let statuses = request.0.statuses.ok_or_else(|| {
        RequestError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            "the body needs a \"statuses\" array".to_string(),
        )
    })?;

    let records: Vec<OrderRecord> = statuses
        .into_iter()
        .map(|status| OrderRecord {
            words: status.text.split_whitespace().map(str::to_owned).collect(),
            hashtags: status
                .entities
                .hashtags
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.text)
                .collect(),
            followers: status.user.followers_count,
        })
        .collect();

    Ok(OrdersAnswer {
        statuses: records.len(),
        words: records.iter().map(|r| r.words.len()).sum(),
        hashtags: records.iter().map(|r| r.hashtags.len()).sum(),
        // Wrapping, as Java's long and Go's int64 do, so a hostile body of huge
        // counts gets the same answer everywhere instead of a panic here.
        followers: records
            .iter()
            .fold(0i64, |sum, r| sum.wrapping_add(r.followers)),
    })
}

/// POST /orders: answer the batch and replace one cache entry.
async fn post_orders(
    request: HttpRequest,
    mut payload: web::Payload,
    cache: web::Data<Cache>,
) -> HttpResponse {
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {BODY_LIMIT_BYTES} bytes"),
        )
    };
    let declared_bytes = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_bytes.is_some_and(|n| n > BODY_LIMIT_BYTES as u64) {
        return too_large();
    }

    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the body could not be read".to_string(),
            );
        };
        if body.len() + chunk.len() > BODY_LIMIT_BYTES {
            return too_large();
        }
        body.extend_from_slice(&chunk);
    }

    match answer_orders(&body) {
        Ok(answer) => {
            cache.replace_next();
            HttpResponse::Ok().json(answer)
        }
        Err(e) => error_response(e.status, e.kind, e.detail),
    }
}

/// GET /health: the bench's readiness probe.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn method_not_allowed(detail: &'static str) -> HttpResponse {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        detail.to_string(),
    )
}

async fn not_found() -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "the endpoints are POST /orders and GET /health".to_string(),
    )
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/orders", web::post().to(post_orders))
        .route(
            "/orders",
            web::to(|| method_not_allowed("use POST for /orders")),
        )
        .route("/health", web::get().to(health))
        .route(
            "/health",
            web::to(|| method_not_allowed("use GET for /health")),
        )
        .default_service(web::to(not_found));
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// Larger bodies get a 413 before any parsing.
const BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// Deeper bodies are a 400. No real batch nests past five levels.
const MAX_NESTING_DEPTH: usize = 128;
/// The cache size the Java service fits in a 512 MiB heap with headroom.
const DEFAULT_CACHE_ENTRIES: u64 = 200_000;
const ORDER_LINES_PER_ENTRY: u64 = 4;
/// Padding that brings an entry near the Java entry's size.
const NOTE_CHARS: usize = 96;
/// SIGTERM or SIGINT stop accepting at once and wait this long for requests
/// in flight, inside the contract's 5 seconds.
const SHUTDOWN_GRACE_S: u64 = 4;

// ---------------------------------------------------------------------------
// Start and graceful shutdown
// ---------------------------------------------------------------------------

struct Options {
    port: u16,
    cache_entries: u64,
    workers: usize,
}

fn parse_options(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        cache_entries: DEFAULT_CACHE_ENTRIES,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut args = args.skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--port" => options.port = value.parse().map_err(bad)?,
            "--cache-entries" => options.cache_entries = value.parse().map_err(bad)?,
            "--workers" => options.workers = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if options.cache_entries == 0 || options.workers == 0 {
        return Err("--cache-entries and --workers must be at least 1".to_string());
    }
    Ok(options)
}

fn main() -> std::io::Result<()> {
    let options = match parse_options(std::env::args()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("ERROR: {message}");
            eprintln!("usage: gc-service [--port N] [--cache-entries N] [--workers N]");
            std::process::exit(2);
        }
    };

    let cache = web::Data::new(Cache::fill(options.cache_entries));
    let cache_bytes: usize = cache
        .slots
        .iter()
        .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).approx_bytes())
        .sum();
    eprintln!(
        "cache filled: entries={} approx_mib={}",
        options.cache_entries,
        cache_bytes / (1024 * 1024)
    );

    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || App::new().app_data(cache.clone()).configure(routes))
            .workers(options.workers)
            .shutdown_timeout(SHUTDOWN_GRACE_S)
            .bind(("127.0.0.1", options.port))?;
        let port = server.addrs()[0].port();
        // actix-web installs its own SIGTERM and SIGINT handlers: both stop
        // the listener and drain requests within SHUTDOWN_GRACE_S.
        let running = server.run();
        println!("listening on 127.0.0.1:{port}");
        use std::io::Write;
        std::io::stdout().flush()?;
        running.await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as actix_test, App};

    const BENCH_STATUSES: usize = 5;

    fn first_statuses(count: usize) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/twitter.json");
        let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .expect("data/twitter.json is valid JSON");
        let some: Vec<_> = all["statuses"].as_array().unwrap()[..count].to_vec();
        serde_json::json!({ "statuses": some }).to_string()
    }

    async fn post(body: impl Into<web::Bytes>) -> (StatusCode, serde_json::Value) {
        let app = actix_test::init_service(
            App::new()
                .app_data(web::Data::new(Cache::fill(10)))
                .configure(routes),
        )
        .await;
        let request = actix_test::TestRequest::post()
            .uri("/orders")
            .set_payload(body.into())
            .to_request();
        let response = actix_test::call_service(&app, request).await;
        let status = response.status();
        let body = actix_test::read_body(response).await;
        (
            status,
            serde_json::from_slice(&body).expect("every answer is JSON"),
        )
    }

    #[actix_web::test]
    async fn answers_the_first_five_statuses() {
        let (status, body) = post(first_statuses(BENCH_STATUSES)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            serde_json::json!({"statuses": 5, "words": 25, "hashtags": 1, "followers": 3285})
        );
    }

    #[actix_web::test]
    async fn rejects_bad_bodies_with_the_right_status_and_kind() {
        let too_large = format!(
            "{{\"statuses\":[],\"pad\":\"{}\"}}",
            "x".repeat(BODY_LIMIT_BYTES)
        );
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            ("empty", b"".to_vec(), 400, "malformed_json"),
            (
                "truncated",
                br#"{"statuses":["#.to_vec(),
                400,
                "malformed_json",
            ),
            (
                "syntax beats type",
                br#"{"statuses":5,"#.to_vec(),
                400,
                "malformed_json",
            ),
            ("too deep", deep(129).into_bytes(), 400, "malformed_json"),
            (
                "not utf-8",
                b"{\"statuses\":[{\"text\":\"\xff\"}]}".to_vec(),
                400,
                "malformed_json",
            ),
            (
                "deep but within the limit",
                deep(128).into_bytes(),
                422,
                "wrong_type",
            ),
            ("top-level array", b"[]".to_vec(), 422, "wrong_type"),
            (
                "a struct as an array",
                br#"{"statuses":[{"user":[]}]}"#.to_vec(),
                422,
                "wrong_type",
            ),
            (
                "text a number",
                br#"{"statuses":[{"text":5}]}"#.to_vec(),
                422,
                "wrong_type",
            ),
            (
                "followers a float",
                br#"{"statuses":[{"user":{"followers_count":1.5}}]}"#.to_vec(),
                422,
                "wrong_type",
            ),
            ("no statuses", b"{}".to_vec(), 422, "missing_field"),
            ("null body", b"null".to_vec(), 422, "missing_field"),
            ("too large", too_large.into_bytes(), 413, "body_too_large"),
        ];
        for (name, body, want_status, want_kind) in cases {
            let (status, answer) = post(body).await;
            assert_eq!(status.as_u16(), want_status, "{name}: status");
            assert_eq!(answer["error"], want_kind, "{name}: kind");
        }
    }

    #[actix_web::test]
    async fn nulls_and_unknown_fields_take_defaults() {
        let body = r#"{"statuses":[null,{"text":null,"user":null,"entities":{"hashtags":[null]},"extra":[1e400]}]}"#;
        let (status, answer) = post(body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            answer,
            serde_json::json!({"statuses": 2, "words": 0, "hashtags": 1, "followers": 0})
        );
    }

    #[test]
    fn replacing_walks_the_slots_in_order() {
        let cache = Cache::fill(3);
        for _ in 0..4 {
            cache.replace_next();
        }
        // Requests 0..3 rebuilt slots 0, 1, 2 and then slot 0 again from counter 3.
        assert_eq!(cache.slots[0].lock().unwrap().key, "order-00000003");
        assert_eq!(cache.slots[1].lock().unwrap().key, "order-00000001");
    }

    #[test]
    fn an_entry_is_near_the_java_size() {
        let bytes = CacheEntry::build(123_456).approx_bytes();
        assert!((300..=1024).contains(&bytes), "entry is {bytes} bytes");
    }
}
