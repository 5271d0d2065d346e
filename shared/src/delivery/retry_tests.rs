//! The retry schedule through the whole loop: every retry is a new message, a used-up schedule ends in
//! the DLQ (and a redrive starts over), throttling never uses it up, and nothing is sent late.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::tests::{
    Expect, LEASE, MemoryDelivery, accept, audit, body, delivery, handle, record, settings,
    stored_notification,
};
use crate::adapters::memory::sender::Script;
use crate::domain::delivery::{AttemptOutcome, FailureKind};
use crate::domain::notification::{NotificationStatus, reason};
use crate::domain::retry::RetrySchedule;
use crate::domain::{Channel, Timestamp};
use crate::telemetry::record::testing::record as record_metrics;
use std::time::Duration;

fn with_schedule(schedule: &str) -> MemoryDelivery {
    let mut settings = settings(LEASE);
    settings.schedule = RetrySchedule::parse(schedule).unwrap();
    // The schedule alone: the breaker (breaker_tests.rs) stays out of the way.
    settings.breaker.threshold = 1000;
    delivery(settings)
}

/// Hands every message the loop put back on the queue to it again, as SQS would once each delay is over,
/// `rounds` times; returns the delays, round by round.
async fn redeliver(delivery: &MemoryDelivery, rounds: usize) -> Vec<Duration> {
    let mut waits = Vec::new();
    for round in 0..rounds {
        for (index, (body, wait)) in delivery.queue.take_sent_later().into_iter().enumerate() {
            waits.push(wait);
            let failed = handle(delivery, &[record(&format!("r{round}-{index}"), &body, 1)]).await;
            assert!(
                failed.is_empty(),
                "a retry never waits on its own receive: {failed:?}"
            );
        }
    }
    waits
}

fn expired_unsent() -> Expect {
    Expect {
        status: NotificationStatus::Expired,
        reason: Some(reason::MAX_AGE_EXCEEDED),
        outcomes: vec![AttemptOutcome::Expired],
        sends: 0,
        unrecorded_sends: 0,
    }
}

#[tokio::test]
async fn a_used_up_schedule_goes_to_the_dlq_and_a_redrive_gets_the_whole_schedule_again() {
    let metrics = record_metrics();
    let delivery = with_schedule("1s,2s,3s");
    let notifications = accept(&delivery, 1, Channel::Email).await;
    delivery.sender.then(Script::Fail(FailureKind::Transient), 4);

    assert!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );
    let waits = redeliver(&delivery, 5).await;
    assert_eq!(waits.len(), 3, "one new message per step: {waits:?}");
    for (wait, step) in waits.iter().zip([1.0, 2.0, 3.0]) {
        assert!(
            (step * 0.8..=step * 1.2).contains(&wait.as_secs_f64()),
            "{waits:?}"
        );
    }
    let dead = delivery.queue.dead_letters();
    assert_eq!(dead, vec![body(&notifications[0])], "the message is in the DLQ");
    let exhausted = stored_notification(&delivery, &notifications[0]).await;
    assert_eq!(exhausted.status, NotificationStatus::DeadLettered);
    assert_eq!(exhausted.failures, 0, "a redrive starts over");

    // A person fixes the cause and redrives: the provider fails once more, and the schedule is whole again.
    delivery.sender.then(Script::Fail(FailureKind::Transient), 1);
    assert!(
        handle(&delivery, &[record("redriven", &dead[0], 1)])
            .await
            .is_empty()
    );
    assert_eq!(
        stored_notification(&delivery, &notifications[0]).await.failures,
        1
    );
    redeliver(&delivery, 1).await;
    let mut outcomes = vec![AttemptOutcome::Retrying; 3];
    outcomes.extend([
        AttemptOutcome::DeadLettered,
        AttemptOutcome::Retrying,
        AttemptOutcome::Sent,
    ]);
    let expect = Expect {
        outcomes,
        ..Expect::sent_once()
    };
    audit(&delivery, &[(&notifications[0], expect)]).await;

    let email = |outcome| [("Channel", "email"), ("Outcome", outcome)];
    assert_eq!(metrics.total("Notifications", &email("retried")), 4);
    assert_eq!(metrics.total("Notifications", &email("dead_lettered")), 1);
    assert_eq!(metrics.total("Notifications", &email("sent")), 1);
    let failed = |outcome, reason| [("Channel", "email"), ("Outcome", outcome), ("Reason", reason)];
    assert_eq!(
        metrics.total("NotificationFailures", &failed("retried", reason::PROVIDER_ERROR)),
        4
    );
    assert_eq!(
        metrics.total(
            "NotificationFailures",
            &failed("dead_lettered", reason::RETRIES_EXHAUSTED)
        ),
        1
    );
    assert_eq!(
        metrics.total("EndToEndLatency", &[("Channel", "email")]),
        1,
        "one value, when it was sent"
    );
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_and_never_dead_letters() {
    let delivery = with_schedule("1s");
    let notifications = accept(&delivery, 1, Channel::Email).await;
    delivery.sender.then(Script::Throttle(Duration::from_secs(7)), 20);

    assert!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );
    let waits = redeliver(&delivery, 25).await;
    assert_eq!(waits.len(), 20, "{waits:?}");
    assert!(
        waits.iter().all(|wait| *wait == Duration::from_secs(7)),
        "Retry-After: {waits:?}"
    );
    assert!(delivery.queue.dead_letters().is_empty());
    assert_eq!(
        stored_notification(&delivery, &notifications[0]).await.failures,
        0,
        "no step used up"
    );
    let mut outcomes = vec![AttemptOutcome::Retrying; 20];
    outcomes.push(AttemptOutcome::Sent);
    audit(
        &delivery,
        &[(
            &notifications[0],
            Expect {
                outcomes,
                ..Expect::sent_once()
            },
        )],
    )
    .await;
}

#[tokio::test]
async fn a_notification_past_its_max_age_expires_unsent() {
    let metrics = record_metrics();
    let delivery = delivery(settings(LEASE));
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let mut late = stored_notification(&delivery, &notifications[0]).await;
    late.deliver_by = Some(Timestamp::now().plus_seconds(-1));
    delivery.ledger.put_notification(late);

    assert!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );
    audit(&delivery, &[(&notifications[0], expired_unsent())]).await;
    let expired = [
        ("Channel", "email"),
        ("Outcome", "expired"),
        ("Reason", reason::MAX_AGE_EXCEEDED),
    ];
    assert_eq!(metrics.total("NotificationFailures", &expired), 1);
    assert_eq!(metrics.total("EndToEndLatency", &[("Channel", "email")]), 0);
}

#[tokio::test]
async fn a_retry_that_would_arrive_after_the_max_age_expires_now() {
    let delivery = with_schedule("1h");
    let notifications = accept(&delivery, 1, Channel::Email).await;
    let mut otp = stored_notification(&delivery, &notifications[0]).await;
    otp.deliver_by = Some(Timestamp::now().plus_seconds(300));
    delivery.ledger.put_notification(otp);
    delivery.sender.then(Script::Fail(FailureKind::Transient), 1);

    assert!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );
    assert!(delivery.queue.sent_later().is_empty(), "no retry an hour late");
    audit(&delivery, &[(&notifications[0], expired_unsent())]).await;
}

#[tokio::test]
async fn when_sqs_will_not_take_the_retry_the_message_itself_waits_and_nothing_is_dead_lettered() {
    let delivery = with_schedule("1s");
    let notifications = accept(&delivery, 1, Channel::Email).await;
    delivery.sender.then(Script::Fail(FailureKind::Transient), 2);
    delivery.queue.fail_sends(true);

    // The first failure: no new message, so the received one waits out the step.
    assert_eq!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 1)]).await,
        vec!["m1"]
    );
    assert_eq!(delivery.queue.delays_of("rh-m1").len(), 1);
    // The second uses up the schedule, but the DLQ cannot be reached: still retrying, not dead-lettered
    // (a dead-lettered notification with no message in the DLQ could never be redriven).
    assert_eq!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 2)]).await,
        vec!["m1"]
    );
    assert!(delivery.queue.dead_letters().is_empty());
    let stored = stored_notification(&delivery, &notifications[0]).await;
    assert_eq!(stored.status, NotificationStatus::Retrying, "{stored:?}");
    assert!(stored.detail.unwrap().contains("DLQ could not be reached"));

    // SQS is back: the next failure reaches the DLQ.
    delivery.queue.fail_sends(false);
    delivery.sender.then(Script::Fail(FailureKind::Transient), 1);
    assert!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 3)])
            .await
            .is_empty()
    );
    assert_eq!(delivery.queue.dead_letters().len(), 1);
    let expect = Expect {
        status: NotificationStatus::DeadLettered,
        reason: Some(reason::RETRIES_EXHAUSTED),
        outcomes: vec![
            AttemptOutcome::Retrying,
            AttemptOutcome::Retrying,
            AttemptOutcome::DeadLettered,
        ],
        sends: 0,
        unrecorded_sends: 0,
    };
    audit(&delivery, &[(&notifications[0], expect)]).await;
}
