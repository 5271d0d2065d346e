//! What a test reads back from the in-memory activity table to audit it whole: items no port reads.

use super::{MemoryActivityStore, lock};
use crate::domain::event::IdempotencyRecord;
use crate::domain::{EventId, TenantId};

impl MemoryActivityStore {
    /// The idempotency record stored under `key`, expired or not.
    pub fn idempotency_record(&self, tenant: &TenantId, key: &str) -> Option<IdempotencyRecord> {
        lock(&self.tables)
            .idempotency
            .get(&(tenant.clone(), key.to_owned()))
            .cloned()
    }

    /// Every idempotency key of `tenant`, sorted.
    pub fn idempotency_keys(&self, tenant: &TenantId) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.tables)
            .idempotency
            .keys()
            .filter(|(owner, _)| owner == tenant)
            .map(|(_, key)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Every event of `tenant`, by id.
    pub fn event_ids(&self, tenant: &TenantId) -> Vec<EventId> {
        let mut ids: Vec<EventId> = lock(&self.tables)
            .events
            .keys()
            .filter(|(owner, _)| owner == tenant)
            .map(|(_, id)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// How many notifications of `tenant` are stored.
    pub fn notification_count(&self, tenant: &TenantId) -> usize {
        lock(&self.tables)
            .notifications
            .keys()
            .filter(|(owner, _)| owner == tenant)
            .count()
    }
}
