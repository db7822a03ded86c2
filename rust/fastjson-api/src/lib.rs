//! fastjson-api: the JSON API of the PHP-FPM chapter, on Actix-web 4 and Serde.
//!
//! Two endpoints, the same as `snippets/php/public/index.php`:
//! `GET /json` (TechEmpower's JSON test) and `POST /statuses`, which parses a
//! search-API timeline shaped like `data/twitter.json` and answers a summary.
//! The parsing and the summary live in [`summarise`], usable without HTTP, so
//! the bench can measure what the HTTP layer costs on top of it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// The body of `GET /json`, built anew for every request: TechEmpower's rules
/// forbid caching the serialised bytes.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// The body of `POST /statuses`: only the fields the summary needs are
/// declared; serde skips every other field (real statuses have dozens).
///
/// String fields are `Cow<'a, str>` borrowed from the request bytes: a string
/// without escapes is a slice of the body (no copy), and one with escapes
/// (`\n`, `\u00e9`, tweets have many) is unescaped into an owned `String`.
/// A plain `&'a str` would fail on any escaped string, a 422 that PHP's
/// json_decode would not give.
#[derive(Deserialize)]
struct Timeline<'a> {
    #[serde(borrow)]
    statuses: Vec<Object<Status<'a>>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    // Read only to check that it is a string, as the PHP side does.
    #[serde(rename = "id_str", borrow)]
    _id_str: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    lang: Cow<'a, str>,
    /// u32 rejects negative numbers, floats (even `1.0`) and anything above
    /// 4,294,967,295: all of them a 422, as on the PHP side.
    retweet_count: u32,
    #[serde(borrow)]
    user: Object<User<'a>>,
    #[serde(borrow)]
    entities: Object<Entities<'a>>,
    /// Absent or null: not a retweet. An object: a retweet, whose contents
    /// are skipped unread. Anything else is a 422.
    #[serde(default)]
    retweeted_status: Option<Object<IgnoredAny>>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow)]
    id_str: Cow<'a, str>,
    followers_count: u32,
}

#[derive(Deserialize)]
struct Entities<'a> {
    #[serde(borrow)]
    hashtags: Vec<Object<Hashtag<'a>>>,
}

#[derive(Deserialize)]
struct Hashtag<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// A JSON object and nothing else around a derived struct.
///
/// serde's derived structs also accept a JSON array of their fields in order
/// (`"user": ["42", 7]`). PHP's validation sees an array there, not an object,
/// and answers 422; this wrapper asks the parser for a map only, so both sides
/// agree.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapOnly<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(MapOnly(PhantomData))
            .map(Object)
    }
}

/// The answer of `POST /statuses`.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub statuses: u64,
    /// Statuses whose `retweeted_status` is an object.
    pub retweets: u64,
    /// Distinct `user.id_str`.
    pub users: u64,
    pub total_followers: u64,
    pub total_retweet_count: u64,
    /// Unicode code points (not bytes, not UTF-16 units) over all texts.
    pub text_chars: u64,
    /// Statuses per `lang`; a BTreeMap serialises with keys in byte order.
    pub languages: BTreeMap<String, u64>,
    pub top_hashtags: Vec<TagCount>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct TagCount {
    pub tag: String,
    pub count: u64,
}

/// Every way a request can fail, each with its status code and the `error`
/// kind of the JSON body, the same on the PHP side.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiError {
    MalformedJson(String),
    WrongType(String),
    BodyTooLarge,
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed { allow: &'static str },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    detail: &'a str,
}

impl ApiError {
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::WrongType(_) => "wrong_type",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::MalformedJson(why) => write!(f, "the body is not valid JSON: {why}"),
            ApiError::WrongType(why) => {
                write!(f, "the JSON does not have the expected shape: {why}")
            }
            ApiError::BodyTooLarge => write!(
                f,
                "the body is larger than {BODY_LIMIT_BYTES} bytes (BODY_LIMIT_BYTES)"
            ),
            ApiError::UnsupportedMediaType => {
                write!(f, "the Content-Type must be application/json")
            }
            ApiError::NotFound => write!(f, "no such path; the paths are /json and /statuses"),
            ApiError::MethodNotAllowed { allow } => {
                write!(f, "this path answers {allow} only")
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::WrongType(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = self.to_string();
        let mut response = json_response(
            self.status_code(),
            &ErrorBody {
                error: self.kind(),
                detail: &detail,
            },
        );
        if let ApiError::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

// ---------------------------------------------------------------------------
// The summary, without HTTP
// ---------------------------------------------------------------------------

/// Parses a timeline once, straight from the bytes, and summarises it.
///
/// Malformed JSON (including invalid UTF-8, lone surrogates and nesting past
/// [`JSON_DEPTH_LIMIT`]) is [`ApiError::MalformedJson`]; valid JSON of the
/// wrong shape is [`ApiError::WrongType`].
pub fn summarise(body: &[u8]) -> Result<Summary, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::MalformedJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    check_depth_and_surrogates(text)?;

    // from_str, not from_slice: the UTF-8 is checked once above, for the
    // whole body, so the parser need not check it again string by string.
    let Object(timeline) = serde_json::from_str::<Object<Timeline>>(text).map_err(|e| {
        // A number too large for any float (1e400) is valid JSON that does not
        // fit the schema: a wrong type, as PHP (which reads it as INF) says.
        if e.is_data() || e.to_string().starts_with("number out of range") {
            ApiError::WrongType(e.to_string())
        } else {
            ApiError::MalformedJson(e.to_string())
        }
    })?;

    let mut summary = Summary {
        statuses: timeline.statuses.len() as u64,
        retweets: 0,
        users: 0,
        total_followers: 0,
        total_retweet_count: 0,
        text_chars: 0,
        languages: BTreeMap::new(),
        top_hashtags: Vec::new(),
    };
    // Keys borrow from the parsed statuses: no string is copied while counting.
    let mut languages: BTreeMap<&str, u64> = BTreeMap::new();
    let mut users: HashSet<&str> = HashSet::new();
    let mut tags: HashMap<&str, u64> = HashMap::new();

    for Object(status) in &timeline.statuses {
        let user = &status.user.0;
        summary.retweets += u64::from(status.retweeted_status.is_some());
        summary.total_followers += u64::from(user.followers_count);
        summary.total_retweet_count += u64::from(status.retweet_count);
        summary.text_chars += status.text.chars().count() as u64;
        users.insert(&user.id_str);
        *languages.entry(&status.lang).or_default() += 1;
        for Object(hashtag) in &status.entities.0.hashtags {
            *tags.entry(&hashtag.text).or_default() += 1;
        }
    }

    summary.users = users.len() as u64;
    summary.languages = languages
        .into_iter()
        .map(|(lang, count)| (lang.to_owned(), count))
        .collect();

    // Count descending, then tag ascending in byte order (str's Ord), which is
    // what PHP's strcmp gives: equal counts always come out in the same order.
    let mut ranked: Vec<(&str, u64)> = tags.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    summary.top_hashtags = ranked
        .into_iter()
        .take(TOP_HASHTAGS)
        .map(|(tag, count)| TagCount {
            tag: tag.to_owned(),
            count,
        })
        .collect();
    Ok(summary)
}

/// Rejects nesting past [`JSON_DEPTH_LIMIT`] and lone UTF-16 surrogates
/// anywhere in the document.
///
/// serde_json checks both only in the values it deserialises; the unknown
/// fields it skips (most of a status) are skipped unchecked. PHP's json_decode
/// checks the whole document, so without this pass a body with a lone
/// surrogate in, say, `user.description` would be a 200 here and a 400 there.
/// One pass over the bytes; string contents are skipped with memchr.
fn check_depth_and_surrogates(text: &str) -> Result<(), ApiError> {
    let bytes = text.as_bytes();
    let mut depth: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_string(bytes, i + 1)?;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth >= JSON_DEPTH_LIMIT {
                    return Err(ApiError::MalformedJson(format!(
                        "arrays and objects nested deeper than {JSON_DEPTH_LIMIT} levels"
                    )));
                }
            }
            // Unbalanced brackets are left for the parser to report.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Skips a string whose opening quote is just before `start`, checking its
/// `\u` escapes pair up; returns the index after the closing quote. Other
/// faults (bad escapes, control characters, no closing quote) are left for
/// the parser, which rejects them anyway.
fn skip_string(bytes: &[u8], start: usize) -> Result<usize, ApiError> {
    let lone = || ApiError::MalformedJson("a lone UTF-16 surrogate in a \\u escape".into());
    let mut i = start;
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
        i += offset;
        if bytes[i] == b'"' {
            return Ok(i + 1);
        }
        // bytes[i] is a backslash.
        match bytes.get(i + 1) {
            Some(b'u') => {
                let unit = hex4(bytes, i + 2);
                i += 6;
                match unit {
                    Some(0xD800..=0xDBFF) => {
                        let low = if bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u')
                        {
                            hex4(bytes, i + 2)
                        } else {
                            None
                        };
                        if !matches!(low, Some(0xDC00..=0xDFFF)) {
                            return Err(lone());
                        }
                        i += 6;
                    }
                    Some(0xDC00..=0xDFFF) => return Err(lone()),
                    _ => {}
                }
            }
            _ => i += 2,
        }
        if i >= bytes.len() {
            break;
        }
    }
    Ok(bytes.len())
}

/// The four hex digits at `at`, if there are four.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// `GET /json`: TechEmpower's JSON test.
async fn hello() -> HttpResponse {
    json_response(
        StatusCode::OK,
        &Message {
            message: "Hello, World!",
        },
    )
}

/// `POST /statuses`: summarise a timeline.
///
/// The checks run in the order nginx and PHP run them on the legacy side: a
/// declared length over the limit first (nginx answers it before PHP sees the
/// request), then the media type, then the body as it streams in.
async fn statuses(req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let declared_bytes = declared_length(&req)?;
    if !is_json_media_type(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_body(payload, declared_bytes).await?;
    let summary = summarise(&body)?;
    Ok(json_response(StatusCode::OK, &summary))
}

/// Any path other than /json and /statuses.
async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

/// /json with a method other than GET.
async fn get_only() -> HttpResponse {
    ApiError::MethodNotAllowed { allow: "GET" }.error_response()
}

/// /statuses with a method other than POST.
async fn post_only() -> HttpResponse {
    ApiError::MethodNotAllowed { allow: "POST" }.error_response()
}

/// Every answer, error or not, goes through here so that each carries the
/// same Content-Type and Server header. actix-http adds Date and
/// Content-Length itself.
fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::SERVER, SERVER_NAME))
            .body(bytes),
        // Serialising these plain structs cannot fail; answer 500 rather
        // than panic if it ever does.
        Err(_) => HttpResponse::InternalServerError()
            .insert_header((header::SERVER, SERVER_NAME))
            .finish(),
    }
}

/// The Content-Length, refused up front when it is over the limit so that
/// nothing of an oversized body is read.
fn declared_length(req: &HttpRequest) -> Result<Option<usize>, ApiError> {
    // actix-http has already rejected a Content-Length that is not a number.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(bytes) if bytes > BODY_LIMIT_BYTES as u64 => Err(ApiError::BodyTooLarge),
        Some(bytes) => Ok(Some(bytes as usize)),
        None => Ok(None),
    }
}

/// `application/json`, in any case, with or without parameters such as
/// `; charset=utf-8`.
fn is_json_media_type(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Collects the body, stopping as soon as it would pass the limit: a chunked
/// body with no Content-Length never holds more than BODY_LIMIT_BYTES.
async fn read_body(
    mut payload: web::Payload,
    declared_bytes: Option<usize>,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::with_capacity(declared_bytes.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::MalformedJson(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > BODY_LIMIT_BYTES {
            return Err(ApiError::BodyTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// The largest body accepted, 2 MiB: three times data/twitter.json. nginx's
/// `client_max_body_size 2m` on the PHP side is the same number.
pub const BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;

/// Nesting limit, counted as PHP's `json_decode($body, false, 128)` counts it:
/// the value inside the innermost array or object is a level too, so at most
/// 127 arrays and objects may nest. serde_json's own recursion limit is the
/// same 127, but it applies only to the fields it deserialises.
pub const JSON_DEPTH_LIMIT: usize = 128;

/// How many hashtags the summary ranks.
pub const TOP_HASHTAGS: usize = 10;

/// The Server header of every answer (TechEmpower requires one).
pub const SERVER_NAME: &str = "fastjson-api";

// ---------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------

/// Routes and handlers, shared by the binary and the in-process tests:
/// `App::new().configure(fastjson_api::configure)`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/json")
            .route(web::get().to(hello))
            .default_service(web::to(get_only)),
    )
    .service(
        web::resource("/statuses")
            .route(web::post().to(statuses))
            .default_service(web::to(post_only)),
    )
    .default_service(web::to(not_found));
}
