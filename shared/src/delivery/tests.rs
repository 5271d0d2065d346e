//! The delivery loop over in-memory ports with failpoints: every interleaving of duplicates, crashes,
//! lost answers and deadlines ends with each notification sent at most as often as docs/reliability.md
//! allows, and its status saying why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Delivery, RECORD_RESERVE, SETTLE_ATTEMPTS};
use crate::adapters::memory::sender::{RecordingQueue, Script, ScriptedSender};
use crate::adapters::memory::templates::MemoryTemplateStore;
use crate::adapters::memory::{Fault, MemoryActivityStore};
use crate::config::DeliverySettings;
use crate::delivery::breaker::BreakerSettings;
use crate::domain::delivery::{AMBIGUOUS_RETRY_DELAY, AttemptOutcome, FailureKind};
use crate::domain::notification::{Envelope, Notification, NotificationStatus, reason};
use crate::domain::retry::RetrySchedule;
use crate::domain::template::TemplateContent;
use crate::domain::{Channel, Timestamp};
use crate::ports::{ActivityStore, Claim, DeliveryLedger};
use crate::test_fixtures::acceptance;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) type MemoryDelivery =
    Delivery<ScriptedSender, MemoryActivityStore, MemoryTemplateStore, RecordingQueue>;

pub(super) const LEASE: Duration = Duration::from_secs(60);
/// Longer than a settle with its retries (300 ms), short enough for a test to wait out.
const SHORT_LEASE: Duration = Duration::from_millis(800);

pub(super) fn settings(lease: Duration) -> DeliverySettings {
    DeliverySettings {
        queue_url: "memory://email".into(),
        dead_letter_queue_url: "memory://email-dlq".into(),
        schedule: RetrySchedule::default(),
        default_max_age: Duration::from_secs(86_400),
        concurrency: 10,
        lease,
        retention: Duration::from_secs(86_400),
        provider_timeout: Duration::from_secs(10),
        breaker: BreakerSettings {
            threshold: 5,
            cooldown: Duration::from_secs(30),
            cache_for: Duration::ZERO,
            probe_lease: Duration::from_secs(15),
        },
    }
}

pub(super) fn delivery(settings: DeliverySettings) -> MemoryDelivery {
    let templates = MemoryTemplateStore::default();
    let content = TemplateContent::from_json(&json!({
        "channel": "email", "locale": "en",
        "subject": "Welcome, {{ payload.plan }}", "text": "event {{ event.id }}"
    }))
    .unwrap();
    // The fixture's notifications pin version 3.
    templates.insert(&crate::domain::TenantId::new("acme"), "welcome", 3, content);
    Delivery::new(
        ScriptedSender::new(Channel::Email),
        MemoryActivityStore::default(),
        templates,
        RecordingQueue::default(),
        settings,
    )
}

/// Accepts one event per notification on `channel`, each with its own address so the provider's
/// sends can be counted per notification.
pub(super) async fn accept(delivery: &MemoryDelivery, count: usize, channel: Channel) -> Vec<Notification> {
    let mut accepted = Vec::new();
    for _ in 0..count {
        let mut acceptance = acceptance("acme", None, &[channel]);
        for notification in &mut acceptance.notifications {
            notification.to = Some(format!("{}@example.com", notification.id));
        }
        delivery
            .ledger
            .record_acceptance(&acceptance, LEASE)
            .await
            .unwrap();
        accepted.extend(acceptance.notifications);
    }
    accepted
}

pub(super) fn body(notification: &Notification) -> String {
    let envelope = Envelope::new(
        notification.tenant.clone(),
        notification.id.clone(),
        notification.event_id.to_string(),
    )
    .on(notification.channel);
    serde_json::to_string(&envelope).unwrap()
}

/// One SQS record as Lambda hands it over; its receipt handle is `rh-{id}`.
pub(super) fn record(id: &str, body: &str, receive_count: u32) -> Value {
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
        "attributes": {"ApproximateReceiveCount": receive_count.to_string()}, "messageAttributes": {}
    })
}

fn event(records: &[Value], context: Context) -> LambdaEvent<SqsEvent> {
    LambdaEvent::new(
        serde_json::from_value(json!({ "Records": records })).unwrap(),
        context,
    )
}

/// Hands `records` to the loop as one batch; the ids it reported failed.
pub(super) async fn handle(delivery: &MemoryDelivery, records: &[Value]) -> Vec<String> {
    failed(delivery, records, Context::default()).await
}

async fn failed(delivery: &MemoryDelivery, records: &[Value], context: Context) -> Vec<String> {
    let response = delivery.handle(event(records, context)).await.unwrap();
    response
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
}

/// What one notification must look like at the end of a test.
#[derive(Debug, Clone)]
pub(super) struct Expect {
    pub(super) status: NotificationStatus,
    pub(super) reason: Option<&'static str>,
    /// The recorded attempts' outcomes, oldest first.
    pub(super) outcomes: Vec<AttemptOutcome>,
    /// What the provider took for this notification's address.
    pub(super) sends: usize,
    /// Sends no attempt record accounts for: only a record lost after the provider took the message.
    pub(super) unrecorded_sends: usize,
}

impl Expect {
    pub(super) fn sent_once() -> Self {
        Self {
            status: NotificationStatus::Sent,
            reason: None,
            outcomes: vec![AttemptOutcome::Sent],
            sends: 1,
            unrecorded_sends: 0,
        }
    }

    fn untouched() -> Self {
        Self {
            status: NotificationStatus::Queued,
            reason: None,
            outcomes: vec![],
            sends: 0,
            unrecorded_sends: 0,
        }
    }
}

/// Checks every notification of a test against what it should be, and that each provider send is
/// explained: by a recorded `sent` or `ambiguous` attempt, or by an expected lost record. Nothing else
/// may have reached the provider.
pub(super) async fn audit(delivery: &MemoryDelivery, expected: &[(&Notification, Expect)]) {
    let mut explained = 0;
    for (accepted, expect) in expected {
        let to = accepted.to.as_deref().unwrap();
        let (stored, attempts) = delivery
            .ledger
            .notification_with_attempts(&accepted.tenant, &accepted.id)
            .await
            .unwrap()
            .expect("the notification is stored");
        let outcomes: Vec<AttemptOutcome> = attempts.iter().map(|attempt| attempt.outcome).collect();
        let sends = delivery.sender.delivered_to(to);
        let context = format!("{}: {stored:?}, attempts {attempts:?}", accepted.id);
        assert_eq!(stored.status, expect.status, "status of {context}");
        assert_eq!(stored.reason.as_deref(), expect.reason, "reason of {context}");
        assert_eq!(outcomes, expect.outcomes, "attempts of {context}");
        assert_eq!(sends, expect.sends, "sends of {context}");
        let recorded = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, AttemptOutcome::Sent | AttemptOutcome::Ambiguous))
            .count();
        assert_eq!(
            sends,
            recorded + expect.unrecorded_sends,
            "every send of {context} is explained"
        );
        match stored.status {
            NotificationStatus::Sent => {
                assert!(
                    stored.sent_at.is_some() && stored.provider_message_id.is_some(),
                    "{context}"
                );
                assert!(stored.next_attempt_at.is_none(), "{context}");
            }
            NotificationStatus::Retrying => assert!(stored.next_attempt_at.is_some(), "{context}"),
            _ => {}
        }
        for call in delivery.sender.calls().iter().filter(|call| call.to == to) {
            assert_eq!(call.message.subject.as_deref(), Some("Welcome, pro"));
            assert_eq!(
                call.message.text.as_deref(),
                Some(format!("event {}", accepted.event_id).as_str()),
                "rendered from its own event"
            );
        }
        explained += sends;
    }
    let all: usize = delivery
        .sender
        .calls()
        .iter()
        .filter(|call| call.delivered)
        .count();
    assert_eq!(all, explained, "the provider received nothing for anyone else");
}

pub(super) async fn stored_notification(
    delivery: &MemoryDelivery,
    notification: &Notification,
) -> Notification {
    let (stored, _) = delivery
        .ledger
        .notification_with_attempts(&notification.tenant, &notification.id)
        .await
        .unwrap()
        .expect("the notification is stored");
    stored
}

async fn claim(delivery: &MemoryDelivery, notification: &Notification) -> Claim {
    delivery
        .ledger
        .claim(
            &notification.tenant,
            &notification.id,
            Timestamp::now(),
            delivery.settings.lease,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_message_delivered_twice_in_sequence_sends_once() {
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);

    assert!(handle(&delivery, &[record("m1", &body, 1)]).await.is_empty());
    assert!(
        handle(&delivery, &[record("m1", &body, 2)]).await.is_empty(),
        "the copy finds it sent and is acknowledged"
    );

    assert!(delivery.queue.delays().is_empty(), "nothing waited");
    audit(&delivery, &[(&notifications[0], Expect::sent_once())]).await;
}

#[tokio::test]
async fn the_same_message_delivered_twice_at_once_sends_once_and_the_other_checks_back_after_the_lease() {
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);
    // The first delivery is still sending when the second claims.
    delivery.sender.slow_down(Duration::from_millis(100));

    let (copy_a, copy_b) = ([record("copy-a", &body, 1)], [record("copy-b", &body, 1)]);
    let (first, second) = tokio::join!(handle(&delivery, &copy_a), handle(&delivery, &copy_b));

    assert!(first.is_empty(), "the claim's winner sent it: {first:?}");
    assert_eq!(second, vec!["copy-b"], "the loser is delivered again later");
    let waits = delivery.queue.delays_of("rh-copy-b");
    assert_eq!(waits.len(), 1);
    assert!(
        waits[0] > LEASE.saturating_sub(Duration::from_secs(5)) && waits[0] <= LEASE,
        "it waits out the winner's lease: {waits:?}"
    );
    assert!(handle(&delivery, &[record("copy-b", &body, 2)]).await.is_empty());
    audit(&delivery, &[(&notifications[0], Expect::sent_once())]).await;
}

#[tokio::test]
async fn a_crash_between_claim_and_send_is_sent_once_after_the_lease() {
    let delivery = delivery(settings(SHORT_LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);
    // The process that made this claim died before sending: only its lease is left.
    assert!(matches!(
        claim(&delivery, &notifications[0]).await,
        Claim::Claimed { attempt: 1, .. }
    ));

    assert_eq!(
        handle(&delivery, &[record("m1", &body, 1)]).await,
        vec!["m1"],
        "not while the dead claim's lease lasts"
    );
    assert!(delivery.sender.calls().is_empty());
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert!(handle(&delivery, &[record("m1", &body, 2)]).await.is_empty());

    audit(&delivery, &[(&notifications[0], Expect::sent_once())]).await;
    let (_, attempts) = delivery
        .ledger
        .notification_with_attempts(&notifications[0].tenant, &notifications[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts[0].number, 2, "attempt 1 died unrecorded");
}

/// docs/reliability.md, "What can still send twice", 1: the provider has the message, the notification is
/// still `sending`; after the lease the message comes back, is claimed again, and is sent again. Once.
#[tokio::test]
async fn a_send_whose_record_is_lost_is_sent_again_after_the_lease_once_as_documented() {
    let delivery = delivery(settings(SHORT_LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let notification = &notifications[0];
    let body = body(notification);
    delivery
        .ledger
        .failpoints
        .set("settle", Fault::Fail, SETTLE_ATTEMPTS);

    assert!(
        handle(&delivery, &[record("m1", &body, 1)]).await.is_empty(),
        "acknowledged anyway: sending twice is worse than a status left sending"
    );
    let (stored, attempts) = delivery
        .ledger
        .notification_with_attempts(&notification.tenant, &notification.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.status, attempts.len()), (NotificationStatus::Sending, 0));
    assert_eq!(
        delivery.sender.delivered_to(notification.to.as_deref().unwrap()),
        1
    );

    // The same message again (the process died before Lambda deleted it, or SQS delivered it twice).
    assert_eq!(
        handle(&delivery, &[record("m1", &body, 2)]).await,
        vec!["m1"],
        "not before the lease runs out"
    );
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert!(handle(&delivery, &[record("m1", &body, 3)]).await.is_empty());
    assert!(
        handle(&delivery, &[record("m1", &body, 4)]).await.is_empty(),
        "recorded now: no third send"
    );

    let twice = Expect {
        sends: 2,
        unrecorded_sends: 1,
        ..Expect::sent_once()
    };
    audit(&delivery, &[(notification, twice)]).await;
}

#[tokio::test]
async fn a_settle_that_times_out_after_committing_is_recorded_once_and_not_sent_again() {
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);
    delivery
        .ledger
        .failpoints
        .set("settle", Fault::TimeOutAfterCommit, 1);

    assert!(handle(&delivery, &[record("m1", &body, 1)]).await.is_empty());
    assert!(handle(&delivery, &[record("m1", &body, 2)]).await.is_empty());

    audit(&delivery, &[(&notifications[0], Expect::sent_once())]).await;
}

/// docs/reliability.md, "What can still send twice", 2: an ambiguous attempt that had in fact succeeded,
/// retried five or more minutes later; the attempts show `ambiguous` followed by `sent`.
#[tokio::test]
async fn a_provider_that_accepts_but_times_out_is_retried_only_after_five_minutes_and_says_why() {
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);
    delivery.sender.then(Script::AcceptThenTimeOut, 1);

    assert!(
        handle(&delivery, &[record("m1", &body, 1)]).await.is_empty(),
        "a new message carries the retry"
    );
    let waits = delivery.queue.take_sent_later();
    assert_eq!(waits.len(), 1);
    assert!(waits[0].1 >= AMBIGUOUS_RETRY_DELAY, "no fast retry: {waits:?}");
    let waiting = Expect {
        status: NotificationStatus::Retrying,
        reason: Some(reason::PROVIDER_TIMEOUT),
        outcomes: vec![AttemptOutcome::Ambiguous],
        sends: 1,
        unrecorded_sends: 0,
    };
    audit(&delivery, &[(&notifications[0], waiting.clone())]).await;
    let (stored, _) = delivery
        .ledger
        .notification_with_attempts(&notifications[0].tenant, &notifications[0].id)
        .await
        .unwrap()
        .unwrap();
    let four_minutes = Timestamp::now().plus_seconds(4 * 60);
    assert!(stored.next_attempt_at.unwrap() > four_minutes, "{stored:?}");
    assert!(stored.detail.unwrap().contains("may send it twice"));

    // Another copy of the message (SQS delivers at least once) arrives during the wait: it waits too.
    assert_eq!(handle(&delivery, &[record("m2", &body, 1)]).await, vec!["m2"]);
    let early = delivery.queue.delays_of("rh-m2");
    assert!(
        early.len() == 1 && early[0] > Duration::from_secs(4 * 60),
        "the copy waits out the retry: {early:?}"
    );
    audit(&delivery, &[(&notifications[0], waiting.clone())]).await;

    // Five minutes later SQS hands the message out again (the wait is over: its due time is now).
    let mut due_now = stored_notification(&delivery, &notifications[0]).await;
    due_now.next_attempt_at = Some(Timestamp::now());
    delivery.ledger.put_notification(due_now);
    assert!(
        handle(&delivery, &[record("m3", &waits[0].0, 1)])
            .await
            .is_empty()
    );
    let documented = Expect {
        status: NotificationStatus::Sent,
        reason: None,
        outcomes: vec![AttemptOutcome::Ambiguous, AttemptOutcome::Sent],
        sends: 2,
        unrecorded_sends: 0,
    };
    audit(&delivery, &[(&notifications[0], documented)]).await;
}

#[tokio::test]
async fn poison_messages_fail_alone_in_a_batch_of_ten() {
    let delivery = delivery(settings(LEASE));
    let emails = accept(&delivery, 8, Channel::Email).await;
    let sms = accept(&delivery, 1, Channel::Sms).await;
    let mut records: Vec<Value> = emails[..7]
        .iter()
        .enumerate()
        .map(|(index, notification)| record(&format!("good-{index}"), &body(notification), 1))
        .collect();
    let mut future_version: Value = serde_json::from_str(&body(&emails[7])).unwrap();
    future_version["v"] = json!(2);
    records.insert(2, record("unreadable", "{not json", 1));
    records.insert(5, record("future-version", &future_version.to_string(), 1));
    records.push(record("wrong-channel", &body(&sms[0]), 1));
    assert_eq!(records.len(), 10);

    let mut failures = handle(&delivery, &records).await;
    failures.sort();

    assert_eq!(failures, vec!["future-version", "unreadable", "wrong-channel"]);
    let mut expected: Vec<(&Notification, Expect)> =
        emails[..7].iter().map(|n| (n, Expect::sent_once())).collect();
    expected.push((&emails[7], Expect::untouched()));
    expected.push((&sms[0], Expect::untouched()));
    audit(&delivery, &expected).await;
}

#[tokio::test]
async fn a_batch_that_runs_out_of_time_returns_the_rest_unclaimed_and_loses_none() {
    let mut settings = settings(LEASE);
    settings.concurrency = 1;
    settings.provider_timeout = Duration::from_millis(100);
    let delivery = delivery(settings);
    let notifications = accept(&delivery, 3, Channel::Email).await;
    let records: Vec<Value> = notifications
        .iter()
        .enumerate()
        .map(|(index, notification)| record(&format!("m{index}"), &body(notification), 1))
        .collect();
    // Time for one send and its record, with half a second to spare; the first send takes a second.
    delivery.sender.slow_down(Duration::from_secs(1));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let left = Duration::from_millis(100) + RECORD_RESERVE + Duration::from_millis(500);
    let mut context = Context::default();
    context.deadline = u64::try_from((now + left).as_millis()).unwrap();

    let failures = failed(&delivery, &records, context).await;

    assert_eq!(failures, vec!["m1", "m2"], "the rest go back to the queue");
    for (index, notification) in notifications.iter().enumerate().skip(1) {
        assert_eq!(
            delivery.queue.delays_of(&format!("rh-m{index}")),
            vec![Duration::ZERO],
            "back at once for the next invocation"
        );
        assert_eq!(
            delivery
                .ledger
                .lease_until(&notification.tenant, &notification.id),
            None
        );
    }
    let mut expected: Vec<(&Notification, Expect)> = vec![(&notifications[0], Expect::sent_once())];
    expected.extend(notifications[1..].iter().map(|n| (n, Expect::untouched())));
    audit(&delivery, &expected).await;

    delivery.sender.slow_down(Duration::ZERO);
    assert!(handle(&delivery, &records[1..]).await.is_empty());
    let all_sent: Vec<(&Notification, Expect)> =
        notifications.iter().map(|n| (n, Expect::sent_once())).collect();
    audit(&delivery, &all_sent).await;
}

#[tokio::test]
async fn a_claim_that_fails_retries_the_message_with_a_backoff_and_sends_nothing() {
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);
    delivery.ledger.failpoints.set("claim", Fault::Fail, 1);

    assert_eq!(handle(&delivery, &[record("m1", &body, 1)]).await, vec!["m1"]);
    let waits = delivery.queue.delays_of("rh-m1");
    assert_eq!(waits.len(), 1);
    assert!(
        (Duration::from_secs(1)..=Duration::from_secs(2)).contains(&waits[0]),
        "the first backoff: {waits:?}"
    );
    audit(&delivery, &[(&notifications[0], Expect::untouched())]).await;

    assert!(handle(&delivery, &[record("m1", &body, 2)]).await.is_empty());
    audit(&delivery, &[(&notifications[0], Expect::sent_once())]).await;
}

#[tokio::test]
async fn a_claim_that_times_out_after_committing_holds_the_notification_until_its_lease_runs_out() {
    let delivery = delivery(settings(SHORT_LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let body = body(&notifications[0]);
    delivery
        .ledger
        .failpoints
        .set("claim", Fault::TimeOutAfterCommit, 1);

    assert_eq!(handle(&delivery, &[record("m1", &body, 1)]).await, vec!["m1"]);
    assert_eq!(
        handle(&delivery, &[record("m1", &body, 2)]).await,
        vec!["m1"],
        "its own lost claim is busy like anyone's"
    );
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert!(handle(&delivery, &[record("m1", &body, 3)]).await.is_empty());

    audit(&delivery, &[(&notifications[0], Expect::sent_once())]).await;
}

#[tokio::test]
async fn a_transient_refusal_is_retried_and_a_recipient_refusal_fails_for_good() {
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 2, Channel::Email).await;
    delivery.sender.then(Script::Fail(FailureKind::Transient), 1);
    delivery.sender.then(Script::Fail(FailureKind::Recipient), 1);

    assert!(
        handle(&delivery, &[record("t", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );
    assert_eq!(delivery.queue.sent_later().len(), 1, "the retry is a new message");
    assert!(
        handle(&delivery, &[record("r", &body(&notifications[1]), 1)])
            .await
            .is_empty()
    );
    assert!(
        handle(&delivery, &[record("t2", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );

    let retried = Expect {
        outcomes: vec![AttemptOutcome::Retrying, AttemptOutcome::Sent],
        ..Expect::sent_once()
    };
    let rejected = Expect {
        status: NotificationStatus::Failed,
        reason: Some(reason::REJECTED_BY_PROVIDER),
        outcomes: vec![AttemptOutcome::Failed],
        sends: 0,
        unrecorded_sends: 0,
    };
    audit(
        &delivery,
        &[(&notifications[0], retried), (&notifications[1], rejected)],
    )
    .await;
}
