//! Templates in memory: versions per name and locale, the newest live, as the config store keeps them.

use super::{Failpoints, Fault, injected, lock};
use crate::domain::template::{TemplateContent, TemplateHead, TemplateVersion};
use crate::domain::{Channel, TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, TemplateStore, WriteError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Debug)]
struct Named {
    channel: Channel,
    default_locale: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// Every version of every locale, by (locale, version).
    versions: BTreeMap<(String, u32), TemplateVersion>,
}

impl Named {
    fn head(&self, name: &str) -> TemplateHead {
        let mut live_versions = BTreeMap::new();
        for (locale, version) in self.versions.keys() {
            live_versions.insert(locale.clone(), *version);
        }
        TemplateHead {
            name: name.to_owned(),
            channel: self.channel,
            default_locale: self.default_locale.clone(),
            live_versions,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The stored name, created for `content` (its channel, its locale as the default) if it is new.
fn named<'a>(
    names: &'a mut HashMap<(TenantId, String), Named>,
    tenant: &TenantId,
    name: &str,
    content: &TemplateContent,
    now: Timestamp,
) -> &'a mut Named {
    names
        .entry((tenant.clone(), name.to_owned()))
        .or_insert_with(|| Named {
            channel: content.channel,
            default_locale: content.locale.clone(),
            created_at: now,
            updated_at: now,
            versions: BTreeMap::new(),
        })
}

/// The templates of the config table in memory. Failpoints by operation name (`"template_version"`, …);
/// `TimeOutAfterCommit` on a read is simply a failed read.
#[derive(Debug, Default)]
pub struct MemoryTemplateStore {
    names: Mutex<HashMap<(TenantId, String), Named>>,
    pub failpoints: Failpoints,
}

impl MemoryTemplateStore {
    /// Stores `content` as exactly `version` of `name`, for tests whose notifications pin a version that
    /// a run of `put_template` would not reach.
    pub fn insert(&self, tenant: &TenantId, name: &str, version: u32, content: TemplateContent) {
        let now = Timestamp::now();
        let mut names = lock(&self.names);
        let template = named(&mut names, tenant, name, &content, now);
        template.updated_at = now;
        template.versions.insert(
            (content.locale.clone(), version),
            TemplateVersion {
                name: name.to_owned(),
                version,
                content,
                created_at: now,
            },
        );
    }

    async fn check(&self, operation: &str) -> Result<(), BackendError> {
        match self.failpoints.take(operation) {
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Some(fault) => Err(injected(operation, fault)),
            None => Ok(()),
        }
    }
}

impl TemplateStore for MemoryTemplateStore {
    async fn put_template(
        &self,
        tenant: &TenantId,
        name: &str,
        content: &TemplateContent,
        now: Timestamp,
    ) -> Result<TemplateVersion, WriteError> {
        self.check("put_template").await?;
        let mut names = lock(&self.names);
        let template = named(&mut names, tenant, name, content, now);
        if template.channel != content.channel {
            return Err(WriteError::Conflict(format!(
                "template {name} is a {} template; a name belongs to one channel",
                template.channel
            )));
        }
        let version = template
            .versions
            .keys()
            .filter(|(locale, _)| *locale == content.locale)
            .map(|(_, version)| version + 1)
            .max()
            .unwrap_or(1);
        let stored = TemplateVersion {
            name: name.to_owned(),
            version,
            content: content.clone(),
            created_at: now,
        };
        template.updated_at = now;
        template
            .versions
            .insert((content.locale.clone(), version), stored.clone());
        Ok(stored)
    }

    async fn template_head(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<TemplateHead>, BackendError> {
        self.check("template_head").await?;
        Ok(lock(&self.names)
            .get(&(tenant.clone(), name.to_owned()))
            .map(|named| named.head(name)))
    }

    async fn template_version(
        &self,
        tenant: &TenantId,
        name: &str,
        locale: &str,
        version: u32,
    ) -> Result<Option<TemplateVersion>, BackendError> {
        self.check("template_version").await?;
        Ok(lock(&self.names)
            .get(&(tenant.clone(), name.to_owned()))
            .and_then(|named| named.versions.get(&(locale.to_owned(), version)))
            .cloned())
    }

    /// One page of heads in name order; `after` is the last name of the previous page.
    async fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<TemplateHead>, BackendError> {
        self.check("list_templates").await?;
        let names = lock(&self.names);
        let mut heads: Vec<TemplateHead> = names
            .iter()
            .filter(|((owner, name), _)| {
                owner == tenant && page.after.as_ref().is_none_or(|after| name > after)
            })
            .map(|((_, name), named)| named.head(name))
            .collect();
        heads.sort_by(|a, b| a.name.cmp(&b.name));
        let limit = usize::from(page.limit.max(1));
        let next = (heads.len() > limit).then(|| heads[limit - 1].name.clone());
        heads.truncate(limit);
        Ok(Page { items: heads, next })
    }

    async fn delete_template(&self, tenant: &TenantId, name: &str) -> Result<bool, BackendError> {
        self.check("delete_template").await?;
        Ok(lock(&self.names)
            .remove(&(tenant.clone(), name.to_owned()))
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn email(locale: &str, subject: &str) -> TemplateContent {
        TemplateContent::from_json(&json!({
            "channel": "email", "locale": locale, "subject": subject, "text": "hello"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn versions_count_per_locale_and_the_newest_is_live() {
        let store = MemoryTemplateStore::default();
        let tenant = TenantId::new("acme");
        let now = Timestamp::now();
        for (locale, subject) in [("en", "one"), ("en", "two"), ("fr", "un")] {
            store
                .put_template(&tenant, "welcome", &email(locale, subject), now)
                .await
                .unwrap();
        }
        let head = store.template_head(&tenant, "welcome").await.unwrap().unwrap();
        assert_eq!(
            head.live_versions,
            BTreeMap::from([("en".into(), 2), ("fr".into(), 1)])
        );
        assert_eq!(head.default_locale, "en");
        let first = store
            .template_version(&tenant, "welcome", "en", 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.content.subject.as_deref(), Some("one"));

        let sms = TemplateContent::from_json(&json!({"channel": "sms", "text": "hi"})).unwrap();
        let conflict = store.put_template(&tenant, "welcome", &sms, now).await;
        assert!(matches!(conflict, Err(WriteError::Conflict(_))), "{conflict:?}");
    }

    #[tokio::test]
    async fn listing_pages_by_name_and_deleting_frees_the_name() {
        let store = MemoryTemplateStore::default();
        let tenant = TenantId::new("acme");
        for name in ["c", "a", "b"] {
            store.insert(&tenant, name, 1, email("en", name));
        }
        store.insert(&TenantId::new("other"), "z", 1, email("en", "z"));
        let mut page = PageRequest {
            limit: 2,
            after: None,
        };
        let first = store.list_templates(&tenant, &page).await.unwrap();
        let names: Vec<_> = first.items.iter().map(|head| head.name.as_str()).collect();
        assert_eq!((names, first.next.as_deref()), (vec!["a", "b"], Some("b")));
        page.after = first.next;
        let second = store.list_templates(&tenant, &page).await.unwrap();
        assert_eq!(second.items.len(), 1);
        assert_eq!(second.next, None);

        assert!(store.delete_template(&tenant, "a").await.unwrap());
        assert!(!store.delete_template(&tenant, "a").await.unwrap());
        assert!(
            store
                .template_version(&tenant, "a", "en", 1)
                .await
                .unwrap()
                .is_none()
        );
    }
}
