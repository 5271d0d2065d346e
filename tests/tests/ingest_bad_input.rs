//! Every class of bad input to `POST /v1/events` gets the right 4xx problem, never a 5xx, and writes
//! nothing: no item, no message, no remembered idempotency key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use herald::domain::Channel;
use herald_integration_tests::{ApiRequest, Stack, order_created};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    request: ApiRequest,
    status: u16,
    code: &'static str,
    pointer: Option<&'static str>,
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut body = order_created(1);
    change(&mut body);
    body
}

fn slack(url: &str) -> Value {
    with(|body| body["recipient"]["slack_webhook_url"] = json!(url))
}

fn cases(key: &str) -> Vec<Case> {
    let post = || ApiRequest::new("POST", "/v1/events").key(key);
    let json_post = |body: &Value| post().json(body);
    let raw = |bytes: &[u8]| {
        post()
            .header("content-type", "application/json")
            .raw(bytes.to_vec())
    };
    let case = |name, request, status, code, pointer| Case {
        name,
        request,
        status,
        code,
        pointer,
    };
    let oversize = format!(
        "{{\"event\": \"order_created\", \"pad\": \"{}\"}}",
        "x".repeat(262_144)
    );
    vec![
        case(
            "no API key",
            ApiRequest::new("POST", "/v1/events").json(&order_created(1)),
            401,
            "unauthorized",
            None,
        ),
        case(
            "wrong API key",
            ApiRequest::new("POST", "/v1/events")
                .key("not-a-key")
                .json(&order_created(1)),
            401,
            "unauthorized",
            None,
        ),
        case(
            "auth is checked before the content type",
            ApiRequest::new("POST", "/v1/events")
                .key("nope")
                .raw(b"x".to_vec()),
            401,
            "unauthorized",
            None,
        ),
        case(
            "missing content type",
            post().raw(order_created(1).to_string().into_bytes()),
            415,
            "unsupported_media_type",
            None,
        ),
        case(
            "wrong content type",
            post()
                .header("content-type", "text/plain")
                .raw(order_created(1).to_string().into_bytes()),
            415,
            "unsupported_media_type",
            None,
        ),
        case(
            "content type before size",
            post()
                .header("content-type", "text/plain")
                .raw(oversize.clone().into_bytes()),
            415,
            "unsupported_media_type",
            None,
        ),
        case(
            "oversize body",
            raw(oversize.as_bytes()),
            413,
            "payload_too_large",
            None,
        ),
        case(
            "malformed JSON",
            raw(b"{\"event\": "),
            400,
            "malformed_json",
            None,
        ),
        case(
            "non-UTF-8 JSON",
            raw(b"{\"event\": \"order_\xff\xfe\"}"),
            400,
            "malformed_json",
            None,
        ),
        case(
            "deep nesting",
            raw(format!("{{\"payload\": {}{}}}", "[".repeat(5_000), "]".repeat(5_000)).as_bytes()),
            400,
            "malformed_json",
            None,
        ),
        case(
            "a body that is not an object",
            json_post(&json!([1, 2])),
            422,
            "validation_failed",
            Some(""),
        ),
        case(
            "unknown field",
            json_post(&with(|b| b["priority"] = json!("high"))),
            422,
            "validation_failed",
            Some("/priority"),
        ),
        case(
            "unknown recipient field",
            json_post(&with(|b| b["recipient"]["fax"] = json!("123"))),
            422,
            "validation_failed",
            Some("/recipient/fax"),
        ),
        case(
            "missing event",
            json_post(&with(|b| {
                b.as_object_mut().unwrap().remove("event");
            })),
            422,
            "validation_failed",
            Some("/event"),
        ),
        case(
            "missing payload",
            json_post(&with(|b| {
                b.as_object_mut().unwrap().remove("payload");
            })),
            422,
            "validation_failed",
            Some("/payload"),
        ),
        case(
            "mistyped payload",
            json_post(&with(|b| b["payload"] = json!("order 444"))),
            422,
            "validation_failed",
            Some("/payload"),
        ),
        case(
            "mistyped event",
            json_post(&with(|b| b["event"] = json!(42))),
            422,
            "validation_failed",
            Some("/event"),
        ),
        case(
            "empty recipient",
            json_post(&with(|b| b["recipient"] = json!({}))),
            422,
            "validation_failed",
            Some("/recipient"),
        ),
        case(
            "unknown event type",
            json_post(&with(|b| b["event"] = json!("order_shipped"))),
            422,
            "unknown_event_type",
            None,
        ),
        case(
            "payload fails the schema",
            json_post(&with(|b| b["payload"]["order_id"] = json!("444"))),
            422,
            "validation_failed",
            Some("/payload/order_id"),
        ),
        case(
            "bad email",
            json_post(&with(|b| b["recipient"]["email"] = json!("ada@"))),
            422,
            "validation_failed",
            Some("/recipient/email"),
        ),
        case(
            "email with CR/LF",
            json_post(&with(|b| {
                b["recipient"]["email"] = json!("ada@example.com\r\nBcc: eve@example.com");
            })),
            422,
            "validation_failed",
            Some("/recipient/email"),
        ),
        case(
            "bad phone",
            json_post(&with(|b| b["recipient"]["phone"] = json!("555-0100"))),
            422,
            "validation_failed",
            Some("/recipient/phone"),
        ),
        case(
            "Slack host not allow-listed",
            json_post(&slack("https://evil.example.com/services/T0/B0/X")),
            422,
            "validation_failed",
            Some("/recipient/slack_webhook_url"),
        ),
        case(
            "Slack over http",
            json_post(&slack("http://hooks.slack.com/services/T0/B0/X")),
            422,
            "validation_failed",
            Some("/recipient/slack_webhook_url"),
        ),
        case(
            "Slack to a private address",
            json_post(&slack("https://10.0.0.8/hook")),
            422,
            "validation_failed",
            Some("/recipient/slack_webhook_url"),
        ),
        case(
            "Slack to link-local",
            json_post(&slack("https://169.254.169.254/latest/meta-data")),
            422,
            "validation_failed",
            Some("/recipient/slack_webhook_url"),
        ),
        case(
            "Slack to loopback outside the local stack",
            json_post(&slack("http://127.0.0.1:9000/hook")),
            422,
            "validation_failed",
            Some("/recipient/slack_webhook_url"),
        ),
        case(
            "Slack with credentials",
            json_post(&slack("https://user:secret@hooks.slack.com/services/T0/B0/X")),
            422,
            "validation_failed",
            Some("/recipient/slack_webhook_url"),
        ),
        case(
            "unknown channel",
            json_post(&with(|b| b["channels"] = json!(["pigeon"]))),
            422,
            "validation_failed",
            Some("/channels/0"),
        ),
        case(
            "empty channels",
            json_post(&with(|b| b["channels"] = json!([]))),
            422,
            "validation_failed",
            Some("/channels"),
        ),
        case(
            "idempotency key too long",
            json_post(&order_created(1)).header("Idempotency-Key", &"k".repeat(256)),
            422,
            "validation_failed",
            Some("/idempotency_key"),
        ),
        case(
            "header and body keys differ",
            json_post(&with(|b| b["idempotency_key"] = json!("body-key")))
                .header("Idempotency-Key", "header-key"),
            422,
            "validation_failed",
            Some("/idempotency_key"),
        ),
        case(
            "wrong method",
            ApiRequest::new("DELETE", "/v1/events").key(key),
            405,
            "method_not_allowed",
            None,
        ),
        case(
            "unknown route",
            ApiRequest::new("POST", "/v1/eventz")
                .key(key)
                .json(&order_created(1)),
            404,
            "not_found",
            None,
        ),
    ]
}

#[tokio::test]
async fn bad_input_gets_the_right_problem_and_writes_nothing() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let cases = cases(&stack.api_key);
    assert!(cases.len() >= 20);

    let mut wrong = Vec::new();
    for case in &cases {
        let answer = stack.call_ingest(&ingest, &case.request).await;
        let pointers: Vec<&str> = answer.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["pointer"].as_str()).collect())
            .unwrap_or_default();
        let ok = answer.status == case.status
            && answer.problem_code() == case.code
            && answer.body["status"] == case.status
            && answer.header("content-type") == Some("application/problem+json")
            && case.pointer.is_none_or(|pointer| pointers.contains(&pointer))
            && (case.status != 401 || answer.header("www-authenticate") == Some("Bearer"));
        if !ok {
            wrong.push(format!("{}: got {} {}", case.name, answer.status, answer.body));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    assert!(
        stack.activity_items().await.is_empty(),
        "bad input wrote to the activity table"
    );
    for channel in Channel::ALL {
        assert!(
            stack.drain(channel).await.is_empty(),
            "bad input queued a {channel} message"
        );
    }
}

#[tokio::test]
async fn a_refused_request_does_not_take_its_idempotency_key() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let bad = with(|b| b["recipient"]["email"] = json!("nope"));
    let request = |body: &Value| {
        ApiRequest::new("POST", "/v1/events")
            .key(&stack.api_key)
            .header("Idempotency-Key", "k-1")
            .json(body)
    };

    assert_eq!(stack.call_ingest(&ingest, &request(&bad)).await.status, 422);
    assert_eq!(
        stack
            .call_ingest(&ingest, &request(&order_created(1)))
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn every_problem_names_its_schema_violations_one_by_one() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let body = with(|b| b["payload"] = json!({"total": -1}));

    let answer = stack
        .call_ingest(
            &stack.ingest(),
            &ApiRequest::new("POST", "/v1/events")
                .key(&stack.api_key)
                .json(&body),
        )
        .await;

    assert_eq!(answer.status, 422);
    let mut pointers: Vec<_> = answer.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["/payload", "/payload/total"],
        "missing order_id and a negative total"
    );
}

#[tokio::test]
async fn an_oversized_event_in_a_batch_is_413_alone_and_the_rest_are_accepted() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    // 450 KB: within a batch body's 1 MB, past DynamoDB's 400 KB item, so no retry could ever store it.
    let oversized = with(|body| body["payload"]["note"] = json!("x".repeat(450 * 1024)));
    let batch = json!({"events": [order_created(2), oversized, order_created(3)]});

    let (answer, statuses) = stack.post_batch(&batch).await;

    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(statuses, [202, 413, 202]);
    assert!(
        results[1]["problem"]["type"]
            .as_str()
            .unwrap()
            .ends_with("/payload_too_large"),
        "{:#}",
        results[1]
    );
    let events = stack
        .activity_items()
        .await
        .iter()
        .filter(|item| item.get("sk").and_then(|sk| sk.as_s().ok()).map(String::as_str) == Some("EVENT"))
        .count();
    assert_eq!(events, 2, "the oversized event was never written");
    assert_eq!(stack.drain(Channel::Email).await.len(), 2);
}
