//! The reconciler's ports in memory: the activity store's unsettled notifications, and queue depths a
//! test sets.

use super::{Failpoints, MemoryActivityStore, NotificationEntry, injected, lock};
use crate::domain::notification::{Notification, NotificationStatus, reason};
use crate::domain::{Channel, NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, QueueDepth, UnsettledNotifications};
use std::collections::HashMap;
use std::sync::Mutex;

impl MemoryActivityStore {
    /// Stores `notification` as given, as a delivery would have left it.
    pub fn put_notification(&self, notification: Notification) {
        let key = (notification.tenant.clone(), notification.id.clone());
        let mut tables = lock(&self.tables);
        match tables.notifications.get_mut(&key) {
            Some(entry) => entry.notification = notification,
            None => {
                tables
                    .notifications
                    .insert(key, NotificationEntry::new(notification));
            }
        }
    }
}

impl UnsettledNotifications for MemoryActivityStore {
    async fn overdue(
        &self,
        due_before: Timestamp,
        limit: u16,
    ) -> Result<Vec<(TenantId, NotificationId)>, BackendError> {
        self.check("overdue")?;
        let tables = lock(&self.tables);
        // As the index keeps it: due when created, or when its retry is due.
        let mut overdue: Vec<(Timestamp, &Notification)> = tables
            .notifications
            .values()
            .map(|entry| &entry.notification)
            .filter(|n| n.status.is_unsettled())
            .map(|n| (n.next_attempt_at.unwrap_or(n.created_at), n))
            .filter(|(due, _)| *due < due_before)
            .collect();
        overdue.sort_by_key(|(due, _)| *due);
        Ok(overdue
            .into_iter()
            .take(usize::from(limit))
            .map(|(_, n)| (n.tenant.clone(), n.id.clone()))
            .collect())
    }

    async fn dead_letter_stalled(
        &self,
        seen: &Notification,
        now: Timestamp,
        detail: &str,
    ) -> Result<bool, BackendError> {
        let fault = self.check("dead_letter_stalled")?;
        let mut tables = lock(&self.tables);
        let Some(entry) = tables
            .notifications
            .get_mut(&(seen.tenant.clone(), seen.id.clone()))
        else {
            return Ok(false);
        };
        let stored = &mut entry.notification;
        let unchanged = stored.status == seen.status && stored.updated_at == seen.updated_at;
        if unchanged {
            stored.status = NotificationStatus::DeadLettered;
            stored.reason = Some(reason::STALLED.to_owned());
            stored.detail = Some(detail.to_owned());
            stored.updated_at = now;
            stored.next_attempt_at = None;
            entry.lease_until = None;
        }
        match fault {
            Some(fault) => Err(injected("dead_letter_stalled", fault)),
            None => Ok(unchanged),
        }
    }

    async fn forget_settled(&self, _tenant: &TenantId, _id: &NotificationId) -> Result<(), BackendError> {
        // The in-memory index is the statuses themselves: a settled notification is never in it.
        self.check("forget_settled")?;
        Ok(())
    }
}

/// Channel queue depths, as a test sets them (0 unless set).
#[derive(Debug, Default)]
pub struct MemoryQueueDepth {
    depths: Mutex<HashMap<Channel, u64>>,
    asked: Mutex<Vec<Channel>>,
    pub failpoints: Failpoints,
}

impl MemoryQueueDepth {
    pub fn set(&self, channel: Channel, messages: u64) {
        lock(&self.depths).insert(channel, messages);
    }

    /// Every channel whose depth was asked, in order.
    pub fn asked(&self) -> Vec<Channel> {
        lock(&self.asked).clone()
    }
}

impl QueueDepth for MemoryQueueDepth {
    async fn messages(&self, channel: Channel) -> Result<u64, BackendError> {
        lock(&self.asked).push(channel);
        if let Some(fault) = self.failpoints.take("messages") {
            return Err(injected("messages", fault));
        }
        Ok(lock(&self.depths).get(&channel).copied().unwrap_or(0))
    }
}
