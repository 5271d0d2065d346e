//! Ingest: validate an event, record it with its notifications in one transaction, fan it out to the
//! channel queues. The HTTP side is in [`handler`].

mod catalog;
pub mod handler;
mod notification_log;
mod resolve;

pub use catalog::{Catalog, CompiledEventType};
use resolve::{Accepting, Targets, resolve_notifications};

use crate::config::HttpSettings;
use crate::domain::api_key::KeyGrant;
use crate::domain::event::{Acceptance, EventSubmission, IdempotencyRecord, StoredEvent};
use crate::domain::event_type::payload_violations;
use crate::domain::notification::{Notification, NotificationStatus, reason};
use crate::domain::rate_limit;
use crate::domain::user::Preferences;
use crate::domain::{Channel, EventId, NotificationId, Problem, ProblemCode, TenantId, Timestamp};
use crate::http::{Authenticator, backend_failure};
use crate::outbox::{FANOUT_LEASE, Finish, Outbox};
use crate::ports::{
    ActivityStore, ApiKeyStore, DeviceStore, EventTypeStore, IngestBudgets, NotificationQueue, Recorded,
    RuleStore, SuppressionList, TemplateStore, TenantSettingsStore, UserStore, WebhookEndpointStore,
};
use crate::telemetry::catalogue::NotificationOutcome;
use crate::telemetry::record;
use serde_json::{Value, json};
use std::sync::Arc;

/// What ingest reads of the config table: event types with their rules and templates, tenants' settings,
/// users, suppression lists, webhook endpoints and users' devices (the DynamoDB adapter is one type for all).
pub trait IngestConfig:
    EventTypeStore
    + RuleStore
    + TemplateStore
    + TenantSettingsStore
    + UserStore
    + SuppressionList
    + WebhookEndpointStore
    + DeviceStore
{
}

impl<T> IngestConfig for T where
    T: EventTypeStore
        + RuleStore
        + TemplateStore
        + TenantSettingsStore
        + UserStore
        + SuppressionList
        + WebhookEndpointStore
        + DeviceStore
{
}

/// Idempotency keys are remembered this long (the contract promises at least 24 h).
const IDEMPOTENCY_WINDOW_SECONDS: i64 = 24 * 3600;

/// The outcome of one accepted submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// First time: 202.
    New { event_id: EventId, body: Value },
    /// The idempotency key was seen with the same request: 200 with the first answer.
    Replayed { event_id: EventId, body: Value },
}

/// Everything the ingest function holds between invocations: clients, caches, settings.
#[derive(Debug)]
pub struct Ingest<K, C, A, Q> {
    pub(crate) auth: Authenticator<K>,
    cursors: crate::http::Cursors,
    catalog: Catalog<C>,
    outbox: Outbox<A, Q>,
    pub(crate) settings: HttpSettings,
}

impl<K, C, A, Q> Ingest<K, C, A, Q>
where
    K: ApiKeyStore,
    C: IngestConfig,
    A: ActivityStore + IngestBudgets,
    Q: NotificationQueue,
{
    pub fn new(keys: K, config: C, activity: A, queue: Q, settings: HttpSettings) -> Self {
        Self {
            auth: Authenticator::new(keys, settings.cache_ttl),
            cursors: crate::http::Cursors::default(),
            catalog: Catalog::new(config, settings.cache_ttl),
            outbox: Outbox::new(activity, queue),
            settings,
        }
    }

    pub fn activity(&self) -> &A {
        self.outbox.activity()
    }

    /// Spends `events` of the caller's key's ingest budget for this minute, or refuses the request: 429
    /// with `Retry-After` past the budget. Every request counts, replays and ones refused later included.
    pub async fn spend_budget(&self, caller: &KeyGrant, events: u32) -> Result<(), Problem> {
        let tenant_settings = self
            .catalog
            .tenant_settings(&caller.tenant)
            .await
            .map_err(|error| backend_failure(&error))?;
        let budget = rate_limit::effective_per_minute(
            None,
            tenant_settings.ingest_budget_per_minute,
            self.settings.ingest_budget_per_minute,
        );
        let Some(budget) = budget else {
            return Ok(());
        };
        if events > budget {
            return Err(Problem::validation(vec![crate::domain::FieldError::new(
                "/events",
                format!(
                    "{events} events are more than this API key may send in a minute ({budget}); send fewer at once"
                ),
            )]));
        }
        let now = Timestamp::now();
        let counter = rate_limit::budget_counter(&caller.tenant, &caller.key_id, budget, events, now);
        let spent = self
            .activity()
            .spend(&counter)
            .await
            .map_err(|error| backend_failure(&error))?;
        if spent {
            Ok(())
        } else {
            Err(over_budget(budget, now))
        }
    }

    /// Accepts one event body of `tenant`; its notifications carry `correlation_id` (the request's) to
    /// every log line of their delivery.
    pub async fn accept(
        &self,
        tenant: &TenantId,
        body: &Value,
        header_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<Accepted, Problem> {
        let mut submission = EventSubmission::parse_at(body, "", &self.settings.webhook_policy)
            .map_err(Problem::validation)?;
        submission
            .settle_idempotency_key(header_key)
            .map_err(|error| Problem::validation(vec![error]))?;
        let compiled = self
            .catalog
            .event_type(tenant, &submission.event)
            .await
            .map_err(|error| backend_failure(&error))?
            .ok_or_else(|| {
                Problem::new(
                    ProblemCode::UnknownEventType,
                    format!(
                        "event type {} does not exist; create it with PUT /v1/event-types/{}",
                        submission.event, submission.event
                    ),
                )
            })?;
        if let Some(validator) = &compiled.validator {
            let violations = payload_violations(validator, &submission.payload, "/payload");
            if !violations.is_empty() {
                return Err(Problem::validation(violations));
            }
        }

        // The request as the client sent it identifies a replay, whatever the stored user says by then.
        let fingerprint = submission.fingerprint();
        let preferences = self.fill_from_user(tenant, &mut submission).await?;

        let now = Timestamp::now();
        let event_id = EventId::generate(now);
        let accepted = Accepting {
            tenant,
            event_id: &event_id,
            correlation_id,
            now,
        };
        let uses = |channel| compiled.rules.uses(channel) && submission.wants(channel);
        let endpoints = if uses(Channel::Webhook) {
            self.catalog
                .active_endpoints(tenant)
                .await
                .map_err(|error| backend_failure(&error))?
        } else {
            Arc::default()
        };
        // Not cached: a device registered a moment ago is to get this event's push.
        let devices = match submission.recipient.user_id.as_deref() {
            Some(user_id) if uses(Channel::Push) => self
                .catalog
                .store()
                .devices_of(tenant, user_id)
                .await
                .map_err(|error| backend_failure(&error))?,
            _ => Vec::new(),
        };
        let targets = Targets {
            endpoints: &endpoints,
            devices: &devices,
        };
        let mut notifications =
            resolve_notifications(&accepted, &submission, &compiled, preferences.as_ref(), &targets);
        self.hold_back_suppressed(tenant, &mut notifications).await?;
        let tenant_settings = self
            .catalog
            .tenant_settings(tenant)
            .await
            .map_err(|error| backend_failure(&error))?;
        let limit = rate_limit::effective_per_minute(
            compiled.event_type.spec.rate_limit_per_minute,
            tenant_settings.rate_limit_per_minute,
            self.settings.rate_limit_per_minute,
        )
        .filter(|_| !compiled.event_type.spec.critical);
        // Each round records the event or finds counters without room, whose notifications then become
        // `rate_limited` and need no counter: at most one round per counter (one per channel), then one more.
        for _ in 0..=Channel::ALL.len() {
            let rate_counters =
                rate_limit::counters(tenant, &submission.recipient, &notifications, limit, now);
            let body = answer_body(&event_id, &submission.event, &notifications);
            let acceptance = Self::acceptance(
                &self.settings,
                &submission,
                &accepted,
                (&fingerprint, &body),
                notifications.clone(),
                rate_counters,
            );
            match self.record(tenant, acceptance, body, &fingerprint).await? {
                Recording::Done(answer) => return Ok(answer),
                Recording::OverLimit(full) => mark_rate_limited(&mut notifications, &full, limit),
            }
        }
        Err(Problem::new(
            ProblemCode::ServiceUnavailable,
            "the recipient's rate counters kept changing; retry the request",
        ))
    }

    /// What one round of [`Self::accept`] writes.
    fn acceptance(
        settings: &HttpSettings,
        submission: &EventSubmission,
        accepting: &Accepting<'_>,
        (fingerprint, body): (&str, &Value),
        notifications: Vec<Notification>,
        rate_counters: Vec<rate_limit::RateCounter>,
    ) -> Acceptance {
        let Accepting {
            tenant,
            event_id,
            now,
            ..
        } = *accepting;
        let retention = i64::try_from(settings.retention.as_secs()).unwrap_or(i64::MAX);
        Acceptance {
            idempotency: submission.idempotency_key.clone().map(|key| IdempotencyRecord {
                key,
                fingerprint: fingerprint.to_owned(),
                event_id: event_id.clone(),
                response: body.clone(),
                expires_at: now.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS),
            }),
            event: StoredEvent {
                tenant: tenant.clone(),
                id: event_id.clone(),
                event: submission.event.clone(),
                received_at: now,
                payload: submission.payload.clone(),
                recipient: submission.recipient.clone(),
                notification_ids: notifications.iter().map(|n| n.id.clone()).collect(),
                idempotency_key: submission.idempotency_key.clone(),
                fanout_pending: notifications.iter().any(|n| n.status.needs_delivery()),
                expires_at: now.plus_seconds(retention),
            },
            notifications,
            rate_counters,
        }
    }

    /// When the event names a stored user: the contact fields it left out, from the user's profile, and
    /// the user's preferences, read together in one request.
    async fn fill_from_user(
        &self,
        tenant: &TenantId,
        submission: &mut EventSubmission,
    ) -> Result<Option<Preferences>, Problem> {
        let Some(user_id) = submission.recipient.user_id.as_deref() else {
            return Ok(None);
        };
        let Some(user) = self
            .catalog
            .store()
            .user(tenant, user_id)
            .await
            .map_err(|error| backend_failure(&error))?
        else {
            return Ok(None);
        };
        if let Some(profile) = &user.profile {
            submission.recipient = submission.recipient.filled_from(profile);
        }
        Ok(user.preferences)
    }

    /// Emails to an address on the tenant's suppression list become `suppressed` and are never sent, critical
    /// event types' included: the address itself bounced or complained, and every send to it costs the
    /// sender's reputation. One read, and only for an event with an email to send (all its emails go to
    /// the one recipient's address). Not cached: an address suppressed a moment ago must already hold.
    async fn hold_back_suppressed(
        &self,
        tenant: &TenantId,
        notifications: &mut [Notification],
    ) -> Result<(), Problem> {
        let is_email_to_send =
            |n: &Notification| n.channel == Channel::Email && n.status == NotificationStatus::Queued;
        let Some(address) = notifications
            .iter()
            .find(|n| is_email_to_send(n))
            .and_then(|n| n.to.clone())
        else {
            return Ok(());
        };
        let Some(entry) = self
            .catalog
            .store()
            .suppression(tenant, &address)
            .await
            .map_err(|error| backend_failure(&error))?
        else {
            return Ok(());
        };
        for notification in notifications.iter_mut().filter(|n| is_email_to_send(n)) {
            notification.status = NotificationStatus::Suppressed;
            notification.reason = Some(reason::ADDRESS_SUPPRESSED.to_owned());
            notification.detail = Some(entry.held_back_detail());
            notification.pinned = None;
        }
        Ok(())
    }

    /// Records the acceptance and fans it out, or finds the request it replays, or the counters that had no
    /// room.
    async fn record(
        &self,
        tenant: &TenantId,
        acceptance: Acceptance,
        body: Value,
        fingerprint: &str,
    ) -> Result<Recording, Problem> {
        let event_id = acceptance.event.id.clone();
        match self
            .activity()
            .record_acceptance(&acceptance, FANOUT_LEASE)
            .await
            .map_err(|error| backend_failure(&error))?
        {
            Recorded::New => {
                // The line that ties the request's correlation id to the event and its notifications.
                tracing::info!(
                    %event_id,
                    event = %acceptance.event.event,
                    notification_ids = ?acceptance.event.notification_ids,
                    "event accepted"
                );
                count_settled_at_acceptance(&acceptance.notifications);
                // From here on the event is Herald's: the client gets its 202 whatever the fan-out does.
                if acceptance.event.fanout_pending
                    && let Err(error) = self
                        .outbox
                        .fan_out(tenant, &event_id, &acceptance.notifications)
                        .await
                {
                    tracing::warn!(%event_id, %error, "fan-out failed after the event was recorded; the sweeper finishes it");
                }
                Ok(Recording::Done(Accepted::New { event_id, body }))
            }
            Recorded::Existing(record) if record.fingerprint == fingerprint => {
                tracing::info!(event_id = %record.event_id, "replayed: the idempotency key was seen with this request");
                self.finish_on_replay(tenant, &record.event_id).await;
                Ok(Recording::Done(Accepted::Replayed {
                    event_id: record.event_id,
                    body: record.response,
                }))
            }
            Recorded::RateLimited(full) => Ok(Recording::OverLimit(full)),
            Recorded::Existing(_) => Err(Problem::new(
                ProblemCode::IdempotencyKeyReused,
                "this idempotency key was used for a different request; use a new key for a new request",
            )),
        }
    }
}

impl<K, C, A, Q> Ingest<K, C, A, Q>
where
    A: ActivityStore,
    Q: NotificationQueue,
{
    /// The first request may have died before its fan-out: finish it now if its lease is free. Never fails
    /// the replay; what it cannot finish, the sweeper does.
    async fn finish_on_replay(&self, tenant: &TenantId, event_id: &EventId) {
        match self
            .outbox
            .finish_abandoned(tenant, event_id, Timestamp::now())
            .await
        {
            Ok(Finish::FannedOut) => {
                tracing::info!(%event_id, "finished an unfinished fan-out on replay");
            }
            Ok(Finish::NotOurs | Finish::NothingPending) => {}
            Err(error) => {
                tracing::warn!(%event_id, %error, "could not finish the fan-out on replay; the sweeper finishes it");
            }
        }
    }
}

/// The answer to an event past its key's budget: 429, to retry when the minute is over.
fn over_budget(budget: u32, now: Timestamp) -> Problem {
    let wait = rate_limit::seconds_left_in_minute(now);
    Problem {
        retry_after: Some(wait),
        ..Problem::new(
            ProblemCode::RateLimited,
            format!(
                "this API key sent its {budget} events of this minute (its tenant's ingest budget); \
                 nothing of this request was recorded: send it again in {wait} s"
            ),
        )
    }
}

/// Notifications that ended as they were accepted (no address, no template) are counted here; the others
/// when their delivery settles them.
fn count_settled_at_acceptance(notifications: &[Notification]) {
    for notification in notifications {
        let outcome = match notification.status {
            NotificationStatus::Failed => NotificationOutcome::Failed,
            NotificationStatus::Skipped => NotificationOutcome::Skipped,
            NotificationStatus::Suppressed => NotificationOutcome::Suppressed,
            NotificationStatus::RateLimited => NotificationOutcome::RateLimited,
            _ => continue,
        };
        record::notification(notification.channel, outcome, notification.reason.as_deref());
    }
}

/// How one round of recording an event ended.
enum Recording {
    Done(Accepted),
    /// Nothing was written: these notifications' rate counters had no room.
    OverLimit(Vec<NotificationId>),
}

/// The 202 body (and the idempotency record's answer).
fn answer_body(event_id: &EventId, event: &str, notifications: &[Notification]) -> Value {
    json!({
        "event_id": event_id,
        "event": event,
        "status": "accepted",
        "notifications": notifications.iter().map(Notification::summary_json).collect::<Vec<_>>(),
    })
}

/// Over the recipient's limit: recorded, answered, never queued.
fn mark_rate_limited(notifications: &mut [Notification], full: &[NotificationId], limit: Option<u32>) {
    for notification in notifications.iter_mut().filter(|n| full.contains(&n.id)) {
        notification.status = NotificationStatus::RateLimited;
        notification.reason = Some(reason::RATE_LIMITED.to_owned());
        notification.detail = Some(format!(
            "the recipient already had {} {} notifications this minute",
            limit.unwrap_or_default(),
            notification.channel
        ));
    }
}

#[cfg(test)]
mod tests;
