//! The sweeper function: on a schedule, finishes every fan-out left unfinished past its lease (the
//! outbox) and dead-letters every notification nothing will deliver any more (the reconciler), within the
//! invocation's deadline.

use crate::domain::Timestamp;
use crate::outbox::{Outbox, SweepReport};
use crate::ports::{ActivityStore, NotificationQueue, QueueDepth, UnsettledNotifications};
use crate::reconcile::{ReconcileReport, Reconciler};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time left before `deadline` (milliseconds since the epoch, as Lambda gives it; 0 when unknown).
pub fn time_left(deadline_millis: u64) -> Duration {
    if deadline_millis == 0 {
        return Duration::MAX;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_millis).saturating_sub(now)
}

#[derive(Debug)]
pub struct Sweeper<A, Q, R> {
    pub outbox: Outbox<A, Q>,
    pub reconciler: R,
}

impl<A, Q, RA, RQ, RD> Sweeper<A, Q, Reconciler<RA, RQ, RD>>
where
    A: ActivityStore,
    Q: NotificationQueue,
    RA: ActivityStore + UnsettledNotifications,
    RQ: NotificationQueue,
    RD: QueueDepth,
{
    /// The Lambda handler. The fan-outs come first: a notification whose event was never fanned out is
    /// not stalled, only late. A failed query fails the invocation (the schedule's next one tries again);
    /// a failure on one event or notification is only logged, and it is left for the next run.
    pub async fn handle_schedule(
        &self,
        event: LambdaEvent<EventBridgeEvent<Value>>,
    ) -> Result<Value, lambda_runtime::Error> {
        let deadline = event.context.deadline;
        let swept = self.outbox.sweep(Timestamp::now(), || time_left(deadline)).await;
        let reconciled = self
            .reconciler
            .reconcile(Timestamp::now(), || time_left(deadline))
            .await;
        let SweepReport {
            found,
            recovered,
            left,
        } = swept?;
        if found > 0 {
            tracing::info!(found, recovered, left, "outbox swept");
        }
        let ReconcileReport {
            overdue,
            dead_lettered,
            left: unreconciled,
        } = reconciled?;
        if overdue > 0 {
            tracing::info!(
                overdue,
                dead_lettered,
                left = unreconciled,
                "unsettled notifications reconciled"
            );
        }
        Ok(json!({
            "fanouts": {"found": found, "recovered": recovered, "left": left},
            "notifications": {"overdue": overdue, "dead_lettered": dead_lettered, "left": unreconciled},
        }))
    }
}
