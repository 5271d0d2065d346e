//! Rules in memory, with the config table's limit of rules per event type (decision 3). One lock stands for
//! the adapter's transaction of rule and counter, so concurrent puts cannot overshoot the limit here either.

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::rule::{MAX_RULES_PER_EVENT_TYPE, Rule, RuleSpec};
use crate::domain::{FieldError, TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, RuleStore, Saved, WriteError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Failpoints by operation name (`"rules_for_event"`, `"put_rule"`, …).
#[derive(Debug, Default)]
pub struct MemoryRuleStore {
    /// Per tenant, by id: the table's partition and sort key (its `by_event` index orders by id too).
    rules: Mutex<HashMap<TenantId, BTreeMap<String, Rule>>>,
    pub failpoints: Failpoints,
}

impl RuleStore for MemoryRuleStore {
    async fn put_rule(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &RuleSpec,
        now: Timestamp,
    ) -> Result<Saved, WriteError> {
        let fault = before_write(&self.failpoints, "put_rule").await?;
        let saved = {
            let mut tenants = lock(&self.rules);
            let rules = tenants.entry(tenant.clone()).or_default();
            let old = rules.get(id);
            // Only a rule joining an event type counts against that type's limit, as the adapter's counter.
            let joins = old.is_none_or(|old| old.spec.event != spec.event);
            let of_event = rules
                .values()
                .filter(|rule| rule.spec.event == spec.event)
                .count();
            if joins && of_event >= MAX_RULES_PER_EVENT_TYPE {
                return Err(WriteError::Invalid(FieldError::new(
                    "/event",
                    format!(
                        "event type {} already has {MAX_RULES_PER_EVENT_TYPE} rules",
                        spec.event
                    ),
                )));
            }
            let (created_at, saved) =
                old.map_or((now, Saved::Created), |old| (old.created_at, Saved::Replaced));
            rules.insert(
                id.to_owned(),
                Rule {
                    id: id.to_owned(),
                    spec: spec.clone(),
                    created_at,
                    updated_at: now,
                },
            );
            saved
        };
        after_write("put_rule", fault)?;
        Ok(saved)
    }

    async fn rule(&self, tenant: &TenantId, id: &str) -> Result<Option<Rule>, BackendError> {
        before_read(&self.failpoints, "rule").await?;
        Ok(lock(&self.rules)
            .get(tenant)
            .and_then(|rules| rules.get(id))
            .cloned())
    }

    /// One page in id order; `after` is the last id of the previous page.
    async fn list_rules(
        &self,
        tenant: &TenantId,
        event: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Rule>, BackendError> {
        before_read(&self.failpoints, "list_rules").await?;
        let mut items: Vec<Rule> = lock(&self.rules)
            .get(tenant)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|rule| {
                event.is_none_or(|event| rule.spec.event == event)
                    && page.after.as_ref().is_none_or(|after| &rule.id > after)
            })
            .cloned()
            .collect();
        let limit = usize::from(page.limit.max(1));
        let next = (items.len() > limit).then(|| items[limit - 1].id.clone());
        items.truncate(limit);
        Ok(Page { items, next })
    }

    async fn rules_for_event(&self, tenant: &TenantId, event: &str) -> Result<Vec<Rule>, BackendError> {
        before_read(&self.failpoints, "rules_for_event").await?;
        Ok(lock(&self.rules)
            .get(tenant)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|rule| rule.spec.event == event)
            .cloned()
            .collect())
    }

    async fn delete_rule(&self, tenant: &TenantId, id: &str) -> Result<bool, WriteError> {
        let fault = before_write(&self.failpoints, "delete_rule").await?;
        let existed = lock(&self.rules)
            .get_mut(tenant)
            .and_then(|rules| rules.remove(id))
            .is_some();
        after_write("delete_rule", fault)?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn spec(event: &str) -> RuleSpec {
        RuleSpec::from_json(&json!({"event": event, "channel": "email", "template": "welcome"})).unwrap()
    }

    #[tokio::test]
    async fn an_event_type_takes_at_most_its_limit_of_rules_and_a_move_counts_against_the_new_type() {
        let store = MemoryRuleStore::default();
        let acme = TenantId::new("acme");
        let now = Timestamp::now();
        for n in 0..MAX_RULES_PER_EVENT_TYPE {
            let saved = store
                .put_rule(&acme, &format!("r{n:02}"), &spec("full"), now)
                .await;
            assert_eq!(saved.unwrap(), Saved::Created);
        }
        let over = store.put_rule(&acme, "one-more", &spec("full"), now).await;
        assert!(matches!(over, Err(WriteError::Invalid(_))), "{over:?}");
        store
            .put_rule(&acme, "elsewhere", &spec("other"), now)
            .await
            .unwrap();
        let moved = store.put_rule(&acme, "elsewhere", &spec("full"), now).await;
        assert!(matches!(moved, Err(WriteError::Invalid(_))), "{moved:?}");
        let replaced = store.put_rule(&acme, "r00", &spec("full"), now).await.unwrap();
        assert_eq!(
            replaced,
            Saved::Replaced,
            "a rule already of the type does not count twice"
        );
        let other_tenant = store
            .put_rule(&TenantId::new("globex"), "r", &spec("full"), now)
            .await;
        assert_eq!(other_tenant.unwrap(), Saved::Created, "the limit is per tenant");

        assert!(store.delete_rule(&acme, "r00").await.unwrap());
        assert!(!store.delete_rule(&acme, "r00").await.unwrap());
        store
            .put_rule(&acme, "one-more", &spec("full"), now)
            .await
            .unwrap();
        assert_eq!(
            store.rules_for_event(&acme, "full").await.unwrap().len(),
            MAX_RULES_PER_EVENT_TYPE
        );
    }

    #[tokio::test]
    async fn rules_list_by_id_per_event_type_and_keep_their_creation_time() {
        let store = MemoryRuleStore::default();
        let acme = TenantId::new("acme");
        let first = Timestamp::from_millis(1_000);
        for (id, event) in [("c", "signup"), ("a", "signup"), ("b", "order")] {
            store.put_rule(&acme, id, &spec(event), first).await.unwrap();
        }
        let later = Timestamp::from_millis(2_000);
        store.put_rule(&acme, "a", &spec("signup"), later).await.unwrap();
        let a = store.rule(&acme, "a").await.unwrap().unwrap();
        assert_eq!((a.created_at, a.updated_at), (first, later));

        let signup: Vec<_> = store
            .rules_for_event(&acme, "signup")
            .await
            .unwrap()
            .into_iter()
            .map(|rule| rule.id)
            .collect();
        assert_eq!(signup, ["a", "c"]);
        let page = PageRequest {
            limit: 2,
            after: None,
        };
        let all = store.list_rules(&acme, None, &page).await.unwrap();
        let ids: Vec<_> = all.items.iter().map(|rule| rule.id.as_str()).collect();
        assert_eq!((ids, all.next.as_deref()), (vec!["a", "b"], Some("b")));
        let by_event = store.list_rules(&acme, Some("order"), &page).await.unwrap();
        assert_eq!((by_event.items.len(), by_event.next), (1, None));
    }
}
