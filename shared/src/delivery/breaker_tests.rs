//! A provider outage through the whole loop: once the circuit opens, deliveries are deferred without a
//! claim or a provider call, one probe per cool-down tries the provider, nothing uses up its schedule
//! waiting, and everything is sent once when the provider is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::tests::{
    LEASE, MemoryDelivery, accept, body, delivery, handle, record, settings, stored_notification,
};
use crate::adapters::memory::sender::Script;
use crate::domain::Channel;
use crate::domain::delivery::FailureKind;
use crate::domain::notification::NotificationStatus;
use crate::domain::retry::RetrySchedule;
use crate::ports::CircuitStore;
use crate::telemetry::record::testing::{Recorded, record as record_metrics};
use std::time::{Duration, Instant};

const COOLDOWN: Duration = Duration::from_secs(1);

fn outage_ready() -> MemoryDelivery {
    let mut settings = settings(LEASE);
    settings.schedule = RetrySchedule::parse("100ms,100ms,100ms").unwrap();
    settings.breaker.threshold = 3;
    settings.breaker.cooldown = COOLDOWN;
    settings.breaker.probe_lease = Duration::from_millis(500);
    delivery(settings)
}

/// Hands the loop every message it put back on the queue, every 50 ms, for `duration`, as SQS would
/// (the delays are not waited out: the circuit and the claim's due time decide).
async fn run_for(delivery: &MemoryDelivery, duration: Duration) {
    let end = Instant::now() + duration;
    let mut round = 0;
    while Instant::now() < end {
        for (index, (body, _)) in delivery.queue.take_sent_later().into_iter().enumerate() {
            let failed = handle(delivery, &[record(&format!("r{round}-{index}"), &body, 1)]).await;
            assert!(failed.is_empty(), "{failed:?}");
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_outage_is_waited_out_with_a_probe_per_cooldown_and_everything_is_sent_once_after() {
    let metrics = record_metrics();
    let delivery = outage_ready();
    let notifications = accept(&delivery, 10, Channel::Email).await;
    delivery.sender.then(Script::Fail(FailureKind::Transient), 10_000);

    let batch: Vec<_> = notifications
        .iter()
        .enumerate()
        .map(|(index, n)| record(&format!("m{index}"), &body(n), 1))
        .collect();
    assert!(handle(&delivery, &batch).await.is_empty());
    let outage = Duration::from_millis(4500);
    run_for(&delivery, outage).await;
    let during = delivery.sender.calls().len();
    // At most the first batch (sent before the circuit opened), then one probe per cool-down.
    let probes = usize::try_from(outage.as_millis() / COOLDOWN.as_millis()).unwrap() + 1;
    assert!(during <= 10 + probes, "{during} provider calls in the outage");
    for notification in &notifications {
        let stored = stored_notification(&delivery, notification).await;
        // Deferred before its first attempt once the circuit opened, or failed once before that.
        assert!(
            matches!(
                stored.status,
                NotificationStatus::Queued | NotificationStatus::Retrying
            ),
            "{stored:?}"
        );
        assert!(stored.failures <= 1, "waiting used up no step: {stored:?}");
    }

    delivery.sender.recover();
    run_for(&delivery, COOLDOWN * 3).await;
    assert!(delivery.queue.dead_letters().is_empty(), "nothing in the DLQ");
    assert!(delivery.queue.sent_later().is_empty(), "nothing left to deliver");
    for notification in &notifications {
        let stored = stored_notification(&delivery, notification).await;
        assert_eq!(stored.status, NotificationStatus::Sent, "{stored:?}");
        assert_eq!(
            delivery.sender.delivered_to(notification.to.as_deref().unwrap()),
            1
        );
    }
    // Opened once, then each failed probe opened it again; the last probe closed it.
    let probes = changes(&metrics, "half_open");
    assert!(probes >= 2, "{probes} probes");
    assert_eq!(
        changes(&metrics, "open"),
        probes,
        "every probe but the last failed"
    );
    assert_eq!(changes(&metrics, "closed"), 1);
}

fn changes(metrics: &Recorded, state: &str) -> u64 {
    metrics.total("BreakerStateChanges", &[("Channel", "email"), ("State", state)])
}

#[tokio::test]
async fn a_probe_held_back_by_the_send_rate_leaves_the_circuit_open() {
    let metrics = record_metrics();
    let delivery = outage_ready();
    let notifications = accept(&delivery, 1, Channel::Email).await;
    // Open, and past its cool-down: the next delivery probes.
    let past = crate::domain::Timestamp::now().plus_seconds(-1);
    delivery.ledger.record_failure("ses", 1, past).await.unwrap();
    delivery.sender.then(Script::HeldBack(Duration::from_secs(1)), 1);

    assert!(
        handle(&delivery, &[record("m1", &body(&notifications[0]), 1)])
            .await
            .is_empty()
    );
    assert_eq!(delivery.sender.calls().len(), 1, "the probe's send was attempted");
    let circuit = delivery.ledger.circuit("ses").await.unwrap();
    assert!(
        circuit.open_until.is_some(),
        "not closed by a send the provider never saw: {circuit:?}"
    );
    assert_eq!(changes(&metrics, "half_open"), 1);
    assert_eq!(changes(&metrics, "closed"), 0);
}
