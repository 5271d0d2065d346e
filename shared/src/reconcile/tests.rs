//! The reconciler over in-memory adapters: stalled notifications end in the DLQ and `dead_lettered`,
//! anything a delivery may still settle is left alone, and a failure leaves the rest for the next run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{ReconcileReport, Reconciler, Verdict, judge};
use crate::adapters::memory::{Fault, MemoryActivityStore, MemoryQueue, MemoryQueueDepth};
use crate::config::ReconcileSettings;
use crate::domain::notification::{Notification, NotificationStatus, reason};
use crate::domain::{Channel, Timestamp};
use crate::ports::{ActivityStore, UnsettledNotifications};
use crate::telemetry::record::testing::record as record_metrics;
use crate::test_fixtures::acceptance;
use std::time::Duration;

const SETTINGS: ReconcileSettings = ReconcileSettings {
    stall_after: Duration::from_secs(900),
    queue_retention: Duration::from_secs(345_600),
};
const MINUTE: i64 = 60_000;

type TestReconciler = Reconciler<MemoryActivityStore, MemoryQueue, MemoryQueueDepth>;

fn reconciler() -> TestReconciler {
    Reconciler::new(
        MemoryActivityStore::default(),
        MemoryQueue::default(),
        MemoryQueueDepth::default(),
        SETTINGS,
    )
}

/// A notification of `channel`, in `status`, last touched `idle_minutes` before `now`.
fn notification(
    channel: Channel,
    status: NotificationStatus,
    now: Timestamp,
    idle_minutes: i64,
) -> Notification {
    let mut notification = acceptance("acme", None, &[channel]).notifications.remove(0);
    let touched = Timestamp::from_millis(now.millis() - idle_minutes * MINUTE);
    notification.status = status;
    notification.created_at = touched;
    notification.updated_at = touched;
    notification
}

async fn stored(reconciler: &TestReconciler, n: &Notification) -> Notification {
    reconciler
        .activity
        .notifications(&n.tenant, std::slice::from_ref(&n.id))
        .await
        .unwrap()
        .pop()
        .unwrap()
}

fn forever() -> Duration {
    Duration::from_secs(60)
}

#[test]
fn a_notification_is_judged_by_how_long_nothing_touched_it() {
    let now = Timestamp::now();
    let at = |status, idle| judge(&notification(Channel::Email, status, now, idle), now, &SETTINGS);

    assert_eq!(at(NotificationStatus::Queued, 14), Verdict::Active);
    assert_eq!(at(NotificationStatus::Queued, 16), Verdict::StalledIfQueueEmpty);
    assert_eq!(at(NotificationStatus::Sending, 16), Verdict::StalledIfQueueEmpty);
    assert_eq!(
        at(NotificationStatus::Retrying, 16 * 60 * 24 * 4),
        Verdict::Stalled
    );
    assert_eq!(at(NotificationStatus::Sent, 16), Verdict::Settled);
    assert_eq!(at(NotificationStatus::DeadLettered, 10_000), Verdict::Settled);
}

#[test]
fn a_retry_due_later_is_not_idle_until_it_is_due() {
    let now = Timestamp::now();
    let mut retrying = notification(Channel::Sms, NotificationStatus::Retrying, now, 60);
    retrying.next_attempt_at = Some(Timestamp::from_millis(now.millis() + 30 * MINUTE));

    assert_eq!(judge(&retrying, now, &SETTINGS), Verdict::Active);
}

/// Over a grid of times around each window's edge: a notification touched (or due) within the stall
/// window is never stalled, and one idle past the queue's retention always is.
#[test]
fn the_verdict_follows_the_windows() {
    let now = Timestamp::now();
    let edges = [0, 1, 899, 900, 901, 3_600, 345_599, 345_600, 345_601, 1_000_000];
    let dues = [
        None,
        Some(-1_000_000),
        Some(-345_600),
        Some(-900),
        Some(-899),
        Some(0),
        Some(900),
    ];
    for idle_seconds in edges {
        for due_in in dues {
            let mut retrying = notification(Channel::Slack, NotificationStatus::Retrying, now, 0);
            retrying.updated_at = Timestamp::from_millis(now.millis() - idle_seconds * 1000);
            retrying.next_attempt_at = due_in.map(|s| Timestamp::from_millis(now.millis() + s * 1000));
            let idle = idle_seconds.min(due_in.map_or(i64::MAX, |s| -s));
            let expected = if idle < 900 {
                Verdict::Active
            } else if idle >= 345_600 {
                Verdict::Stalled
            } else {
                Verdict::StalledIfQueueEmpty
            };
            assert_eq!(
                judge(&retrying, now, &SETTINGS),
                expected,
                "idle {idle_seconds} s, due in {due_in:?} s"
            );
        }
    }
}

#[tokio::test]
async fn a_stalled_notification_gets_a_dlq_message_and_is_dead_lettered() {
    let metrics = record_metrics();
    let reconciler = reconciler();
    let now = Timestamp::now();
    // Claimed on its last receive, then the process died: `sending`, and its message went to the DLQ.
    let stalled = notification(Channel::Email, NotificationStatus::Sending, now, 20);
    reconciler.activity.put_notification(stalled.clone());

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(
        report,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 1,
            left: 0
        }
    );
    let dlq = reconciler.dead_letters.enqueued(Channel::Email);
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (&dlq[0].notification_id, dlq[0].channel),
        (&stalled.id, Some(Channel::Email))
    );
    let now_stored = stored(&reconciler, &stalled).await;
    assert_eq!(now_stored.status, NotificationStatus::DeadLettered);
    assert_eq!(now_stored.reason.as_deref(), Some(reason::STALLED));
    assert!(now_stored.detail.unwrap().contains("DLQ"));

    let again = reconciler.reconcile(now, forever).await.unwrap();
    assert_eq!(
        again,
        ReconcileReport::default(),
        "dead-lettered once, then out of the index"
    );
    assert_eq!(reconciler.dead_letters.enqueued(Channel::Email).len(), 1);
    let stalled = [
        ("Channel", "email"),
        ("Outcome", "dead_lettered"),
        ("Reason", reason::STALLED),
    ];
    assert_eq!(metrics.total("NotificationFailures", &stalled), 1);
}

#[tokio::test]
async fn a_queued_notification_whose_event_is_still_being_fanned_out_is_late_not_stalled() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let accepted = acceptance("acme", None, &[Channel::Email]);
    reconciler
        .activity
        .record_acceptance(&accepted, Duration::from_secs(30))
        .await
        .unwrap();
    // Accepted 20 minutes ago, and its fan-out never finished (every request that took it died).
    let mut waiting = accepted.notifications[0].clone();
    waiting.created_at = Timestamp::from_millis(now.millis() - 20 * MINUTE);
    waiting.updated_at = waiting.created_at;
    reconciler.activity.put_notification(waiting.clone());

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(report.dead_lettered, 0, "the outbox owes it its message");
    assert_eq!(
        stored(&reconciler, &waiting).await.status,
        NotificationStatus::Queued
    );
    reconciler
        .activity
        .finish_fanout(&accepted.event.tenant, &accepted.event.id)
        .await
        .unwrap();
    let fanned_out = reconciler.reconcile(now, forever).await.unwrap();
    assert_eq!(
        fanned_out.dead_lettered, 1,
        "fanned out, no message, queue empty: stalled"
    );
}

#[tokio::test]
async fn a_backlog_on_its_queue_keeps_an_idle_notification_waiting() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let waiting = notification(Channel::Sms, NotificationStatus::Queued, now, 30);
    reconciler.activity.put_notification(waiting.clone());
    reconciler.depth.set(Channel::Sms, 12);

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(
        report,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 0,
            left: 0
        }
    );
    assert_eq!(
        stored(&reconciler, &waiting).await.status,
        NotificationStatus::Queued
    );
    assert!(reconciler.dead_letters.enqueued(Channel::Sms).is_empty());
}

#[tokio::test]
async fn past_the_queue_retention_no_backlog_can_hold_its_message() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let lost = notification(Channel::Sms, NotificationStatus::Queued, now, 60 * 24 * 5);
    reconciler.activity.put_notification(lost.clone());
    reconciler.depth.set(Channel::Sms, 12);

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(report.dead_lettered, 1);
    assert!(reconciler.depth.asked().is_empty(), "no queue count needed");
}

#[tokio::test]
async fn a_recent_or_settled_notification_costs_no_queue_count_and_is_left_alone() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let fresh = notification(Channel::Email, NotificationStatus::Queued, now, 1);
    let sent = notification(Channel::Email, NotificationStatus::Sent, now, 60);
    reconciler.activity.put_notification(fresh.clone());
    reconciler.activity.put_notification(sent.clone());

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(report, ReconcileReport::default());
    assert!(reconciler.depth.asked().is_empty());
    assert_eq!(
        stored(&reconciler, &fresh).await.status,
        NotificationStatus::Queued
    );
    assert_eq!(stored(&reconciler, &sent).await.status, NotificationStatus::Sent);
}

#[tokio::test]
async fn each_channel_queue_is_counted_once_per_run() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    for _ in 0..3 {
        reconciler.activity.put_notification(notification(
            Channel::Slack,
            NotificationStatus::Retrying,
            now,
            20,
        ));
    }

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(report.dead_lettered, 3);
    assert_eq!(reconciler.depth.asked(), vec![Channel::Slack]);
}

#[tokio::test]
async fn a_delivery_that_touches_it_meanwhile_wins_and_the_spare_dlq_message_is_harmless() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let stalled = notification(Channel::Email, NotificationStatus::Queued, now, 20);
    reconciler.activity.put_notification(stalled.clone());
    // Between the reconciler's read and its write, a late message is claimed and sent.
    let mut sent = stalled.clone();
    sent.status = NotificationStatus::Sent;
    sent.updated_at = now;

    let marked = reconciler
        .activity
        .dead_letter_stalled(&stalled, now, "stalled")
        .await
        .unwrap();
    assert!(marked, "untouched: marked");
    reconciler.activity.put_notification(sent.clone());
    let late = reconciler
        .activity
        .dead_letter_stalled(&stalled, now, "stalled")
        .await
        .unwrap();

    assert!(!late, "a notification that moved since it was read is not marked");
    assert_eq!(stored(&reconciler, &sent).await.status, NotificationStatus::Sent);
}

#[tokio::test]
async fn a_failed_dlq_send_marks_nothing_and_the_next_run_finishes() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let stalled = notification(Channel::Sms, NotificationStatus::Retrying, now, 20);
    reconciler.activity.put_notification(stalled.clone());
    reconciler
        .dead_letters
        .failpoints
        .set("enqueue:sms", Fault::Fail, 1);

    let first = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(
        first,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 0,
            left: 1
        }
    );
    assert_eq!(
        stored(&reconciler, &stalled).await.status,
        NotificationStatus::Retrying,
        "never dead-lettered without its DLQ message"
    );
    let second = reconciler.reconcile(now, forever).await.unwrap();
    assert_eq!(second.dead_lettered, 1);
    assert_eq!(reconciler.dead_letters.enqueued(Channel::Sms).len(), 1);
}

#[tokio::test]
async fn a_failed_mark_after_the_dlq_send_leaves_a_spare_message_and_the_next_run_finishes() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let stalled = notification(Channel::Email, NotificationStatus::Queued, now, 20);
    reconciler.activity.put_notification(stalled.clone());
    reconciler
        .activity
        .failpoints
        .set("dead_letter_stalled", Fault::Fail, 1);

    let first = reconciler.reconcile(now, forever).await.unwrap();
    let second = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!((first.left, second.dead_lettered), (1, 1));
    assert_eq!(
        stored(&reconciler, &stalled).await.status,
        NotificationStatus::DeadLettered
    );
    assert_eq!(
        reconciler.dead_letters.enqueued(Channel::Email).len(),
        2,
        "one spare: a redrive of it finds the notification settled"
    );
}

#[tokio::test]
async fn a_failed_queue_count_leaves_the_notification_for_the_next_run() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    let stalled = notification(Channel::Slack, NotificationStatus::Queued, now, 20);
    reconciler.activity.put_notification(stalled.clone());
    reconciler.depth.failpoints.set("messages", Fault::Fail, 1);

    let report = reconciler.reconcile(now, forever).await.unwrap();

    assert_eq!(
        report,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 0,
            left: 1
        }
    );
    assert_eq!(
        stored(&reconciler, &stalled).await.status,
        NotificationStatus::Queued
    );
}

#[tokio::test]
async fn without_time_left_every_overdue_notification_is_left_for_the_next_run() {
    let reconciler = reconciler();
    let now = Timestamp::now();
    reconciler
        .activity
        .put_notification(notification(Channel::Email, NotificationStatus::Queued, now, 20));

    let report = reconciler
        .reconcile(now, || Duration::from_secs(1))
        .await
        .unwrap();

    assert_eq!(
        report,
        ReconcileReport {
            overdue: 1,
            dead_lettered: 0,
            left: 1
        }
    );
    assert!(reconciler.dead_letters.enqueued(Channel::Email).is_empty());
}

#[tokio::test]
async fn a_failed_index_query_fails_the_run() {
    let reconciler = reconciler();
    reconciler.activity.failpoints.set("overdue", Fault::Fail, 1);

    assert!(reconciler.reconcile(Timestamp::now(), forever).await.is_err());
}
