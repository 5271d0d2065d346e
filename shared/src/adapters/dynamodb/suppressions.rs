//! Each tenant's suppression list in the config table: `TENANT#<t>` / `SUPPRESSED#<address>`, one item per
//! address, added with a conditional put so the first cause is the one kept.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Item, ItemExt, corrupt, key, n, put_if_absent, s};
use crate::domain::suppression::{Suppression, SuppressionReason, suppression_key};
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, SuppressionList};

const SK_PREFIX: &str = "SUPPRESSED#";

fn suppression_item_key(tenant: &TenantId, address: &str) -> Item {
    key(
        tenant_pk(tenant),
        format!("{SK_PREFIX}{}", suppression_key(address)),
    )
}

fn suppression_from(item: &Item) -> Result<Suppression, BackendError> {
    let reason = item.str("reason")?;
    Ok(Suppression {
        address: item.str("address")?.to_owned(),
        reason: SuppressionReason::parse(reason)
            .ok_or_else(|| corrupt("read", format!("reason {reason}")))?,
        detail: item.opt_str("detail").unwrap_or_default().to_owned(),
        notification_id: item.opt_str("notification_id").and_then(NotificationId::parse),
        created_at: Timestamp::from_millis(item.int("created_at")?),
    })
}

impl SuppressionList for DynamoConfigStore {
    async fn suppress(&self, tenant: &TenantId, entry: &Suppression) -> Result<bool, BackendError> {
        let mut item = suppression_item_key(tenant, &entry.address);
        item.insert("address".into(), s(suppression_key(&entry.address)));
        item.insert("reason".into(), s(entry.reason.as_str()));
        item.insert("detail".into(), s(&entry.detail));
        item.insert("created_at".into(), n(entry.created_at.millis()));
        if let Some(id) = &entry.notification_id {
            item.insert("notification_id".into(), s(id.as_str()));
        }
        put_if_absent(&self.client, &self.table, item, "PutItem(suppression)").await
    }

    async fn suppression(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> Result<Option<Suppression>, BackendError> {
        let item = self
            .get("GetItem(suppression)", suppression_item_key(tenant, address))
            .await?;
        item.as_ref().map(suppression_from).transpose()
    }

    async fn suppressions(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Suppression>, BackendError> {
        let (items, next) = self
            .query_prefix("Query(suppressions)", tenant, SK_PREFIX, page)
            .await?;
        Ok(Page {
            items: items.iter().map(suppression_from).collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn unsuppress(&self, tenant: &TenantId, address: &str) -> Result<bool, BackendError> {
        self.delete("DeleteItem(suppression)", suppression_item_key(tenant, address))
            .await
    }
}
