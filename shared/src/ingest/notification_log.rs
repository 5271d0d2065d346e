//! `GET /v1/notifications`: the tenant's notifications, newest first, each with its attempts.
//!
//! `?event_id=` reads the event's own list of notifications; every other query pages through the log's
//! indexes (a user's, or the whole tenant's, within `since`/`until`) and reads the notifications found.
//! `status` and `channel` are filters on what was read, so a filtered page may hold fewer than `limit`
//! notifications, or none, and still have a `next_cursor`: one request reads at most [`MAX_EXAMINED`].

use super::Ingest;
use super::IngestConfig;
use crate::domain::api_key::KeyScope;
use crate::domain::delivery::Attempt;
use crate::domain::log_query::{LogPosition, LogQuery, page_after};
use crate::domain::notification::Notification;
use crate::domain::{EventId, NotificationId, Problem, TenantId};
use crate::http::{HttpResponse, backend_failure, json_response, query_parameters};
use crate::ports::{
    ActivityStore, ApiKeyStore, BackendError, CursorKeyStore, DeliveryLedger, IngestBudgets, NotificationLog,
    NotificationQueue, Page,
};
use futures::StreamExt;
use lambda_http::Request;
use serde_json::{Value, json};

/// Notifications one request reads from the indexes to fill a filtered page.
const MAX_EXAMINED: usize = 500;
/// Notifications whose attempts are read at once.
const ATTEMPT_READS: usize = 16;

impl<K, C, A, Q> Ingest<K, C, A, Q>
where
    K: ApiKeyStore + CursorKeyStore,
    C: IngestConfig,
    A: ActivityStore + DeliveryLedger + IngestBudgets + NotificationLog,
    Q: NotificationQueue,
{
    pub(super) async fn list_notifications(&self, request: &Request) -> Result<HttpResponse, Problem> {
        let tenant = self.auth.authenticate(request, KeyScope::Full).await?;
        let query = LogQuery::parse(&query_parameters(request)).map_err(Problem::validation)?;
        // A cursor works only for the query it came from: the filters decide what its position means.
        let list = format!("notifications?{}", query.canonical());
        let cursor = self.cursors.signer(self.auth.keys()).await?;
        let page = cursor.page_request(request, &tenant, &list)?;
        let found = self
            .notification_log(&tenant, &query, page.limit, page.after.as_deref())
            .await
            .map_err(|error| backend_failure(&error))?;
        let next_cursor = found.next.map(|after| cursor.encode(&tenant, &list, &after));
        Ok(json_response(
            200,
            &json!({"items": found.items, "next_cursor": next_cursor}),
        ))
    }

    async fn notification_log(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
        limit: u16,
        after: Option<&str>,
    ) -> Result<Page<Value>, BackendError> {
        let ids = match &query.event_id {
            Some(event_id) => self.event_log(tenant, event_id, query, limit, after).await?,
            None => self.indexed_log(tenant, query, limit, after).await?,
        };
        let activity = self.activity();
        let items = futures::stream::iter(ids.items)
            .map(|id| async move { activity.notification_with_attempts(tenant, &id).await })
            .buffered(ATTEMPT_READS)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .filter_map(Result::transpose)
            .map(|found| found.map(|(notification, attempts)| with_attempts(&notification, &attempts)))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next: ids.next,
        })
    }

    /// One event's notifications: few (one per rule), so all are read and the page is cut from them.
    async fn event_log(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        query: &LogQuery,
        limit: u16,
        after: Option<&str>,
    ) -> Result<Page<NotificationId>, BackendError> {
        let activity = self.activity();
        let Some(event) = activity.event(tenant, event_id).await? else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let after = after.and_then(LogPosition::decode);
        let matching = activity
            .notifications(tenant, &event.notification_ids)
            .await?
            .iter()
            .filter(|notification| query.matches(notification))
            .map(LogPosition::of)
            .collect::<Vec<_>>();
        let (items, next) = page_after(matching, after.as_ref(), limit);
        Ok(Page { items, next })
    }

    /// Pages of the indexes until `limit` notifications pass the filters, the indexes end, or
    /// [`MAX_EXAMINED`] were read.
    async fn indexed_log(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
        limit: u16,
        after: Option<&str>,
    ) -> Result<Page<NotificationId>, BackendError> {
        let activity = self.activity();
        let window = query.window();
        let filtered = query.status.is_some() || query.channel.is_some();
        let mut matched = Vec::new();
        let mut examined = 0;
        let mut position = after.map(str::to_owned);
        loop {
            let room = limit.saturating_sub(u16::try_from(matched.len()).unwrap_or(u16::MAX));
            let page = activity
                .log_page(tenant, &window, room, position.as_deref())
                .await?;
            examined += page.items.len();
            position = page.next;
            if filtered {
                let read = activity.notifications(tenant, &page.items).await?;
                matched.extend(page.items.into_iter().filter(|id| {
                    read.iter()
                        .any(|notification| &notification.id == id && query.matches(notification))
                }));
            } else {
                matched.extend(page.items);
            }
            if position.is_none() || matched.len() >= usize::from(limit) || examined >= MAX_EXAMINED {
                return Ok(Page {
                    items: matched,
                    next: position,
                });
            }
        }
    }
}

pub(super) fn with_attempts(notification: &Notification, attempts: &[Attempt]) -> Value {
    let mut body = notification.to_json();
    body["attempts"] = attempts.iter().map(Attempt::to_json).collect();
    body
}
