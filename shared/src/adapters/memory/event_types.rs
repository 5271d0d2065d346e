//! Event types in memory, as the config table keeps them: one item per tenant and name.

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::event_type::{EventType, EventTypeSpec};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, EventTypeStore, Page, PageRequest, Saved};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Failpoints by operation name (`"event_type"`, `"put_event_type"`, …).
#[derive(Debug, Default)]
pub struct MemoryEventTypeStore {
    /// Per tenant, by name: the table's partition and sort key, so listings page the same way.
    types: Mutex<HashMap<TenantId, BTreeMap<String, EventType>>>,
    pub failpoints: Failpoints,
}

impl EventTypeStore for MemoryEventTypeStore {
    /// An upsert that keeps `created_at`, and says atomically whether it created, as the adapter's update.
    async fn put_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &EventTypeSpec,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        let fault = before_write(&self.failpoints, "put_event_type").await?;
        let mut types = lock(&self.types);
        let saved = match types.entry(tenant.clone()).or_default().entry(name.to_owned()) {
            Entry::Occupied(mut stored) => {
                let stored = stored.get_mut();
                stored.spec = spec.clone();
                stored.updated_at = now;
                Saved::Replaced
            }
            Entry::Vacant(slot) => {
                slot.insert(EventType {
                    name: name.to_owned(),
                    spec: spec.clone(),
                    created_at: now,
                    updated_at: now,
                });
                Saved::Created
            }
        };
        drop(types);
        after_write("put_event_type", fault)?;
        Ok(saved)
    }

    async fn event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>, BackendError> {
        before_read(&self.failpoints, "event_type").await?;
        Ok(lock(&self.types)
            .get(tenant)
            .and_then(|types| types.get(name))
            .cloned())
    }

    /// One page in name order; `after` is the last name of the previous page.
    async fn list_event_types(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<EventType>, BackendError> {
        before_read(&self.failpoints, "list_event_types").await?;
        let mut items: Vec<EventType> = lock(&self.types)
            .get(tenant)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|event_type| page.after.as_ref().is_none_or(|after| &event_type.name > after))
            .cloned()
            .collect();
        let limit = usize::from(page.limit.max(1));
        let next = (items.len() > limit).then(|| items[limit - 1].name.clone());
        items.truncate(limit);
        Ok(Page { items, next })
    }

    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "delete_event_type").await?;
        let existed = lock(&self.types)
            .get_mut(tenant)
            .and_then(|types| types.remove(name))
            .is_some();
        after_write("delete_event_type", fault)?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::adapters::memory::Fault;
    use serde_json::json;

    fn spec(description: &str) -> EventTypeSpec {
        EventTypeSpec::from_json(&json!({ "description": description })).unwrap()
    }

    #[tokio::test]
    async fn a_second_put_replaces_and_keeps_its_creation_time() {
        let store = MemoryEventTypeStore::default();
        let acme = TenantId::new("acme");
        let first = Timestamp::from_millis(1_000);
        let later = Timestamp::from_millis(2_000);
        assert_eq!(
            store
                .put_event_type(&acme, "signup", &spec("one"), first)
                .await
                .unwrap(),
            Saved::Created
        );
        assert_eq!(
            store
                .put_event_type(&acme, "signup", &spec("two"), later)
                .await
                .unwrap(),
            Saved::Replaced
        );
        let stored = store.event_type(&acme, "signup").await.unwrap().unwrap();
        assert_eq!(stored.spec.description.as_deref(), Some("two"));
        assert_eq!((stored.created_at, stored.updated_at), (first, later));
        assert!(
            store
                .event_type(&TenantId::new("other"), "signup")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn listing_pages_by_name_within_the_tenant_and_deleting_answers_whether_it_existed() {
        let store = MemoryEventTypeStore::default();
        let acme = TenantId::new("acme");
        let now = Timestamp::now();
        for name in ["c", "a", "b"] {
            store.put_event_type(&acme, name, &spec(name), now).await.unwrap();
        }
        store
            .put_event_type(&TenantId::new("other"), "z", &spec("z"), now)
            .await
            .unwrap();
        let mut page = PageRequest {
            limit: 2,
            after: None,
        };
        let first = store.list_event_types(&acme, &page).await.unwrap();
        let names: Vec<_> = first.items.iter().map(|t| t.name.as_str()).collect();
        assert_eq!((names, first.next.as_deref()), (vec!["a", "b"], Some("b")));
        page.after = first.next;
        let second = store.list_event_types(&acme, &page).await.unwrap();
        assert_eq!((second.items.len(), second.next), (1, None));

        store
            .failpoints
            .set("delete_event_type", Fault::TimeOutAfterCommit, 1);
        assert!(store.delete_event_type(&acme, "a").await.is_err());
        assert!(
            !store.delete_event_type(&acme, "a").await.unwrap(),
            "the timed-out delete took effect"
        );
    }
}
