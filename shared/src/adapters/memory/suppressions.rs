//! Suppression lists in memory, with the config table's semantics: the first cause of an address is kept,
//! addresses compare as `suppression_key` writes them, listings are in address order.

use super::{Failpoints, after_write, before_read, before_write, lock, page_after};
use crate::domain::TenantId;
use crate::domain::suppression::{Suppression, suppression_key};
use crate::ports::{BackendError, Page, PageRequest, SuppressionList};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Mutex;

/// Failpoints by operation name (`"suppress"`, `"suppression"`, `"suppressions"`, `"unsuppress"`).
#[derive(Debug, Default)]
pub struct MemorySuppressionList {
    entries: Mutex<BTreeMap<(String, String), Suppression>>,
    pub failpoints: Failpoints,
}

impl SuppressionList for MemorySuppressionList {
    async fn suppress(&self, tenant: &TenantId, entry: &Suppression) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "suppress").await?;
        let address = suppression_key(&entry.address);
        let added = {
            let mut entries = lock(&self.entries);
            let key = (tenant.to_string(), address.clone());
            match entries.entry(key) {
                Entry::Occupied(_) => false,
                Entry::Vacant(vacant) => {
                    vacant.insert(Suppression {
                        address,
                        ..entry.clone()
                    });
                    true
                }
            }
        };
        after_write("suppress", fault)?;
        Ok(added)
    }

    async fn suppression(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> Result<Option<Suppression>, BackendError> {
        before_read(&self.failpoints, "suppression").await?;
        Ok(lock(&self.entries)
            .get(&(tenant.to_string(), suppression_key(address)))
            .cloned())
    }

    async fn suppressions(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Suppression>, BackendError> {
        before_read(&self.failpoints, "suppressions").await?;
        let tenant = tenant.to_string();
        let entries = lock(&self.entries);
        let mine = entries
            .iter()
            .filter(|((owner, _), _)| *owner == tenant)
            .map(|((_, address), entry)| (address.clone(), entry.clone()));
        Ok(page_after(mine, page))
    }

    async fn unsuppress(&self, tenant: &TenantId, address: &str) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "unsuppress").await?;
        let removed = lock(&self.entries)
            .remove(&(tenant.to_string(), suppression_key(address)))
            .is_some();
        after_write("unsuppress", fault)?;
        Ok(removed)
    }
}
