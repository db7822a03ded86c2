//! The summary without HTTP: figures on data/twitter.json, edge cases, and
//! which bodies are malformed JSON (400) or the wrong shape (422).

use fastjson_api::{summarise, ApiError, Summary, TagCount, JSON_DEPTH_LIMIT};

const TWITTER_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/twitter.json");

/// One valid status; `extra` is spliced in after the required fields.
fn status(id: &str, lang: &str, tags: &[&str], extra: &str) -> String {
    let hashtags: Vec<String> = tags
        .iter()
        .map(|t| format!(r#"{{"text":"{t}"}}"#))
        .collect();
    format!(
        r#"{{"id_str":"s{id}","text":"héllo 😀","lang":"{lang}","retweet_count":2,
            "user":{{"id_str":"u{id}","followers_count":10}},
            "entities":{{"hashtags":[{}]}}{extra}}}"#,
        hashtags.join(",")
    )
}

fn timeline(statuses: &[String]) -> Vec<u8> {
    format!(r#"{{"statuses":[{}]}}"#, statuses.join(",")).into_bytes()
}

fn kind(body: &[u8]) -> &'static str {
    match summarise(body) {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

#[test]
fn twitter_json_figures() {
    let body = std::fs::read(TWITTER_JSON).unwrap();
    let summary = summarise(&body).unwrap();
    assert_eq!(summary.statuses, 100);
    assert_eq!(summary.retweets, 73);
    assert_eq!(summary.users, 100);
    assert_eq!(summary.total_followers, 52_184);
    assert_eq!(summary.total_retweet_count, 7_122);
    assert_eq!(summary.text_chars, 11_934);
    let languages: Vec<(&str, u64)> = summary
        .languages
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(languages, [("ja", 96), ("zh", 4)]);
    let tags: Vec<(&str, u64)> = summary
        .top_hashtags
        .iter()
        .map(|t| (t.tag.as_str(), t.count))
        .collect();
    // Ties at 1 come in byte order: ASCII, then hiragana, katakana, kanji.
    assert_eq!(
        tags,
        [
            ("RTした人にやる", 2),
            ("LEDカツカツ選手権", 1),
            ("sm24357625", 1),
            ("ふぁぼした人にやる", 1),
            ("キンドル", 1),
            ("一眼レフ", 1),
            ("天冥の標VI宿怨PART1", 1),
        ]
    );
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.starts_with(r#"{"statuses":100,"#), "got {json}");
}

#[test]
fn empty_statuses() {
    let summary = summarise(br#"{"statuses":[]}"#).unwrap();
    assert_eq!(
        summary,
        Summary {
            statuses: 0,
            retweets: 0,
            users: 0,
            total_followers: 0,
            total_retweet_count: 0,
            text_chars: 0,
            languages: Default::default(),
            top_hashtags: vec![],
        }
    );
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.contains(r#""languages":{}"#), "got {json}");
    assert!(json.contains(r#""top_hashtags":[]"#), "got {json}");
}

#[test]
fn counts_retweets_users_and_code_points() {
    let body = timeline(&[
        status("1", "en", &[], r#","retweeted_status":{"id":1}"#),
        status("1", "en", &[], r#","retweeted_status":null"#),
        status("2", "fr", &[], r#","unknown":[1,{"deep":[true]}]"#),
    ]);
    let summary = summarise(&body).unwrap();
    assert_eq!(summary.statuses, 3);
    assert_eq!(summary.retweets, 1);
    assert_eq!(summary.users, 2);
    assert_eq!(summary.total_followers, 30);
    assert_eq!(summary.total_retweet_count, 6);
    // "héllo 😀" is 7 code points (10 bytes, 8 UTF-16 units).
    assert_eq!(summary.text_chars, 21);
    assert_eq!(summary.languages.get("en"), Some(&2));
    assert_eq!(summary.languages.get("fr"), Some(&1));
}

#[test]
fn escaped_strings_are_unescaped() {
    let body = br#"{"statuses":[{"id_str":"1","text":"a\nb\u00e9","lang":"\u006aa",
        "retweet_count":0,"user":{"id_str":"\/u","followers_count":0},
        "entities":{"hashtags":[{"text":"\ud83d\ude00"}]}}]}"#;
    let summary = summarise(body).unwrap();
    assert_eq!(summary.text_chars, 4);
    assert_eq!(summary.languages.get("ja"), Some(&1));
    assert_eq!(summary.top_hashtags[0].tag, "😀");
}

#[test]
fn top_hashtags_keep_ten_by_count_then_byte_order() {
    // "b" three times, "a" and "B" twice, then eleven tags once each.
    let once: Vec<String> = (0..11).map(|i| format!("t{i:02}")).collect();
    let mut tags = vec!["b", "a", "B", "b", "a", "B", "b"];
    tags.extend(once.iter().map(String::as_str));
    let summary = summarise(&timeline(&[status("1", "en", &tags, "")])).unwrap();
    let expected: Vec<TagCount> = [("b", 3), ("B", 2), ("a", 2)]
        .into_iter()
        .chain(once.iter().take(7).map(|t| (t.as_str(), 1)))
        .map(|(tag, count)| TagCount {
            tag: tag.to_owned(),
            count,
        })
        .collect();
    assert_eq!(summary.top_hashtags, expected);
}

#[test]
fn u32_bounds() {
    let count = |n: &str| {
        let body = timeline(&[status("1", "en", &[], "")]);
        let body = String::from_utf8(body).unwrap();
        kind(
            body.replace(r#""retweet_count":2"#, &format!(r#""retweet_count":{n}"#))
                .as_bytes(),
        )
    };
    assert_eq!(count("0"), "ok");
    assert_eq!(count("4294967295"), "ok");
    for bad in [
        "4294967296",
        "-1",
        "1.0",
        "1.5",
        "1e2",
        "18446744073709551616",
        "\"1\"",
        "true",
        "null",
    ] {
        assert_eq!(count(bad), "wrong_type", "retweet_count {bad}");
    }
}

#[test]
fn wrong_shapes_are_422() {
    let valid = status("1", "en", &["x"], "");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("top-level array", b"[]".to_vec()),
        ("top-level number", b"1".to_vec()),
        ("no statuses", b"{}".to_vec()),
        ("statuses an object", br#"{"statuses":{}}"#.to_vec()),
        ("status a number", br#"{"statuses":[1]}"#.to_vec()),
        (
            "missing text",
            timeline(&[valid.replace(r#""text":"héllo 😀","#, "")]),
        ),
        (
            "lang a number",
            timeline(&[valid.replace(r#""lang":"en""#, r#""lang":7"#)]),
        ),
        (
            "id_str null",
            timeline(&[valid.replace(r#""id_str":"s1""#, r#""id_str":null"#)]),
        ),
        (
            "user an array",
            timeline(&[valid.replace(r#"{"id_str":"u1","followers_count":10}"#, r#"["u1",10]"#)]),
        ),
        (
            "followers negative",
            timeline(&[valid.replace(r#""followers_count":10"#, r#""followers_count":-3"#)]),
        ),
        (
            "hashtags an object",
            timeline(&[valid.replace(r#"[{"text":"x"}]"#, "{}")]),
        ),
        (
            "hashtag a string",
            timeline(&[valid.replace(r#"[{"text":"x"}]"#, r#"["x"]"#)]),
        ),
        (
            "retweeted_status an array",
            timeline(&[status("1", "en", &[], r#","retweeted_status":[]"#)]),
        ),
        (
            "retweeted_status false",
            timeline(&[status("1", "en", &[], r#","retweeted_status":false"#)]),
        ),
    ];
    for (name, body) in cases {
        assert_eq!(kind(&body), "wrong_type", "{name}");
    }
}

#[test]
fn malformed_json_is_400() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("unterminated", br#"{"statuses":["#.to_vec()),
        ("trailing bytes", br#"{"statuses":[]} x"#.to_vec()),
        (
            "invalid UTF-8 in an unknown field",
            b"{\"statuses\":[],\"x\":\"\xff\"}".to_vec(),
        ),
        (
            "lone high surrogate",
            br#"{"statuses":[],"x":"\ud800"}"#.to_vec(),
        ),
        (
            "lone low surrogate",
            br#"{"statuses":[],"x":"a\udc00"}"#.to_vec(),
        ),
        (
            "high surrogate then letter",
            br#"{"statuses":[],"x":"\ud800\u0041"}"#.to_vec(),
        ),
        (
            "lone surrogate in a key",
            br#"{"statuses":[],"x":{"\udbff":1}}"#.to_vec(),
        ),
        ("single quotes", br#"{'statuses':[]}"#.to_vec()),
    ];
    for (name, body) in cases {
        assert_eq!(kind(&body), "malformed_json", "{name}");
    }
    assert_eq!(kind(br#"{"statuses":[],"x":"\ud83d\ude00 \\ud800"}"#), "ok");
}

/// `{"statuses":[],"x":[[...]]}` with `containers` arrays and objects nested
/// in all, counting the outer object.
fn nested(containers: usize) -> Vec<u8> {
    let inner = containers - 1;
    format!(
        r#"{{"statuses":[],"x":{}{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
    .into_bytes()
}

#[test]
fn nesting_limit_matches_php() {
    // json_decode(..., 128) accepts 127 nested containers and refuses 128.
    assert_eq!(kind(&nested(JSON_DEPTH_LIMIT - 1)), "ok");
    assert_eq!(kind(&nested(JSON_DEPTH_LIMIT)), "malformed_json");
    // Far deeper than any stack would take recursively: refused, not a crash.
    assert_eq!(kind(&nested(1_000_000)), "malformed_json");
    // Brackets inside strings are not nesting.
    let in_string = format!(r#"{{"statuses":[],"x":"{}"}}"#, "[".repeat(500));
    assert_eq!(kind(in_string.as_bytes()), "ok");
}

#[test]
fn errors_carry_a_detail() {
    let err = summarise(b"{").unwrap_err();
    assert!(matches!(err, ApiError::MalformedJson(_)));
    assert!(err.to_string().starts_with("the body is not valid JSON"));
}

#[test]
fn a_number_beyond_any_float_is_a_wrong_type() {
    // Valid JSON, but no integer field can hold it: 422 on both sides.
    let body = br#"{"statuses":[{"id_str":"1","text":"a","lang":"en","retweet_count":1e400,
        "user":{"id_str":"u","followers_count":1},"entities":{"hashtags":[]}}]}"#;
    assert_eq!(kind(body), "wrong_type");
}

#[test]
fn a_language_starting_with_nul_is_counted() {
    let body = timeline(&[status("1", r"\u0000x", &[], "")]);
    let summary = summarise(&body).expect("a valid body");
    assert_eq!(summary.languages.get("\u{0}x"), Some(&1));
}
