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

/// The circuits of a memory store, each read counted and slow, as a loaded DynamoDB answers.
#[derive(Default)]
struct CountedReads {
    store: crate::adapters::memory::MemoryActivityStore,
    reads: std::sync::atomic::AtomicUsize,
}

impl CircuitStore for CountedReads {
    async fn circuit(
        &self,
        key: &str,
    ) -> Result<crate::domain::circuit::CircuitState, crate::ports::BackendError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.store.circuit(key).await
    }

    async fn record_failure(
        &self,
        key: &str,
        threshold: u32,
        open_until: crate::domain::Timestamp,
    ) -> Result<crate::domain::circuit::CircuitState, crate::ports::BackendError> {
        self.store.record_failure(key, threshold, open_until).await
    }

    async fn close(&self, key: &str) -> Result<(), crate::ports::BackendError> {
        self.store.close(key).await
    }

    async fn take_probe(
        &self,
        key: &str,
        now: crate::domain::Timestamp,
        probe_until: crate::domain::Timestamp,
    ) -> Result<bool, crate::ports::BackendError> {
        self.store.take_probe(key, now, probe_until).await
    }

    async fn reopen(
        &self,
        key: &str,
        open_until: crate::domain::Timestamp,
    ) -> Result<(), crate::ports::BackendError> {
        self.store.reopen(key, open_until).await
    }
}

/// Ten deliveries of a batch that find the cached state stale make one read between them, not ten: the
/// others go on with the stale state while it is read (found by the load benchmark's request count).
#[tokio::test]
async fn a_batch_that_finds_the_circuit_stale_reads_it_once() {
    let breaker = super::Breaker::new(
        super::breaker::BreakerSettings {
            threshold: 5,
            cooldown: COOLDOWN,
            cache_for: Duration::from_millis(100),
            probe_lease: LEASE,
        },
        Channel::Slack,
    );
    let store = CountedReads::default();
    let admit_ten = || {
        futures::future::join_all(
            (0..10).map(|_| breaker.admit(&store, "slack:hooks.slack.com", crate::domain::Timestamp::now())),
        )
    };
    let reads = || store.reads.load(std::sync::atomic::Ordering::SeqCst);

    let first = admit_ten().await;
    assert!(
        first
            .iter()
            .all(|admission| *admission == super::breaker::Admission::Send)
    );
    let cold = reads();
    assert!(cold <= 10, "{cold}");
    admit_ten().await;
    assert_eq!(reads(), cold, "fresh: from the cache");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stale = admit_ten().await;
    assert!(
        stale
            .iter()
            .all(|admission| *admission == super::breaker::Admission::Send)
    );
    assert_eq!(reads(), cold + 1, "stale: one read for the batch");
}
