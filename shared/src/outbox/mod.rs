//! The outbox: an accepted event's notifications reach their channel queues, whatever happens after the
//! transaction that accepted it committed.
//!
//! The event is written with `fanout_pending` (the key of a sparse index) and a lease held by the request
//! that wrote it. That request fans out at once; when it cannot (SQS failed, the process died, the answer of
//! its own write was lost), the event stays in the index. A replay of the same request finishes it if the
//! lease is free, and the sweeper ([`crate::sweeper`], on a schedule) finishes every event left past its lease.
//! Fanning out twice is harmless: the delivery loop claims each notification before sending it.

use crate::domain::notification::{Envelope, Notification};
use crate::domain::{Channel, EventId, TenantId, Timestamp};
use crate::ports::{ActivityStore, BackendError, NotificationQueue};
use crate::telemetry::record;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a request may hold an event's fan-out before another may take it over. Longer than the
/// ingest function's timeout, so a live request is never overtaken.
pub const FANOUT_LEASE: Duration = Duration::from_secs(30);
/// Events one sweep looks at, at most; the next sweep takes the rest.
pub const SWEEP_PAGE: u16 = 100;

/// What became of an attempt to finish an event's fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Its notifications are on their queues now.
    FannedOut,
    /// Someone else holds the lease (the first request is still on it), or it was finished meanwhile.
    NotOurs,
    /// The event is gone or was already fanned out.
    NothingPending,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Events found past their lease in the index.
    pub found: usize,
    /// Of those, fanned out by this sweep.
    pub recovered: usize,
    /// Of those, left for the next sweep: a failure, or no time left.
    pub left: usize,
}

#[derive(Debug)]
pub struct Outbox<A, Q> {
    activity: A,
    queue: Q,
}

impl<A: ActivityStore, Q: NotificationQueue> Outbox<A, Q> {
    pub fn new(activity: A, queue: Q) -> Self {
        Self { activity, queue }
    }

    pub fn activity(&self) -> &A {
        &self.activity
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// Puts every notification that needs delivering on its channel's queue, then marks the fan-out
    /// done. The caller holds the fan-out lease; on failure it is released, so the next replay or sweep
    /// can take the event at once.
    pub async fn fan_out(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        notifications: &[Notification],
    ) -> Result<(), BackendError> {
        let mut by_channel: BTreeMap<Channel, Vec<Envelope>> = BTreeMap::new();
        for notification in notifications.iter().filter(|n| n.status.needs_delivery()) {
            by_channel
                .entry(notification.channel)
                .or_default()
                .push(Envelope::for_notification(notification));
        }
        let sends = by_channel
            .iter()
            .map(|(channel, envelopes)| self.queue.enqueue(*channel, envelopes));
        // Every channel is tried, even after one failed: a send is not cut off mid-call, and the
        // notifications that did reach their queues are on their way before the sweeper's turn.
        let failed = futures::future::join_all(sends)
            .await
            .into_iter()
            .find_map(Result::err);
        if let Some(error) = failed {
            if let Err(release) = self.activity.release_fanout(tenant, event_id).await {
                tracing::warn!(%event_id, error = %release, "could not release the fan-out lease; it expires by itself");
            }
            return Err(error);
        }
        if let Err(error) = self.activity.finish_fanout(tenant, event_id).await {
            // Every message is on its queue; a stale flag only means a harmless second fan-out later.
            tracing::warn!(%event_id, %error, "fan-out done but not marked; consumers are idempotent");
        }
        Ok(())
    }

    /// Finishes an event's fan-out if it is unfinished and nobody holds its lease.
    pub async fn finish_abandoned(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        now: Timestamp,
    ) -> Result<Finish, BackendError> {
        let Some(event) = self.activity.event(tenant, event_id).await? else {
            return Ok(Finish::NothingPending);
        };
        if !event.fanout_pending {
            return Ok(Finish::NothingPending);
        }
        if !self
            .activity
            .claim_fanout(tenant, event_id, now, FANOUT_LEASE)
            .await?
        {
            return Ok(Finish::NotOurs);
        }
        let notifications = self
            .activity
            .notifications(tenant, &event.notification_ids)
            .await?;
        self.fan_out(tenant, event_id, &notifications).await?;
        Ok(Finish::FannedOut)
    }

    /// Finds events whose fan-out was left unfinished past its lease and finishes them, until `time_left`
    /// says there is no time for another. One small query when there is nothing to do.
    pub async fn sweep(
        &self,
        now: Timestamp,
        time_left: impl Fn() -> Duration,
    ) -> Result<SweepReport, BackendError> {
        let lease_millis = i64::try_from(FANOUT_LEASE.as_millis()).unwrap_or(i64::MAX);
        let received_before = Timestamp::from_millis(now.millis().saturating_sub(lease_millis));
        let pending = self.activity.pending_fanouts(received_before, SWEEP_PAGE).await?;
        let mut report = SweepReport {
            found: pending.len(),
            ..SweepReport::default()
        };
        for (tenant, event_id) in &pending {
            // One finish is a few requests; stop while there is time to answer.
            if time_left() < Duration::from_secs(3) {
                report.left += 1;
                continue;
            }
            match self.finish_abandoned(tenant, event_id, now).await {
                Ok(Finish::FannedOut) => {
                    tracing::info!(%tenant, %event_id, "recovered a fan-out left unfinished");
                    record::fanout_recovered();
                    report.recovered += 1;
                }
                Ok(Finish::NotOurs | Finish::NothingPending) => {}
                Err(error) => {
                    tracing::warn!(%tenant, %event_id, %error, "could not finish a fan-out; the next sweep tries again");
                    report.left += 1;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
