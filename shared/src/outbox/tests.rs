//! The outbox over in-memory adapters with failpoints: every way a fan-out can be interrupted ends with
//! each notification on its queue, and no sweep or replay takes a fan-out another still holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{FANOUT_LEASE, Finish, Outbox, SweepReport};
use crate::adapters::memory::{Fault, MemoryActivityStore, MemoryQueue};
use crate::domain::event::Acceptance;
use crate::domain::{Channel, Timestamp};
use crate::ports::{ActivityStore, Recorded};
use crate::telemetry::record::testing::record as record_metrics;
use crate::test_fixtures::acceptance;
use std::collections::BTreeMap;
use std::time::Duration;

const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Slack];

fn outbox() -> Outbox<MemoryActivityStore, MemoryQueue> {
    Outbox::new(MemoryActivityStore::default(), MemoryQueue::default())
}

/// How many envelopes of each notification of `accepted` are on its channel's queue.
fn copies(
    outbox: &Outbox<MemoryActivityStore, MemoryQueue>,
    accepted: &Acceptance,
) -> BTreeMap<String, usize> {
    accepted
        .notifications
        .iter()
        .map(|notification| {
            let on_queue = outbox
                .queue
                .enqueued(notification.channel)
                .iter()
                .filter(|envelope| envelope.notification_id == notification.id)
                .count();
            (notification.rule_id.clone(), on_queue)
        })
        .collect()
}

fn each_once(accepted: &Acceptance) -> BTreeMap<String, usize> {
    accepted
        .notifications
        .iter()
        .map(|n| (n.rule_id.clone(), 1))
        .collect()
}

/// A moment after every lease taken now has run out.
fn after_the_lease() -> Timestamp {
    Timestamp::from_millis(
        Timestamp::now().millis() + 1_000 + i64::try_from(FANOUT_LEASE.as_millis()).unwrap(),
    )
}

async fn record(outbox: &Outbox<MemoryActivityStore, MemoryQueue>, accepted: &Acceptance) {
    let recorded = outbox
        .activity()
        .record_acceptance(accepted, FANOUT_LEASE)
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::New);
}

#[tokio::test]
async fn a_fan_out_puts_each_notification_on_its_queue_once_and_leaves_the_index() {
    let outbox = outbox();
    let accepted = acceptance("acme", None, &ALL);
    record(&outbox, &accepted).await;

    outbox
        .fan_out(
            &accepted.event.tenant,
            &accepted.event.id,
            &accepted.notifications,
        )
        .await
        .unwrap();

    assert_eq!(copies(&outbox, &accepted), each_once(&accepted));
    let (event, lease) = outbox
        .activity()
        .stored_event(&accepted.event.tenant, &accepted.event.id)
        .unwrap();
    assert!(!event.fanout_pending && lease.is_none());
    let report = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default(), "nothing left for the sweeper");
}

#[tokio::test]
async fn a_failed_queue_releases_the_lease_and_the_sweeper_finishes_the_fan_out() {
    let outbox = outbox();
    let accepted = acceptance("acme", Some("order-1"), &ALL);
    record(&outbox, &accepted).await;
    // Email's queue fails at once while SMS's is still answering, and Slack's is fine.
    outbox.queue.failpoints.set("enqueue:email", Fault::Fail, 1);
    outbox
        .queue
        .failpoints
        .set("enqueue:sms", Fault::Slow(Duration::from_millis(50)), 1);

    let failed = outbox
        .fan_out(
            &accepted.event.tenant,
            &accepted.event.id,
            &accepted.notifications,
        )
        .await;

    assert!(failed.is_err());
    let first_try = copies(&outbox, &accepted);
    assert_eq!(
        (
            first_try["welcome-email"],
            first_try["welcome-sms"],
            first_try["welcome-slack"]
        ),
        (0, 1, 1),
        "the other channels, even one still answering, are not given up with the failed one"
    );
    let (event, lease) = outbox
        .activity()
        .stored_event(&accepted.event.tenant, &accepted.event.id)
        .unwrap();
    assert!(
        event.fanout_pending && lease.is_none(),
        "left pending, lease released"
    );
    let report = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((report.found, report.recovered, report.left), (1, 1, 0));
    let on_queues = copies(&outbox, &accepted);
    // SMS and Slack went out in the first try and again in the sweep: the delivery loop's claim makes
    // the second copy a no-op, which is why a fan-out may repeat but never skip.
    assert_eq!(
        (
            on_queues["welcome-email"],
            on_queues["welcome-sms"],
            on_queues["welcome-slack"]
        ),
        (1, 2, 2)
    );
}

#[tokio::test]
async fn a_request_that_died_after_its_commit_is_fanned_out_by_the_sweeper_once_its_lease_runs_out() {
    let metrics = record_metrics();
    let outbox = outbox();
    let accepted = acceptance("acme", None, &ALL);
    record(&outbox, &accepted).await; // and then the process died: no fan-out, lease held

    let early = outbox
        .sweep(Timestamp::now(), || Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        early,
        SweepReport::default(),
        "a live request's event is not touched"
    );
    let late = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!((late.found, late.recovered), (1, 1));
    assert_eq!(copies(&outbox, &accepted), each_once(&accepted));
    let again = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again, SweepReport::default(), "finished events leave the index");
    assert_eq!(metrics.total("FanoutsRecovered", &[]), 1);
}

#[tokio::test]
async fn a_replay_does_not_take_a_fan_out_whose_lease_is_held() {
    let outbox = outbox();
    let accepted = acceptance("acme", Some("order-1"), &ALL);
    record(&outbox, &accepted).await;

    let finish = outbox
        .finish_abandoned(&accepted.event.tenant, &accepted.event.id, Timestamp::now())
        .await
        .unwrap();

    assert_eq!(finish, Finish::NotOurs);
    assert!(copies(&outbox, &accepted).values().all(|&n| n == 0));
}

#[tokio::test]
async fn a_write_that_committed_but_timed_out_is_taken_for_new_so_its_request_fans_out() {
    let outbox = outbox();
    let accepted = acceptance("acme", Some("order-1"), &ALL);
    outbox
        .activity()
        .failpoints
        .set("record_acceptance", Fault::TimeOutAfterCommit, 1);

    let recorded = outbox
        .activity()
        .record_acceptance(&accepted, FANOUT_LEASE)
        .await
        .unwrap();

    assert_eq!(
        recorded,
        Recorded::New,
        "its own write, not a replay of another request"
    );
}

#[tokio::test]
async fn a_sweep_without_time_left_leaves_every_event_for_the_next() {
    let outbox = outbox();
    let first = acceptance("acme", None, &ALL);
    let second = acceptance("globex", None, &[Channel::Email]);
    record(&outbox, &first).await;
    record(&outbox, &second).await;

    let rushed = outbox
        .sweep(after_the_lease(), || Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((rushed.found, rushed.recovered, rushed.left), (2, 0, 2));
    let unhurried = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!((unhurried.found, unhurried.recovered, unhurried.left), (2, 2, 0));
    assert_eq!(copies(&outbox, &first), each_once(&first));
    assert_eq!(copies(&outbox, &second), each_once(&second));
}

#[tokio::test]
async fn a_sweep_that_fails_on_one_event_goes_on_with_the_others() {
    let outbox = outbox();
    let first = acceptance("acme", None, &[Channel::Sms]);
    let second = acceptance("acme", None, &[Channel::Email]);
    record(&outbox, &first).await;
    record(&outbox, &second).await;
    outbox.activity().failpoints.set("notifications", Fault::Fail, 1);

    let report = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!((report.found, report.recovered, report.left), (2, 1, 1));
    let next = outbox
        .sweep(after_the_lease(), || Duration::from_secs(60))
        .await
        .unwrap();
    // The failed one holds a lease from the first sweep; once it runs out, the next sweep takes it.
    assert_eq!(next.recovered, 0);
    let later = Timestamp::from_millis(
        after_the_lease().millis() + 1_000 + i64::try_from(FANOUT_LEASE.as_millis()).unwrap(),
    );
    let last = outbox.sweep(later, || Duration::from_secs(60)).await.unwrap();
    assert_eq!((last.found, last.recovered), (1, 1));
    assert_eq!(copies(&outbox, &first), each_once(&first));
    assert_eq!(copies(&outbox, &second), each_once(&second));
}
