//! The API in-process: registry bounds, error cases and the stats shape.

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use leak_service::{configure, AppState, Mode, BODY_LIMIT_BYTES};
use serde_json::{json, Value};

const LEAK_BYTES: usize = 1024;
const BODY: &str = r#"{"user":"u123","items":["a1","b2","c3"]}"#;

async fn app(
    mode: Mode,
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    let state = web::Data::new(AppState::new(mode, LEAK_BYTES));
    test::init_service(App::new().app_data(state).configure(configure)).await
}

async fn post(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    body: impl Into<Vec<u8>>,
) -> (StatusCode, Value) {
    let request = test::TestRequest::post()
        .uri("/sessions")
        .insert_header(("content-type", "application/json"))
        .set_payload(body.into())
        .to_request();
    let response = test::call_service(app, request).await;
    let status = response.status();
    (status, test::read_body_json(response).await)
}

async fn get(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    uri: &str,
) -> (StatusCode, Value) {
    let request = test::TestRequest::get().uri(uri).to_request();
    let response = test::call_service(app, request).await;
    let status = response.status();
    (status, test::read_body_json(response).await)
}

#[actix_web::test]
async fn create_answers_id_and_item_count() {
    let app = app(Mode::Unbounded).await;
    let (status, body) = post(&app, BODY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"session": 1, "items": 3}));

    let (status, body) = get(&app, "/sessions/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"session": 1, "user": "u123", "items": 3, "payload_bytes": LEAK_BYTES})
    );
}

#[actix_web::test]
async fn bounded_keeps_at_most_capacity_and_evicts_the_oldest() {
    let capacity = 5;
    let app = app(Mode::Bounded { capacity }).await;
    for _ in 0..capacity * 3 {
        let (status, _) = post(&app, BODY).await;
        assert_eq!(status, StatusCode::OK);
    }

    let (_, stats) = get(&app, "/stats").await;
    assert_eq!(stats["sessions"], json!(capacity));
    // Sessions 1..=10 are gone; 11..=15 remain.
    assert_eq!(get(&app, "/sessions/10").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/sessions/11").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/sessions/15").await.0, StatusCode::OK);
}

#[actix_web::test]
async fn unbounded_keeps_every_session() {
    let requests = 50;
    let app = app(Mode::Unbounded).await;
    for _ in 0..requests {
        post(&app, BODY).await;
    }

    let (_, stats) = get(&app, "/stats").await;
    assert_eq!(stats["sessions"], json!(requests));
    assert_eq!(get(&app, "/sessions/1").await.0, StatusCode::OK);
}

#[actix_web::test]
async fn stats_has_the_shared_shape() {
    let app = app(Mode::Bounded { capacity: 8 }).await;
    let (status, stats) = get(&app, "/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats,
        json!({"sessions": 0, "heap_used_bytes": null, "gc_time_ms": 0, "gc_count": 0})
    );
}

#[actix_web::test]
async fn bad_bodies_get_a_4xx_with_a_json_error() {
    let too_large = format!(
        r#"{{"user":"u","items":["{}"]}}"#,
        "x".repeat(BODY_LIMIT_BYTES)
    );
    let deep = "[".repeat(10_000);
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "empty",
            String::new(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not json",
            "user=u1".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "cut short",
            r#"{"user":"u1","#.into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "trailing",
            format!("{BODY} x"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        ("deep", deep, StatusCode::UNPROCESSABLE_ENTITY, "wrong_type"),
        (
            "user number",
            r#"{"user":1,"items":[]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "items object",
            r#"{"user":"u","items":{}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "item number",
            r#"{"user":"u","items":[1]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "missing items",
            r#"{"user":"u"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "unknown field",
            r#"{"user":"u","items":[],"x":1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "array",
            r#"["u",[]]"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
        ),
        (
            "too large",
            too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];

    let app = app(Mode::Unbounded).await;
    for (name, body, want_status, want_kind) in cases {
        let (status, body) = post(&app, body).await;
        assert_eq!(status, want_status, "{name}: got {status}, body {body}");
        assert_eq!(body["error"], json!(want_kind), "{name}: body {body}");
        assert!(body["detail"].is_string(), "{name}: body {body}");
    }

    // None of them created a session.
    let (_, stats) = get(&app, "/stats").await;
    assert_eq!(stats["sessions"], json!(0));
}

#[actix_web::test]
async fn wrong_routes_and_methods_get_json_errors() {
    let app = app(Mode::Unbounded).await;
    let cases = [
        ("/nowhere", StatusCode::NOT_FOUND, "not_found"),
        (
            "/sessions",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        ("/sessions/abc", StatusCode::BAD_REQUEST, "bad_id"),
        ("/sessions/99", StatusCode::NOT_FOUND, "not_found"),
    ];
    for (uri, want_status, want_kind) in cases {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, want_status, "{uri}");
        assert_eq!(body["error"], json!(want_kind), "{uri}");
    }
}
