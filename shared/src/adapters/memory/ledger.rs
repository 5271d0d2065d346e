//! The delivery ledger over the in-memory activity table, with the DynamoDB adapter's conditions
//! (`adapters/dynamodb/ledger.rs`): one lock stands for the conditional update and the transaction, so a
//! claim or a settle is as atomic as there.

use super::{MemoryActivityStore, NotificationEntry, after_write, before_write, lock};
use crate::domain::delivery::{Attempt, EARLY_CLAIM_TOLERANCE};
use crate::domain::notification::{Notification, NotificationStatus};
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, Claim, DeliveryLedger, FeedbackLedger, Settlement};
use std::time::Duration;

/// Statuses a delivery may claim from (besides `sending` with an expired lease).
const CLAIMABLE: [NotificationStatus; 3] = [
    NotificationStatus::Queued,
    NotificationStatus::Retrying,
    NotificationStatus::DeadLettered,
];

impl MemoryActivityStore {
    /// What a claim finds and does, under the table's lock.
    fn claim_entry(entry: &mut NotificationEntry, now: Timestamp, lease: Duration) -> Claim {
        let status = entry.notification.status;
        let lease_ran_out = entry.lease_until.is_some_and(|until| until < now);
        let tolerance = i64::try_from(EARLY_CLAIM_TOLERANCE.as_millis()).unwrap_or(i64::MAX);
        let not_due_until = entry.notification.next_attempt_at.filter(|due| {
            status == NotificationStatus::Retrying && due.millis() > now.millis().saturating_add(tolerance)
        });
        if let Some(due) = not_due_until {
            let wait = due.millis().saturating_sub(now.millis());
            return Claim::Busy {
                lease_remaining: Duration::from_millis(u64::try_from(wait).unwrap_or(0)),
            };
        }
        if CLAIMABLE.contains(&status) || (status == NotificationStatus::Sending && lease_ran_out) {
            let lease_millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            entry.lease_until = Some(Timestamp::from_millis(now.millis().saturating_add(lease_millis)));
            entry.attempts = entry.attempts.saturating_add(1);
            entry.notification.status = NotificationStatus::Sending;
            entry.notification.updated_at = now;
            return Claim::Claimed {
                notification: Box::new(entry.notification.clone()),
                attempt: entry.attempts,
            };
        }
        if status != NotificationStatus::Sending {
            return Claim::Settled(status);
        }
        let remaining = entry
            .lease_until
            .map_or(0, |until| until.millis().saturating_sub(now.millis()))
            .max(0);
        Claim::Busy {
            lease_remaining: Duration::from_millis(u64::try_from(remaining).unwrap_or(0)),
        }
    }

    /// The settle transaction: the attempt record (written once) and the fenced status update.
    fn settle_entry(
        entry: Option<&mut NotificationEntry>,
        attempt: &Attempt,
        settlement: &Settlement,
    ) -> bool {
        let Some(entry) = entry else {
            // The record alone would pass its condition; the update's condition fails on a missing item.
            return false;
        };
        if entry.records.contains_key(&attempt.number) {
            // Only the holder of attempt N writes record N, and only here: this settle already committed.
            return true;
        }
        if entry.notification.status != NotificationStatus::Sending || entry.attempts != attempt.number {
            return false;
        }
        entry.records.insert(attempt.number, attempt.clone());
        entry.lease_until = None;
        let notification = &mut entry.notification;
        notification.status = settlement.status;
        notification.updated_at = attempt.at;
        notification.reason.clone_from(&settlement.reason);
        notification.detail.clone_from(&settlement.detail);
        notification.next_attempt_at = settlement.next_attempt_at;
        notification.failures = settlement.failures;
        // A provider id or send time, once recorded, stays (as the DynamoDB update leaves them).
        if settlement.provider_message_id.is_some() {
            notification
                .provider_message_id
                .clone_from(&settlement.provider_message_id);
        }
        if settlement.status == NotificationStatus::Sent {
            notification.sent_at = Some(attempt.at);
        }
        true
    }

    /// The claim's lease as stored, for tests that check what a claim left behind.
    pub fn lease_until(&self, tenant: &TenantId, id: &NotificationId) -> Option<Timestamp> {
        lock(&self.tables)
            .notifications
            .get(&(tenant.clone(), id.clone()))
            .and_then(|entry| entry.lease_until)
    }
}

impl DeliveryLedger for MemoryActivityStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Claim, BackendError> {
        let fault = before_write(&self.failpoints, "claim").await?;
        let claim = {
            let mut tables = lock(&self.tables);
            match tables.notifications.get_mut(&(tenant.clone(), id.clone())) {
                Some(entry) => Self::claim_entry(entry, now, lease),
                None => Claim::Missing,
            }
        };
        after_write("claim", fault).map(|()| claim)
    }

    async fn settle(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        attempt: &Attempt,
        settlement: &Settlement,
        _expires_at: Timestamp,
    ) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "settle").await?;
        let settled = {
            let mut tables = lock(&self.tables);
            let entry = tables.notifications.get_mut(&(tenant.clone(), id.clone()));
            Self::settle_entry(entry, attempt, settlement)
        };
        after_write("settle", fault).map(|()| settled)
    }

    async fn notification_with_attempts(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
    ) -> Result<Option<(Notification, Vec<Attempt>)>, BackendError> {
        before_write(&self.failpoints, "notification_with_attempts").await?;
        Ok(lock(&self.tables)
            .notifications
            .get(&(tenant.clone(), id.clone()))
            .map(|entry| {
                (
                    entry.notification.clone(),
                    entry.records.values().cloned().collect(),
                )
            }))
    }
}

impl FeedbackLedger for MemoryActivityStore {
    async fn record_feedback(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        status: NotificationStatus,
        reason: Option<&str>,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "record_feedback").await?;
        let recorded = {
            let mut tables = lock(&self.tables);
            let entry = tables.notifications.get_mut(&(tenant.clone(), id.clone()));
            match (entry, status.after_feedback_from()) {
                (Some(entry), Some(from)) if from.contains(&entry.notification.status) => {
                    let notification = &mut entry.notification;
                    notification.status = status;
                    notification.detail = Some(detail.to_owned());
                    notification.reason = reason.map(str::to_owned);
                    notification.updated_at = now;
                    true
                }
                _ => false,
            }
        };
        after_write("record_feedback", fault).map(|()| recorded)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::adapters::memory::Fault;
    use crate::domain::Channel;
    use crate::domain::delivery::AttemptOutcome;
    use crate::ports::ActivityStore;
    use crate::test_fixtures::acceptance;

    const LEASE: Duration = Duration::from_secs(60);

    async fn stored() -> (MemoryActivityStore, TenantId, NotificationId) {
        let store = MemoryActivityStore::default();
        let accepted = acceptance("acme", None, &[Channel::Email]);
        store.record_acceptance(&accepted, LEASE).await.unwrap();
        let notification = &accepted.notifications[0];
        (store, notification.tenant.clone(), notification.id.clone())
    }

    fn attempt(number: u32, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            number,
            at: Timestamp::now(),
            outcome,
            error: None,
            duration_ms: 1,
            provider_message_id: Some(format!("provider-{number}")),
        }
    }

    fn sent() -> Settlement {
        Settlement {
            status: NotificationStatus::Sent,
            reason: None,
            detail: None,
            provider_message_id: Some("provider-1".into()),
            next_attempt_at: None,
            failures: 0,
        }
    }

    fn later(seconds: i64) -> Timestamp {
        Timestamp::now().plus_seconds(seconds)
    }

    #[tokio::test]
    async fn a_claim_takes_a_lease_and_numbers_the_attempt_and_a_live_lease_keeps_others_out() {
        let (store, tenant, id) = stored().await;
        let now = Timestamp::now();

        let Claim::Claimed {
            notification,
            attempt,
        } = store.claim(&tenant, &id, now, LEASE).await.unwrap()
        else {
            panic!("a queued notification is claimable");
        };
        assert_eq!((notification.status, attempt), (NotificationStatus::Sending, 1));
        assert_eq!(store.lease_until(&tenant, &id), Some(now.plus_seconds(60)));

        let Claim::Busy { lease_remaining } = store
            .claim(&tenant, &id, now.plus_seconds(20), LEASE)
            .await
            .unwrap()
        else {
            panic!("a live lease is busy");
        };
        assert_eq!(lease_remaining, Duration::from_secs(40));

        let taken_over = store.claim(&tenant, &id, later(61), LEASE).await.unwrap();
        assert!(
            matches!(taken_over, Claim::Claimed { attempt: 2, .. }),
            "a lease that ran out is taken over: {taken_over:?}"
        );
    }

    #[tokio::test]
    async fn a_settle_is_fenced_by_its_attempt_and_recorded_once() {
        let (store, tenant, id) = stored().await;
        store.claim(&tenant, &id, Timestamp::now(), LEASE).await.unwrap();
        store.claim(&tenant, &id, later(61), LEASE).await.unwrap();

        let stale = store
            .settle(&tenant, &id, &attempt(1, AttemptOutcome::Sent), &sent(), later(1))
            .await
            .unwrap();
        assert!(!stale, "attempt 1 lost its claim to attempt 2");

        let record = attempt(2, AttemptOutcome::Sent);
        assert!(
            store
                .settle(&tenant, &id, &record, &sent(), later(1))
                .await
                .unwrap()
        );
        assert!(
            store
                .settle(&tenant, &id, &record, &sent(), later(1))
                .await
                .unwrap(),
            "the same settle again meets its own record: it counts as recorded"
        );

        let (notification, attempts) = store
            .notification_with_attempts(&tenant, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(notification.status, NotificationStatus::Sent);
        assert_eq!(notification.provider_message_id.as_deref(), Some("provider-1"));
        assert_eq!(notification.sent_at, Some(record.at));
        assert_eq!(attempts, vec![record]);
        assert_eq!(store.lease_until(&tenant, &id), None);
        assert_eq!(
            store.claim(&tenant, &id, later(120), LEASE).await.unwrap(),
            Claim::Settled(NotificationStatus::Sent)
        );
    }

    #[tokio::test]
    async fn failpoints_fail_before_or_after_the_write() {
        let (store, tenant, id) = stored().await;
        store.failpoints.set("claim", Fault::Fail, 1);
        assert!(store.claim(&tenant, &id, Timestamp::now(), LEASE).await.is_err());
        assert_eq!(
            store.lease_until(&tenant, &id),
            None,
            "a failed claim holds nothing"
        );

        store.failpoints.set("claim", Fault::TimeOutAfterCommit, 1);
        assert!(store.claim(&tenant, &id, Timestamp::now(), LEASE).await.is_err());
        assert!(store.lease_until(&tenant, &id).is_some(), "the claim took effect");

        store
            .failpoints
            .set("claim", Fault::Slow(Duration::from_millis(30)), 1);
        let started = std::time::Instant::now();
        let claim = store.claim(&tenant, &id, later(61), LEASE).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(matches!(claim, Claim::Claimed { attempt: 2, .. }), "{claim:?}");

        store.failpoints.set("settle", Fault::TimeOutAfterCommit, 1);
        let record = attempt(2, AttemptOutcome::Sent);
        assert!(
            store
                .settle(&tenant, &id, &record, &sent(), later(1))
                .await
                .is_err()
        );
        assert!(
            store
                .settle(&tenant, &id, &record, &sent(), later(1))
                .await
                .unwrap()
        );
        let (_, attempts) = store
            .notification_with_attempts(&tenant, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(attempts.len(), 1, "committed once");
    }

    #[tokio::test]
    async fn a_missing_notification_is_missing_and_cannot_be_settled() {
        let store = MemoryActivityStore::default();
        let tenant = TenantId::new("acme");
        let id = acceptance("acme", None, &[Channel::Sms]).notifications[0]
            .id
            .clone();
        assert_eq!(
            store.claim(&tenant, &id, Timestamp::now(), LEASE).await.unwrap(),
            Claim::Missing
        );
        let settled = store
            .settle(&tenant, &id, &attempt(1, AttemptOutcome::Sent), &sent(), later(1))
            .await
            .unwrap();
        assert!(!settled);
        assert!(
            store
                .notification_with_attempts(&tenant, &id)
                .await
                .unwrap()
                .is_none()
        );
    }
}
