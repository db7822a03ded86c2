//! The HTTP API in process: routes, headers, every error case, the limit.

use actix_web::http::{header, StatusCode};
use actix_web::{test, App};
use fastjson_api::BODY_LIMIT_BYTES;
use serde_json::{json, Value};

const TWITTER_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/twitter.json");

/// Sends one request to a fresh app; returns status, headers and the JSON body.
async fn call(req: test::TestRequest) -> (StatusCode, header::HeaderMap, Value) {
    let app = test::init_service(App::new().configure(fastjson_api::configure)).await;
    let response = test::call_service(&app, req.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {bytes:?}"));
    (status, headers, body)
}

/// A header's value as text, "" when absent.
fn value(headers: &header::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn post_json(body: impl Into<Vec<u8>>) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/statuses")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.into())
}

/// `{"statuses":[]}` padded with spaces to exactly `bytes` bytes.
fn padded(bytes: usize) -> Vec<u8> {
    let mut body = br#"{"statuses":[]}"#.to_vec();
    body.resize(bytes, b' ');
    body
}

#[actix_web::test]
async fn json_endpoint_meets_techempower() {
    let (status, headers, body) = call(test::TestRequest::get().uri("/json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "Hello, World!"}));
    assert_eq!(value(&headers, header::CONTENT_TYPE), "application/json");
    assert_eq!(value(&headers, header::SERVER), "fastjson-api");
    // Date and Content-Length are added by actix-http on the wire; the real
    // server test checks them.
}

#[actix_web::test]
async fn statuses_summarises_twitter_json() {
    let body = std::fs::read(TWITTER_JSON).unwrap();
    let req = test::TestRequest::post()
        .uri("/statuses")
        .insert_header((header::CONTENT_TYPE, "Application/JSON; charset=utf-8"))
        .set_payload(body);
    let (status, headers, body) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value(&headers, header::CONTENT_TYPE), "application/json");
    assert_eq!(body["statuses"], 100);
    assert_eq!(body["retweets"], 73);
    assert_eq!(body["languages"], json!({"ja": 96, "zh": 4}));
    assert_eq!(
        body["top_hashtags"][0],
        json!({"tag": "RTした人にやる", "count": 2})
    );
}

#[actix_web::test]
async fn every_error_case() {
    let cases: Vec<(&str, test::TestRequest, StatusCode, &str)> = vec![
        (
            "malformed",
            post_json("{"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "invalid UTF-8",
            post_json(b"{\"statuses\":[],\"a\":\"\xc3\"}".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "lone surrogate",
            post_json(r#"{"statuses":[],"a":"\udfff"}"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "too deep",
            post_json(format!("{}{}", "[".repeat(200), "]".repeat(200))),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "missing field",
            post_json(r#"{"statuses":[{"id_str":"1"}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "wrong type",
            post_json(r#"{"statuses":"none"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "declared over the limit",
            post_json(padded(BODY_LIMIT_BYTES + 1)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "no content type",
            test::TestRequest::post().uri("/statuses").set_payload("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "text/plain",
            test::TestRequest::post()
                .uri("/statuses")
                .insert_header((header::CONTENT_TYPE, "text/plain"))
                .set_payload("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "unknown path",
            test::TestRequest::get().uri("/nope"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET /statuses",
            test::TestRequest::get().uri("/statuses"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "POST /json",
            test::TestRequest::post().uri("/json"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (name, req, want_status, want_kind) in cases {
        let (status, headers, body) = call(req).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"], want_kind, "{name}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: {body}"
        );
        assert_eq!(
            value(&headers, header::CONTENT_TYPE),
            "application/json",
            "{name}"
        );
        assert_eq!(value(&headers, header::SERVER), "fastjson-api", "{name}");
    }
}

#[actix_web::test]
async fn method_not_allowed_names_the_method() {
    let (_, headers, _) = call(test::TestRequest::delete().uri("/json")).await;
    assert_eq!(value(&headers, header::ALLOW), "GET");
    let (_, headers, _) = call(test::TestRequest::put().uri("/statuses")).await;
    assert_eq!(value(&headers, header::ALLOW), "POST");
}

#[actix_web::test]
async fn a_body_at_the_limit_is_accepted() {
    let (status, _, body) = call(post_json(padded(BODY_LIMIT_BYTES))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["statuses"], 0);
}

#[actix_web::test]
async fn the_media_type_is_checked_before_the_body() {
    let req = test::TestRequest::post()
        .uri("/statuses")
        .insert_header((header::CONTENT_TYPE, "application/jsonx"))
        .set_payload("{");
    let (status, _, _) = call(req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
