//! The notification log's indexes in memory: a sort of the tenant's notifications, in the log's order.

use super::{MemoryActivityStore, before_read, lock};
use crate::domain::log_query::{LogPosition, LogWindow, page_after};
use crate::domain::{NotificationId, TenantId};
use crate::ports::{BackendError, NotificationLog, Page};

impl NotificationLog for MemoryActivityStore {
    async fn log_page(
        &self,
        tenant: &TenantId,
        window: &LogWindow,
        limit: u16,
        after: Option<&str>,
    ) -> Result<Page<NotificationId>, BackendError> {
        before_read(&self.failpoints, "log_page").await?;
        let after = after.and_then(LogPosition::decode);
        let positions: Vec<LogPosition> = lock(&self.tables)
            .notifications
            .iter()
            .filter(|((owner, _), _)| owner == tenant)
            .map(|(_, entry)| &entry.notification)
            .filter(|notification| window.contains(notification))
            .map(LogPosition::of)
            .collect();
        let (items, next) = page_after(positions, after.as_ref(), limit);
        Ok(Page { items, next })
    }
}
