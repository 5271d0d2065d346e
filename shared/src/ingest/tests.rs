//! Ingest over in-memory ports with failpoints, called as Lambda calls it (an API Gateway v2 event turned
//! into a request by lambda_http): a write whose answer is lost, SQS failing mid fan-out, a retry racing
//! the first request, a reused key, a backend down. Each ends with an audit of the whole event: what is
//! on each queue per notification, what is stored, the idempotency record, against docs/api.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::Ingest;
use crate::adapters::memory::api_keys::MemoryApiKeyStore;
use crate::adapters::memory::config::MemoryConfigStore;
use crate::adapters::memory::{Fault, MemoryActivityStore, MemoryQueue};
use crate::config::{Env, HttpSettings};
use crate::domain::api_key::{KeyScope, NewApiKey};
use crate::domain::event_type::EventTypeSpec;
use crate::domain::notification::NotificationStatus;
use crate::domain::rule::RuleSpec;
use crate::domain::template::TemplateContent;
use crate::domain::{Channel, EventId, NotificationId, TenantId, Timestamp};
use crate::outbox::{FANOUT_LEASE, Finish, SweepReport};
use crate::ports::{ActivityStore, ApiKeyStore, EventTypeStore, RuleStore, TemplateStore};
use crate::telemetry::record::testing::record as record_metrics;
use lambda_http::Request;
use lambda_http::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

mod backend_faults;
mod notification_log;
mod push;
mod rate_limits;
mod suppressions;
mod users;
mod webhooks;

type MemoryIngest = Ingest<MemoryApiKeyStore, MemoryConfigStore, MemoryActivityStore, MemoryQueue>;

const API_KEY: &str = "acme-key";

fn acme() -> TenantId {
    TenantId::new("acme")
}

/// The contract's example, in memory: tenant `acme` with an API key, event type `order_created` with a
/// schema, and one template and rule per channel (`order-email`, `order-sms`, `order-slack`, and a webhook
/// rule without endpoints, which makes no notification). Push rules need a registered device: `tests/push.rs`.
async fn ingest() -> MemoryIngest {
    ingest_with_event_type(json!({})).await
}

/// As [`ingest`], with `order_created`'s body extended by `extra` (its schema stays).
async fn ingest_with_event_type(extra: Value) -> MemoryIngest {
    let now = Timestamp::now();
    let keys = MemoryApiKeyStore::default();
    let key = NewApiKey::new(&acme(), API_KEY, None, KeyScope::Full, now);
    keys.create_api_key(&key).await.unwrap();
    let config = MemoryConfigStore::default();
    let schema = json!({"type": "object", "required": ["order_id"],
                        "properties": {"order_id": {"type": "integer"}}});
    let mut body = json!({ "schema": schema });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let spec = EventTypeSpec::from_json(&body).unwrap();
    config
        .put_event_type(&acme(), "order_created", &spec, now)
        .await
        .unwrap();
    for channel in Channel::ALL
        .into_iter()
        .filter(|channel| *channel != Channel::Push)
    {
        let name = format!("order-{channel}");
        let content = match channel {
            Channel::Email => json!({"channel": "email", "locale": "en",
                                     "subject": "Order {{ payload.order_id }}", "text": "Thanks"}),
            Channel::Webhook => json!({"channel": channel, "text": "{\"order\": {{ payload.order_id }}}"}),
            _ => json!({"channel": channel, "text": "Order {{ payload.order_id }}"}),
        };
        let content = TemplateContent::from_json(&content).unwrap();
        config.put_template(&acme(), &name, &content, now).await.unwrap();
        let rule = json!({"event": "order_created", "channel": channel, "template": name});
        let rule = RuleSpec::from_json(&rule).unwrap();
        config.put_rule(&acme(), &name, &rule, now).await.unwrap();
    }
    // No cache, so a failpoint set on the config store between two requests is met by the second.
    let env = Env::from_fn(|name| (name == "HERALD_CONFIG_CACHE_SECONDS").then(|| "0".to_owned()));
    Ingest::new(
        keys,
        config,
        MemoryActivityStore::default(),
        MemoryQueue::default(),
        HttpSettings::from_env(&env).unwrap(),
    )
}

/// An order with an address for every channel, so each rule makes a queued notification.
fn order(order_id: u64) -> Value {
    json!({
        "event": "order_created",
        "recipient": {"email": "ada@example.com", "phone": "+15555550100",
                      "slack_webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX"},
        "payload": {"order_id": order_id, "total": 99.99}
    })
}

/// `POST /v1/events` as API Gateway (HTTP API, payload v2) hands it to the function, converted by
/// lambda_http exactly as in production (as `tests/src/lib.rs` builds it against the emulator).
fn post(body: &Value, idempotency_key: Option<&str>) -> Request {
    let mut headers = json!({"authorization": format!("Bearer {API_KEY}"),
                             "content-type": "application/json"});
    if let Some(key) = idempotency_key {
        headers["idempotency-key"] = json!(key);
    }
    gateway_request("POST", "/v1/events", &headers, Some(body))
}

/// `GET path?query` with the tenant's key.
fn get(path_and_query: &str) -> Request {
    let headers = json!({"authorization": format!("Bearer {API_KEY}")});
    gateway_request("GET", path_and_query, &headers, None)
}

fn gateway_request(method: &str, path_and_query: &str, headers: &Value, body: Option<&Value>) -> Request {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "tests"},
            "requestId": "req", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// What the handler answered, its body parsed.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn problem_code(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
    }

    fn event_id(&self) -> EventId {
        EventId::parse(self.body["event_id"].as_str().unwrap()).unwrap()
    }

    /// The answered notifications, by channel.
    fn notifications(&self) -> BTreeMap<Channel, NotificationId> {
        self.body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let channel = n["channel"].as_str().unwrap().parse().unwrap();
                (channel, NotificationId::parse(n["id"].as_str().unwrap()).unwrap())
            })
            .collect()
    }
}

async fn call(ingest: &MemoryIngest, request: Request) -> Answer {
    let response = ingest
        .handle(request)
        .await
        .expect("the handler answers every outcome");
    let bytes: &[u8] = response.body().as_ref();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap()
        },
    }
}

/// Envelopes of each notification of `accepted` on its channel's queue, by channel.
fn copies(ingest: &MemoryIngest, accepted: &Answer) -> BTreeMap<Channel, usize> {
    accepted
        .notifications()
        .into_iter()
        .map(|(channel, id)| {
            let queue = ingest.outbox.queue().enqueued(channel);
            (channel, queue.iter().filter(|e| e.notification_id == id).count())
        })
        .collect()
}

/// The channels whose rules make one notification of an order (`ingest` has a webhook rule too, which
/// makes one per endpoint, and the fixture registers none).
const RULE_CHANNELS: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Slack];

fn each(n: usize) -> BTreeMap<Channel, usize> {
    RULE_CHANNELS.into_iter().map(|channel| (channel, n)).collect()
}

/// A moment after every lease taken now has run out.
fn after_the_lease() -> Timestamp {
    Timestamp::from_millis(
        Timestamp::now().millis() + 1_000 + i64::try_from(FANOUT_LEASE.as_millis()).unwrap(),
    )
}

async fn sweep(ingest: &MemoryIngest, now: Timestamp) -> SweepReport {
    ingest
        .outbox
        .sweep(now, || Duration::from_secs(60))
        .await
        .unwrap()
}

/// Nothing was recorded or queued for tenant `acme`.
fn nothing_recorded(ingest: &MemoryIngest, context: &str) {
    let activity = ingest.activity();
    assert_eq!(activity.event_ids(&acme()), Vec::new(), "events, {context}");
    assert_eq!(
        activity.notification_count(&acme()),
        0,
        "notifications, {context}"
    );
    assert_eq!(
        activity.idempotency_keys(&acme()),
        Vec::<String>::new(),
        "keys, {context}"
    );
    for channel in Channel::ALL {
        assert!(
            ingest.outbox.queue().enqueued(channel).is_empty(),
            "{channel} queue, {context}"
        );
    }
}

/// The end state of a test whose one event was `accepted` (its 202 answer), keyed by `key`: exactly
/// `expected` envelopes per notification on its own channel's queue and nothing else on any queue, the
/// event and its three notifications stored and fanned out (still `queued`: nothing delivers here), and
/// the idempotency record, if keyed, holding the event's id and the 202 body.
async fn audit(
    ingest: &MemoryIngest,
    accepted: &Answer,
    key: Option<&str>,
    expected: &BTreeMap<Channel, usize>,
) {
    let context = format!("key {key:?}, {accepted:?}");
    assert_eq!(accepted.status, 202, "{context}");
    let event_id = accepted.event_id();
    let answered = accepted.notifications();
    assert_eq!(answered.len(), 3, "one notification per rule: {context}");
    assert_eq!(
        &copies(ingest, accepted),
        expected,
        "envelopes per notification: {context}"
    );
    for channel in Channel::ALL {
        for envelope in ingest.outbox.queue().enqueued(channel) {
            assert_eq!(
                Some(&envelope.notification_id),
                answered.get(&channel),
                "{channel}: {context}"
            );
            assert_eq!(envelope.channel, Some(channel));
            // The request's correlation id, as answered, rides on every message it causes.
            assert_eq!(
                (&envelope.tenant, Some(envelope.correlation_id.as_str())),
                (&acme(), accepted.header("x-correlation-id"))
            );
        }
    }

    let activity = ingest.activity();
    assert_eq!(
        activity.event_ids(&acme()),
        vec![event_id.clone()],
        "one event: {context}"
    );
    let (event, lease) = activity.stored_event(&acme(), &event_id).unwrap();
    assert!(
        !event.fanout_pending && lease.is_none(),
        "fanned out, lease gone: {context}"
    );
    assert_eq!(event.idempotency_key.as_deref(), key);
    let ids: Vec<NotificationId> = answered.values().cloned().collect();
    let mut stored_ids = event.notification_ids.clone();
    stored_ids.sort();
    let mut answered_ids = ids.clone();
    answered_ids.sort();
    assert_eq!(stored_ids, answered_ids, "{context}");
    let stored = activity.notifications(&acme(), &ids).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(
        activity.notification_count(&acme()),
        3,
        "no stray notifications: {context}"
    );
    for notification in stored {
        assert_eq!(notification.status, NotificationStatus::Queued, "{context}");
        assert_eq!(notification.event_id, event_id);
        assert_eq!(answered.get(&notification.channel), Some(&notification.id));
    }

    match key {
        Some(key) => {
            assert_eq!(activity.idempotency_keys(&acme()), vec![key.to_owned()]);
            let record = activity.idempotency_record(&acme(), key).unwrap();
            assert_eq!(record.event_id, event_id, "{context}");
            assert_eq!(
                record.response, accepted.body,
                "a replay answers the first body: {context}"
            );
        }
        None => assert!(activity.idempotency_keys(&acme()).is_empty(), "{context}"),
    }
}

/// A replay as docs/api.md has it: 200, the first answer's body and `Location`, `Idempotent-Replayed`.
fn assert_replay_of(replay: &Answer, first: &Answer) {
    assert_eq!(replay.status, 200, "{replay:?}");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.header("location"), first.header("location"));
}

#[tokio::test]
async fn an_accepted_event_is_answered_202_and_each_notification_queued_once() {
    for key in [Some("order-1"), None] {
        let ingest = ingest().await;

        let answer = call(&ingest, post(&order(1), key)).await;

        assert_eq!(answer.header("idempotent-replayed"), None);
        let location = format!("/v1/events/{}", answer.event_id());
        assert_eq!(answer.header("location"), Some(location.as_str()));
        audit(&ingest, &answer, key, &each(1)).await;
    }
}

#[tokio::test]
async fn the_event_types_max_age_is_stamped_on_each_notification() {
    for (extra, max_age) in [(json!({"max_age_seconds": 300}), Some(300)), (json!({}), None)] {
        let ingest = ingest_with_event_type(extra).await;

        let answer = call(&ingest, post(&order(1), None)).await;

        audit(&ingest, &answer, None, &each(1)).await;
        let ids: Vec<NotificationId> = answer.notifications().values().cloned().collect();
        for notification in ingest.activity().notifications(&acme(), &ids).await.unwrap() {
            let expected = max_age.map(|seconds| notification.created_at.plus_seconds(seconds));
            assert_eq!(notification.deliver_by, expected, "{notification:?}");
        }
    }
}

#[tokio::test]
async fn a_write_that_commits_but_answers_too_late_is_its_own_so_it_answers_202_and_fans_out_once() {
    for key in [Some("late-commit"), None] {
        let ingest = ingest().await;
        // The SDK retries the timed-out attempt, whose conditions then meet the request's own items.
        ingest
            .activity()
            .failpoints
            .set("record_acceptance", Fault::TimeOutAfterCommit, 1);

        let answer = call(&ingest, post(&order(2), key)).await;

        assert_eq!(answer.status, 202, "not a replay of itself ({key:?}): {answer:?}");
        assert_eq!(answer.header("idempotent-replayed"), None);
        audit(&ingest, &answer, key, &each(1)).await;
    }
}

/// SQS refuses one channel's batch, for each channel in turn: the answer is still 202, the event stays
/// pending with its lease released; the same request again is the replay and finishes the fan-out at once.
#[tokio::test]
async fn when_sqs_fails_for_one_channel_the_answer_is_202_and_a_keyed_retry_finishes_the_fan_out() {
    for failing in RULE_CHANNELS {
        let ingest = ingest().await;
        ingest
            .outbox
            .queue()
            .failpoints
            .set(&format!("enqueue:{failing}"), Fault::Fail, 1);

        let first = call(&ingest, post(&order(3), Some("flaky"))).await;

        assert_eq!(
            first.status, 202,
            "accepted is accepted ({failing} failed): {first:?}"
        );
        let (event, lease) = ingest
            .activity()
            .stored_event(&acme(), &first.event_id())
            .unwrap();
        assert!(event.fanout_pending, "left for a replay or the sweeper");
        assert_eq!(
            lease, None,
            "released, so the client's retry need not wait it out"
        );
        let before = copies(&ingest, &first);
        assert_eq!(before[&failing], 0, "{before:?}");

        let retry = call(&ingest, post(&order(3), Some("flaky"))).await;

        assert_replay_of(&retry, &first);
        // The channels queued before the failure are queued again: the delivery loop's claim makes the
        // second copy a no-op, so a fan-out may repeat but never skip.
        let after = before.iter().map(|(&channel, &n)| (channel, n + 1)).collect();
        audit(&ingest, &first, Some("flaky"), &after).await;
    }
}

#[tokio::test]
async fn when_sqs_fails_for_one_channel_without_a_key_the_sweeper_finishes_the_fan_out_after_the_lease() {
    for failing in RULE_CHANNELS {
        let ingest = ingest().await;
        ingest
            .outbox
            .queue()
            .failpoints
            .set(&format!("enqueue:{failing}"), Fault::Fail, 1);

        let first = call(&ingest, post(&order(4), None)).await;

        assert_eq!(first.status, 202, "{first:?}");
        let (event, lease) = ingest
            .activity()
            .stored_event(&acme(), &first.event_id())
            .unwrap();
        assert!(event.fanout_pending && lease.is_none(), "pending, lease released");
        let before = copies(&ingest, &first);
        assert_eq!(before[&failing], 0, "{before:?}");
        assert_eq!(
            sweep(&ingest, Timestamp::now()).await,
            SweepReport::default(),
            "an event younger than a lease is not the sweeper's yet"
        );

        let report = sweep(&ingest, after_the_lease()).await;

        assert_eq!((report.found, report.recovered, report.left), (1, 1, 0));
        let after = before.iter().map(|(&channel, &n)| (channel, n + 1)).collect();
        audit(&ingest, &first, None, &after).await;
        assert_eq!(
            sweep(&ingest, after_the_lease()).await,
            SweepReport::default(),
            "left the index"
        );
    }
}

#[tokio::test]
async fn a_retry_while_the_first_request_holds_the_lease_is_the_replay_and_does_not_fan_out_again() {
    let ingest = ingest().await;
    // The first request's email batch is slow: it holds the lease, Slack and SMS queued, email not yet.
    ingest
        .outbox
        .queue()
        .failpoints
        .set("enqueue:email", Fault::Slow(Duration::from_millis(200)), 1);
    let mut first = std::pin::pin!(call(&ingest, post(&order(5), Some("twice"))));
    assert!(futures::poll!(first.as_mut()).is_pending(), "in its fan-out");
    let activity = ingest.activity();
    let event_id = activity.event_ids(&acme()).pop().unwrap();
    let (event, lease) = activity.stored_event(&acme(), &event_id).unwrap();
    assert!(event.fanout_pending && lease.is_some_and(|until| until > Timestamp::now()));

    let retry = call(&ingest, post(&order(5), Some("twice"))).await;

    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.event_id(), event_id, "the ids the first request fixed");
    let queued: usize = Channel::ALL
        .iter()
        .map(|&channel| ingest.outbox.queue().enqueued(channel).len())
        .sum();
    assert_eq!(
        queued, 2,
        "the replay queued nothing: the first request still holds the fan-out"
    );
    let first = first.await;
    assert_replay_of(&retry, &first);
    audit(&ingest, &first, Some("twice"), &each(1)).await;
}

#[tokio::test]
async fn the_same_key_with_another_request_is_409_and_keys_that_disagree_are_422() {
    let metrics = record_metrics();
    let ingest = ingest().await;
    let first = call(&ingest, post(&order(6), Some("k"))).await;
    let mut changed = order(6);
    changed["payload"]["total"] = json!(5);

    let reused = call(&ingest, post(&changed, Some("k"))).await;
    let mut keyed_in_body = order(7);
    keyed_in_body["idempotency_key"] = json!("other");
    let disagreeing = call(&ingest, post(&keyed_in_body, Some("k"))).await;

    assert_eq!(
        (reused.status, reused.problem_code()),
        (409, "idempotency_key_reused"),
        "{reused:?}"
    );
    assert_eq!(reused.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        (disagreeing.status, disagreeing.problem_code()),
        (422, "validation_failed"),
        "{disagreeing:?}"
    );
    // The first event, its record and its messages are untouched; neither refusal recorded anything.
    audit(&ingest, &first, Some("k"), &each(1)).await;
    let replay = call(&ingest, post(&order(6), Some("k"))).await;
    assert_eq!(replay.status, 200);

    for (outcome, events) in [("accepted", 1), ("replayed", 1), ("refused", 2)] {
        assert_eq!(
            metrics.total("Events", &[("Outcome", outcome)]),
            events,
            "{outcome}"
        );
    }
    for reason in ["idempotency_key_reused", "validation_failed"] {
        assert_eq!(
            metrics.total("EventsRefused", &[("Reason", reason)]),
            1,
            "{reason}"
        );
    }
}
