//! The reconciler: makes a notification's status agree with its queues when nothing else will.
//!
//! A notification is `queued`, `sending` or `retrying` while a message on its channel's queue (or the
//! delivery holding it) is bound to settle it. A few faults leave it so with no message left:
//! - its last allowed receive could not claim it (DynamoDB failed, or another delivery's lease was
//!   live), so SQS moved the message to the DLQ with the status unchanged;
//! - the process died holding it on its last receive, or between its send and its record then;
//! - a message lost past the queue's retention.
//!
//! Each such notification is "stalled". The reconciler puts a fresh message for it in its channel's DLQ,
//! then marks it `dead_lettered` (reason `stalled`), so it is redriven like any other dead letter: the
//! statuses agree with the queues again, and nothing accepted is lost. It never receives from a DLQ. A
//! stall is judged only when nothing has touched the notification for
//! [`ReconcileSettings::stall_after`] and its channel's queue is empty (so no message for it can be
//! waiting in a backlog), or when it has been untouched for longer than the queue keeps messages.
//!
//! A `queued` notification whose event's fan-out is still pending is never stalled: the outbox owes it its
//! message (found under load, when the fan-out of an event whose requests kept timing out outlasted the
//! stall window).
//!
//! Putting a DLQ message for a notification that was not stalled after all is harmless: the delivery
//! loop claims before it sends, so the redriven copy of a sent notification is acknowledged unsent.

use crate::config::ReconcileSettings;
use crate::domain::notification::{Envelope, Notification, NotificationStatus, reason};
use crate::domain::{Channel, Timestamp};
use crate::ports::{ActivityStore, BackendError, NotificationQueue, QueueDepth, UnsettledNotifications};
use crate::telemetry::catalogue::NotificationOutcome;
use crate::telemetry::record;
use std::collections::HashMap;
use std::time::Duration;

/// Notifications one run looks at, at most; the next run takes the rest.
pub const RECONCILE_PAGE: u16 = 100;
/// Time one notification's repair may take (a read, a DLQ send, a write, with their retries).
const TIME_PER_REPAIR: Duration = Duration::from_secs(3);

/// What the reconciler makes of one unsettled notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Touched recently: leave it.
    Active,
    /// Idle past the stall window: stalled unless its channel's queue still holds messages, one of which
    /// may be its own, waiting in a backlog.
    StalledIfQueueEmpty,
    /// Idle past the queue's retention: no message for it can exist.
    Stalled,
    /// Already settled, but still indexed as unsettled.
    Settled,
}

/// What `notification` is at `now`.
pub fn judge(notification: &Notification, now: Timestamp, settings: &ReconcileSettings) -> Verdict {
    if !notification.status.is_unsettled() {
        return Verdict::Settled;
    }
    let last_touched = notification
        .next_attempt_at
        .map_or(notification.updated_at, |due| due.max(notification.updated_at));
    let idle =
        Duration::from_millis(u64::try_from(now.millis().saturating_sub(last_touched.millis())).unwrap_or(0));
    if idle >= settings.queue_retention {
        Verdict::Stalled
    } else if idle >= settings.stall_after {
        Verdict::StalledIfQueueEmpty
    } else {
        Verdict::Active
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Unsettled notifications found overdue in the index.
    pub overdue: usize,
    /// Of those, put in the DLQ and marked `dead_lettered`.
    pub dead_lettered: usize,
    /// Of those, left for a later run: a failure, or no time left.
    pub left: usize,
}

#[derive(Debug)]
pub struct Reconciler<A, Q, D> {
    activity: A,
    dead_letters: Q,
    depth: D,
    settings: ReconcileSettings,
}

impl<A, Q, D> Reconciler<A, Q, D>
where
    A: ActivityStore + UnsettledNotifications,
    Q: NotificationQueue,
    D: QueueDepth,
{
    /// `dead_letters` enqueues on each channel's DLQ; `depth` counts each channel's own queue.
    pub fn new(activity: A, dead_letters: Q, depth: D, settings: ReconcileSettings) -> Self {
        Self {
            activity,
            dead_letters,
            depth,
            settings,
        }
    }

    /// Finds unsettled notifications overdue by the stall window and dead-letters the stalled ones, until
    /// `time_left` says there is no time for another. One small query when there is nothing to do.
    pub async fn reconcile(
        &self,
        now: Timestamp,
        time_left: impl Fn() -> Duration,
    ) -> Result<ReconcileReport, BackendError> {
        let window = i64::try_from(self.settings.stall_after.as_millis()).unwrap_or(i64::MAX);
        let due_before = Timestamp::from_millis(now.millis().saturating_sub(window));
        let overdue = self.activity.overdue(due_before, RECONCILE_PAGE).await?;
        let mut report = ReconcileReport {
            overdue: overdue.len(),
            ..ReconcileReport::default()
        };
        let mut queue_empty: HashMap<Channel, bool> = HashMap::new();
        for (tenant, id) in &overdue {
            if time_left() < TIME_PER_REPAIR {
                report.left += 1;
                continue;
            }
            let notification = match self
                .activity
                .notifications(tenant, std::slice::from_ref(id))
                .await
            {
                Ok(mut found) => match found.pop() {
                    Some(notification) => notification,
                    None => continue, // expired meanwhile
                },
                Err(error) => {
                    tracing::warn!(%tenant, notification_id = %id, %error, "could not read an overdue notification");
                    report.left += 1;
                    continue;
                }
            };
            let verdict = match judge(&notification, now, &self.settings) {
                Verdict::StalledIfQueueEmpty => {
                    match self.queue_is_empty(notification.channel, &mut queue_empty).await {
                        Ok(true) => Verdict::Stalled,
                        Ok(false) => Verdict::Active,
                        Err(error) => {
                            tracing::warn!(channel = %notification.channel, %error, "could not count the channel's queue; the next run tries again");
                            report.left += 1;
                            continue;
                        }
                    }
                }
                verdict => verdict,
            };
            // A queued notification whose event is still being fanned out has no message yet, and the outbox
            // will send one: late, not stalled.
            let verdict = match verdict {
                Verdict::Stalled if notification.status == NotificationStatus::Queued => {
                    match self
                        .activity
                        .event(&notification.tenant, &notification.event_id)
                        .await
                    {
                        Ok(Some(event)) if event.fanout_pending => Verdict::Active,
                        Ok(_) => Verdict::Stalled,
                        Err(error) => {
                            tracing::warn!(%tenant, notification_id = %id, %error, "could not read the notification's event; the next run tries again");
                            report.left += 1;
                            continue;
                        }
                    }
                }
                verdict => verdict,
            };
            match verdict {
                Verdict::Active | Verdict::StalledIfQueueEmpty => {}
                Verdict::Settled => {
                    if let Err(error) = self.activity.forget_settled(tenant, id).await {
                        tracing::warn!(%tenant, notification_id = %id, %error, "could not unindex a settled notification");
                    }
                }
                Verdict::Stalled => match self.dead_letter(&notification, now).await {
                    Ok(true) => report.dead_lettered += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%tenant, notification_id = %id, %error, "could not dead-letter a stalled notification; the next run tries again");
                        report.left += 1;
                    }
                },
            }
        }
        Ok(report)
    }

    /// Counted once per channel and run, and only when a verdict hangs on it.
    async fn queue_is_empty(
        &self,
        channel: Channel,
        known: &mut HashMap<Channel, bool>,
    ) -> Result<bool, BackendError> {
        if let Some(empty) = known.get(&channel) {
            return Ok(*empty);
        }
        let empty = self.depth.messages(channel).await? == 0;
        known.insert(channel, empty);
        Ok(empty)
    }

    /// The DLQ message first, then the status: a crash in between leaves a spare message, never a
    /// `dead_lettered` notification with nothing to redrive.
    async fn dead_letter(&self, notification: &Notification, now: Timestamp) -> Result<bool, BackendError> {
        let envelope = Envelope::for_notification(notification);
        self.dead_letters
            .enqueue(notification.channel, std::slice::from_ref(&envelope))
            .await?;
        let mut detail = format!(
            "stalled {}: nothing delivered it since {} and no message for it was left on its queue; a message \
             for it is in the DLQ, to be redriven",
            notification.status,
            notification.updated_at.to_rfc3339()
        );
        if notification.status == NotificationStatus::Sending {
            // Its holder died, or could not record what it did: after the send, perhaps.
            detail.push_str(
                " (it was being sent: the provider may have it already, and a redrive may send it twice; the \
                 channel function's log says whether the send went out)",
            );
        }
        let marked = self
            .activity
            .dead_letter_stalled(notification, now, &detail)
            .await?;
        if marked {
            record::notification(
                notification.channel,
                NotificationOutcome::DeadLettered,
                Some(reason::STALLED),
            );
            tracing::warn!(
                tenant = %notification.tenant,
                notification_id = %notification.id,
                channel = %notification.channel,
                status = %notification.status,
                "stalled notification dead-lettered; redrive its DLQ to deliver it"
            );
        }
        Ok(marked)
    }
}

#[cfg(test)]
mod tests;
