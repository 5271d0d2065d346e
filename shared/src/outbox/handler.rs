//! The sweeper function's handler: each scheduled event runs one sweep of the outbox, within the
//! invocation's deadline.

use super::{Outbox, SweepReport};
use crate::domain::Timestamp;
use crate::ports::{ActivityStore, NotificationQueue};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time left before `deadline` (milliseconds since the epoch, as Lambda gives it).
pub fn time_left(deadline_millis: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_millis).saturating_sub(now)
}

impl<A: ActivityStore, Q: NotificationQueue> Outbox<A, Q> {
    /// The Lambda handler. A failed query fails the invocation (the schedule's next one tries again); a
    /// failure to finish one event is only logged, and that event is left for the next sweep.
    pub async fn handle_schedule(
        &self,
        event: LambdaEvent<EventBridgeEvent<Value>>,
    ) -> Result<Value, lambda_runtime::Error> {
        let deadline = event.context.deadline;
        let report = self.sweep(Timestamp::now(), || time_left(deadline)).await?;
        let SweepReport {
            found,
            recovered,
            left,
        } = report;
        if found > 0 {
            tracing::info!(found, recovered, left, "outbox swept");
        }
        Ok(json!({"found": found, "recovered": recovered, "left": left}))
    }
}
