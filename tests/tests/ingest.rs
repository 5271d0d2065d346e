//! `POST /v1/events` and `GET /v1/events/{id}` against the emulator: what is written, what is queued,
//! replays, conflicts and recovery.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // test code: a panic is a failed test

use herald::config::QueueUrls;
use herald::domain::Channel;
use herald_integration_tests::{ApiRequest, ORDER_CHANNELS, Stack, order_created};
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn post(stack: &Stack, body: &Value) -> ApiRequest {
    ApiRequest::new("POST", "/v1/events")
        .key(&stack.api_key)
        .json(body)
}

fn ids_of(body: &Value) -> BTreeSet<String> {
    body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_accepted_event_lands_exactly_its_items_and_one_message_per_channel() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();

    let answer = stack
        .call_ingest(
            &ingest,
            &post(&stack, &order_created(444)).header("X-Correlation-Id", "checkout-444"),
        )
        .await;

    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.header("x-correlation-id"), Some("checkout-444"));
    let event_id = answer.body["event_id"].as_str().unwrap().to_owned();
    assert!(event_id.starts_with("evt_"));
    assert_eq!(
        answer.header("location"),
        Some(format!("/v1/events/{event_id}").as_str())
    );
    assert_eq!(answer.body["status"], "accepted");
    let notifications = answer.body["notifications"].as_array().unwrap();
    let channels: BTreeSet<_> = notifications
        .iter()
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, BTreeSet::from(["email", "sms", "slack"]));
    assert!(
        notifications
            .iter()
            .all(|n| n["status"] == "queued" && n["id"].as_str().unwrap().starts_with("ntf_"))
    );

    // No idempotency key: one event item and three notification items, nothing else.
    let items = stack.activity_items().await;
    let mut kinds: Vec<_> = items
        .iter()
        .map(|item| item["sk"].as_s().unwrap().clone())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["EVENT", "NTF", "NTF", "NTF"]);
    let event = items
        .iter()
        .find(|item| item["sk"].as_s().unwrap() == "EVENT")
        .unwrap();
    assert!(!event.contains_key("fanout_pending"), "fan-out is marked done");
    let payload: Value = serde_json::from_str(event["payload"].as_s().unwrap()).unwrap();
    assert_eq!(payload, json!({"order_id": 444, "total": 99.99}));

    for channel in ORDER_CHANNELS {
        let envelopes = stack.drain(channel).await;
        assert_eq!(envelopes.len(), 1, "{channel}");
        let envelope = &envelopes[0];
        assert_eq!((envelope.v, &envelope.tenant), (1, &stack.tenant));
        // The caller's correlation id rides on the message, so every delivery log line carries it.
        assert_eq!(envelope.correlation_id, "checkout-444");
        let listed = notifications
            .iter()
            .find(|n| n["channel"] == channel.as_str())
            .unwrap();
        assert_eq!(envelope.notification_id.as_str(), listed["id"]);
    }

    let read = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/events/{event_id}")).key(&stack.api_key),
        )
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["event_id"], event_id.as_str());
    assert_eq!(read.body["event"], "order_created");
    assert_eq!(read.body["payload"], json!({"order_id": 444, "total": 99.99}));
    assert_eq!(read.body["recipient"]["locale"], "en-GB");
    assert_eq!(ids_of(&read.body), ids_of(&answer.body));
    assert!(
        read.header("x-correlation-id")
            .is_some_and(|id| id != "checkout-444")
    );
    let notification_id = notifications[0]["id"].as_str().unwrap();
    let notification = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/notifications/{notification_id}")).key(&stack.api_key),
        )
        .await;
    assert_eq!(
        notification.body["correlation_id"], "checkout-444",
        "{notification:?}"
    );
}

#[tokio::test]
async fn a_replay_answers_200_with_the_first_body_and_queues_nothing_more() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let request = post(&stack, &order_created(1)).header("Idempotency-Key", "order-1");

    let first = stack.call_ingest(&ingest, &request).await;
    let replay = stack.call_ingest(&ingest, &request).await;

    assert_eq!(first.status, 202);
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("location"), first.header("location"));
    assert_eq!(replay.body, first.body);
    let items = stack.activity_items().await;
    assert_eq!(
        items
            .iter()
            .filter(|item| item["sk"].as_s().unwrap() == "EVENT")
            .count(),
        1
    );
    assert_eq!(
        items
            .iter()
            .filter(|item| item["sk"].as_s().unwrap() == "IDEM")
            .count(),
        1
    );
    for channel in ORDER_CHANNELS {
        assert_eq!(stack.drain(channel).await.len(), 1, "{channel}");
    }
}

#[tokio::test]
async fn the_body_key_and_the_header_key_are_the_same_key() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let mut body = order_created(2);
    body["idempotency_key"] = json!("order-2");

    let first = stack.call_ingest(&ingest, &post(&stack, &body)).await;
    let by_header = stack
        .call_ingest(
            &ingest,
            &post(&stack, &order_created_like(&body)).header("Idempotency-Key", "order-2"),
        )
        .await;

    assert_eq!(first.status, 202);
    assert_eq!(by_header.status, 200, "{by_header:?}");
    assert_eq!(by_header.body["event_id"], first.body["event_id"]);
}

/// The same request without its body key.
fn order_created_like(body: &Value) -> Value {
    let mut copy = body.clone();
    copy.as_object_mut().unwrap().remove("idempotency_key");
    copy
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_409() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let first = stack
        .call_ingest(
            &ingest,
            &post(&stack, &order_created(3)).header("Idempotency-Key", "k"),
        )
        .await;
    let mut changed = order_created(3);
    changed["payload"]["total"] = json!(5);

    let conflict = stack
        .call_ingest(&ingest, &post(&stack, &changed).header("Idempotency-Key", "k"))
        .await;

    assert_eq!(first.status, 202);
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.problem_code(), "idempotency_key_reused");
    assert_eq!(conflict.header("content-type"), Some("application/problem+json"));
    let events = stack
        .activity_items()
        .await
        .into_iter()
        .filter(|item| item["sk"].as_s().unwrap() == "EVENT")
        .count();
    assert_eq!(events, 1);
}

#[tokio::test]
async fn sixteen_identical_concurrent_requests_make_one_event_and_one_message_per_channel() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let request = post(&stack, &order_created(16)).header("Idempotency-Key", "burst");

    let answers = futures::future::join_all((0..16).map(|_| stack.call_ingest(&ingest, &request))).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 15, "{statuses:?}");
    let event_ids: BTreeSet<_> = answers
        .iter()
        .map(|a| a.body["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(event_ids.len(), 1);
    assert!(
        answers
            .iter()
            .all(|a| ids_of(&a.body) == ids_of(&answers[0].body))
    );
    let events = stack
        .activity_items()
        .await
        .into_iter()
        .filter(|item| item["sk"].as_s().unwrap() == "EVENT")
        .count();
    assert_eq!(events, 1);
    for channel in ORDER_CHANNELS {
        assert_eq!(stack.drain(channel).await.len(), 1, "{channel}");
    }
}

#[tokio::test]
async fn when_sqs_fails_after_the_write_the_answer_is_202_and_a_replay_finishes_with_the_same_ids() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let missing = QueueUrls::new(Channel::ALL.map(|c| (c, format!("{endpoint}/123456789012/missing-{c}"))));
    let broken = stack.ingest_with_queues(missing);
    let request = post(&stack, &order_created(503)).header("Idempotency-Key", "flaky");

    let accepted = stack.call_ingest(&broken, &request).await;

    // Once the event is recorded it is Herald's to deliver: the client is not asked to retry.
    assert_eq!(accepted.status, 202, "{accepted:?}");
    for channel in Channel::ALL {
        assert!(stack.drain(channel).await.is_empty());
    }
    let pending = stack
        .activity_items()
        .await
        .into_iter()
        .find(|item| item["sk"].as_s().unwrap() == "EVENT")
        .unwrap();
    assert!(
        pending.contains_key("fanout_pending"),
        "the event waits for its fan-out"
    );

    // A client that retries anyway finishes the fan-out at once (the failed request released its lease);
    // one that does not is served by the sweeper (tests/tests/outbox.rs).
    let retried = stack.call_ingest(&stack.ingest(), &request).await;

    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(
        retried.body, accepted.body,
        "the replay answers what the first request answered"
    );
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    let ids = ids_of(&retried.body);
    for channel in ORDER_CHANNELS {
        let envelopes = stack.drain(channel).await;
        assert_eq!(envelopes.len(), 1, "{channel}");
        assert!(ids.contains(envelopes[0].notification_id.as_str()));
        // The accepting request's correlation id, which the notification keeps, not the replay's.
        assert_eq!(
            Some(envelopes[0].correlation_id.as_str()),
            accepted.header("x-correlation-id")
        );
    }
    let done = stack
        .activity_items()
        .await
        .into_iter()
        .find(|item| item["sk"].as_s().unwrap() == "EVENT")
        .unwrap();
    assert!(!done.contains_key("fanout_pending"));
    let again = stack.call_ingest(&stack.ingest(), &request).await;
    assert_eq!(again.status, 200);
    for channel in Channel::ALL {
        assert!(
            stack.drain(channel).await.is_empty(),
            "a finished fan-out is not repeated"
        );
    }
}

#[tokio::test]
async fn rules_conditions_and_channels_decide_the_notifications() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let api = stack.api();
    let big_orders = ApiRequest::new("PUT", "/v1/rules/order-email")
        .key(&stack.api_key)
        .json(
            &json!({"event": "order_created", "channel": "email", "template": "order-email",
                       "condition": {"payload": {"total": [{"numeric": [">", 100]}]}}}),
        );
    assert_eq!(stack.call_api(&api, &big_orders).await.status, 200);
    let ingest = stack.ingest();

    let mut small = order_created(7);
    small["recipient"].as_object_mut().unwrap().remove("phone");
    small["channels"] = json!(["email", "sms"]);
    let answer = stack.call_ingest(&ingest, &post(&stack, &small)).await;

    assert_eq!(answer.status, 202, "{answer:?}");
    // email: condition not met → no notification; slack: left out by `channels`; sms: no phone → skipped.
    assert_eq!(
        answer.body["notifications"],
        json!([{"id": answer.body["notifications"][0]["id"], "channel": "sms", "status": "skipped", "reason": "no_address"}])
    );
    assert!(stack.drain(Channel::Sms).await.is_empty());
    let event_id = answer.body["event_id"].as_str().unwrap();
    let read = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/events/{event_id}")).key(&stack.api_key),
        )
        .await;
    assert_eq!(read.body["notifications"][0]["status"], "skipped");

    let mut big = order_created(8);
    big["payload"]["total"] = json!(250);
    let answer = stack.call_ingest(&ingest, &post(&stack, &big)).await;
    assert_eq!(answer.body["notifications"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_batch_answers_each_event_as_a_single_post_would() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let mut keyed = order_created(10);
    keyed["idempotency_key"] = json!("batch-1");
    let first = stack.call_ingest(&ingest, &post(&stack, &keyed)).await;
    assert_eq!(first.status, 202);

    let batch = json!({"events": [order_created(11), keyed, {"event": "order_created"}, {"event": "nope", "recipient": {"email": "a@b.co"}, "payload": {}}]});
    let (answer, statuses) = stack.post_batch(&batch).await;

    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(statuses, [202, 200, 422, 422]);
    assert_eq!(results[1]["body"], first.body);
    assert!(
        results[2]["problem"]["type"]
            .as_str()
            .unwrap()
            .ends_with("/validation_failed")
    );
    assert!(
        results[3]["problem"]["type"]
            .as_str()
            .unwrap()
            .ends_with("/unknown_event_type")
    );
    assert_eq!(
        stack.drain(Channel::Email).await.len(),
        2,
        "the first single post and the new batch event"
    );
}

#[tokio::test]
async fn another_tenants_event_is_404() {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let ingest = stack.ingest();
    let accepted = stack.call_ingest(&ingest, &post(&stack, &order_created(9))).await;
    let event_id = accepted.body["event_id"].as_str().unwrap();
    let other = herald::domain::TenantId::new(herald_integration_tests::unique("tenant-b"));
    stack.add_tenant(&other, "key-of-b").await;

    let theirs = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get(&format!("/v1/events/{event_id}")).key("key-of-b"),
        )
        .await;
    let unknown = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get("/v1/events/evt_0190000000007000800000000000000a").key(&stack.api_key),
        )
        .await;
    let malformed = stack
        .call_ingest(
            &ingest,
            &ApiRequest::get("/v1/events/not-an-id").key(&stack.api_key),
        )
        .await;

    for answer in [theirs, unknown, malformed] {
        assert_eq!(answer.status, 404, "{answer:?}");
        assert_eq!(answer.problem_code(), "not_found");
    }
}
