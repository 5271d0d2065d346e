//! The small traits Herald's logic needs from the outside world. Adapters implement them over AWS;
//! the logic never names an SDK type.

use crate::domain::address::CountryAllowList;
use crate::domain::api_key::{ApiKeyRecord, KeyGrant, NewApiKey};
use crate::domain::event::{Acceptance, IdempotencyRecord, StoredEvent};
use crate::domain::event_type::{EventType, EventTypeSpec};
use crate::domain::notification::{Envelope, Notification};
use crate::domain::rule::{Rule, RuleSpec};
use crate::domain::template::{TemplateContent, TemplateHead, TemplateVersion};
use crate::domain::tenant::TenantSettings;
use crate::domain::user::{Preferences, User, UserProfile};
use crate::domain::{Channel, EventId, FieldError, NotificationId, TenantId, Timestamp};
use std::future::Future;
use std::time::Duration;

mod devices;
mod feedback;
mod suppressions;
mod webhooks;
pub use devices::{DeviceStore, EndpointError, NoPushEndpoints, PushEndpoints};
pub use feedback::FeedbackLedger;
pub use suppressions::SuppressionList;
pub use webhooks::WebhookEndpointStore;

/// A backing service failed. `retryable` says whether the same call may succeed later (throttling,
/// 5xx, timeouts) or not (access denied, a missing table: configuration a person must fix).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} {operation} failed: {message}")]
pub struct BackendError {
    pub service: &'static str,
    pub operation: &'static str,
    pub message: String,
    pub retryable: bool,
}

/// Why a conditional write of configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Another writer got there first, or the write contradicts stored state (409).
    #[error("{0}")]
    Conflict(String),
    /// The write is well-formed but not allowed (422).
    #[error("{}: {}", .0.pointer, .0.message)]
    Invalid(FieldError),
}

/// One page of a listing. `next` is an opaque token for the page after, if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a listing starts and how much it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u16,
    pub after: Option<String>,
}

/// Whether a PUT created the resource or replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Created,
    Replaced,
}

/// What revoking a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now; the record as it is after.
    Revoked(ApiKeyRecord),
    /// Revoked before (the record says when); nothing changed.
    AlreadyRevoked(ApiKeyRecord),
    /// The tenant has no key of that id.
    NotFound,
}

/// Tenants' API keys (decision 24): found by hash on every request, listed and revoked by id, per tenant.
pub trait ApiKeyStore: Send + Sync {
    /// What a live key (by its SHA-256 hash) grants; `None` for a key unknown or revoked.
    fn key_grant(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<KeyGrant>, BackendError>> + Send;

    /// Stores a new key: its lookup by hash and its entry in the tenant's list, both or neither. A hash
    /// already stored is never overwritten, whoever's it is (`Conflict`); the same `key` written again (a
    /// retry after a lost answer) succeeds.
    fn create_api_key(&self, key: &NewApiKey) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// The tenant's keys, revoked ones included, by id.
    fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<ApiKeyRecord>, BackendError>> + Send;

    /// Revokes the tenant's key `id`, in its entry and its lookup at once; another tenant's id is
    /// `NotFound`. Revoking again changes nothing.
    fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Revocation, BackendError>> + Send;
}

/// A tenant's users, one record each with the profile and the preferences in it, so ingest reads both in
/// one request. Each part is written on its own: a profile PUT never undoes a preferences PUT.
pub trait UserStore: Send + Sync {
    /// `None` when neither part was ever written.
    fn user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<User>, BackendError>> + Send;

    /// Replaces the profile; `Created` when the user had none.
    fn put_profile(
        &self,
        tenant: &TenantId,
        user_id: &str,
        profile: &UserProfile,
        now: Timestamp,
    ) -> impl Future<Output = Result<Saved, BackendError>> + Send;

    /// Replaces the preferences; `Created` when the user had none.
    fn put_preferences(
        &self,
        tenant: &TenantId,
        user_id: &str,
        preferences: &Preferences,
        now: Timestamp,
    ) -> impl Future<Output = Result<Saved, BackendError>> + Send;

    /// Forgets the user, profile and preferences; whether there was one.
    fn delete_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}

/// What an operator sets per tenant (`herald tenant …`), in the config table. Each setting is written on
/// its own, so setting one never overwrites another set at the same time.
pub trait TenantSettingsStore: Send + Sync {
    /// The tenant's settings; `None` when none was ever set.
    fn tenant_settings(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<TenantSettings>, BackendError>> + Send;

    /// Sets the tenant's SMS countries, or with `None` gives it the deployment's again.
    fn set_sms_allowed_countries(
        &self,
        tenant: &TenantId,
        countries: Option<&CountryAllowList>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Sets one of the tenant's limits, or (`None`) gives it the deployment's again.
    fn set_limit(
        &self,
        tenant: &TenantId,
        limit: crate::domain::tenant::TenantLimit,
        value: Option<u32>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

pub trait EventTypeStore: Send + Sync {
    fn put_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &EventTypeSpec,
        now: Timestamp,
    ) -> impl Future<Output = Result<Saved, BackendError>> + Send;

    fn event_type(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> impl Future<Output = Result<Option<EventType>, BackendError>> + Send;

    fn list_event_types(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<EventType>, BackendError>> + Send;

    fn delete_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}

pub trait TemplateStore: Send + Sync {
    /// Stores a new version of `name` in `content.locale`; the newest version is live.
    fn put_template(
        &self,
        tenant: &TenantId,
        name: &str,
        content: &TemplateContent,
        now: Timestamp,
    ) -> impl Future<Output = Result<TemplateVersion, WriteError>> + Send;

    fn template_head(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> impl Future<Output = Result<Option<TemplateHead>, BackendError>> + Send;

    fn template_version(
        &self,
        tenant: &TenantId,
        name: &str,
        locale: &str,
        version: u32,
    ) -> impl Future<Output = Result<Option<TemplateVersion>, BackendError>> + Send;

    fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<TemplateHead>, BackendError>> + Send;

    fn delete_template(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}

pub trait RuleStore: Send + Sync {
    fn put_rule(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &RuleSpec,
        now: Timestamp,
    ) -> impl Future<Output = Result<Saved, WriteError>> + Send;

    fn rule(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<Rule>, BackendError>> + Send;

    /// Every rule of the tenant, or of one event type.
    fn list_rules(
        &self,
        tenant: &TenantId,
        event: Option<&str>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Rule>, BackendError>> + Send;

    /// All the rules of one event type (at most [`crate::domain::rule::MAX_RULES_PER_EVENT_TYPE`]).
    fn rules_for_event(
        &self,
        tenant: &TenantId,
        event: &str,
    ) -> impl Future<Output = Result<Vec<Rule>, BackendError>> + Send;

    fn delete_rule(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<bool, WriteError>> + Send;
}

/// What recording an accepted event found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// This request wrote the event: it owns the fan-out.
    New,
    /// The idempotency key was already taken; this is what the first request stored.
    Existing(IdempotencyRecord),
    /// Nothing was written: the rate counters of these notifications had no room left.
    RateLimited(Vec<NotificationId>),
}

pub trait ActivityStore: Send + Sync {
    /// Writes the idempotency record (if keyed), the event and its notifications in one transaction. The
    /// event is written with its fan-out pending and leased to this request for `fanout_lease`.
    fn record_acceptance(
        &self,
        acceptance: &Acceptance,
        fanout_lease: Duration,
    ) -> impl Future<Output = Result<Recorded, BackendError>> + Send;

    fn event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<StoredEvent>, BackendError>> + Send;

    /// The events of `keys` that exist and have not expired, in one request where the store allows (a
    /// delivery reads its whole batch's at once); duplicates in `keys` are read once.
    fn events(
        &self,
        keys: &[(TenantId, EventId)],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, BackendError>> + Send;

    fn notifications(
        &self,
        tenant: &TenantId,
        ids: &[NotificationId],
    ) -> impl Future<Output = Result<Vec<Notification>, BackendError>> + Send;

    /// Takes the fan-out lease of an event whose fan-out is pending and not leased (or whose lease ran
    /// out). `false` when another request holds it or the fan-out is done.
    fn claim_fanout(
        &self,
        tenant: &TenantId,
        id: &EventId,
        now: Timestamp,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Marks the fan-out done.
    fn finish_fanout(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Gives the lease back after a failed fan-out, so the client's retry can take it at once.
    fn release_fanout(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Events, of every tenant, whose fan-out is unfinished and that were received before
    /// `received_before`, oldest first, at most `limit`: one query of a sparse index.
    fn pending_fanouts(
        &self,
        received_before: Timestamp,
        limit: u16,
    ) -> impl Future<Output = Result<Vec<(TenantId, EventId)>, BackendError>> + Send;
}

/// Each API key's count of events this minute: its ingest budget.
pub trait IngestBudgets: Send + Sync {
    /// Adds the counter's increment if it has room for it (one conditional write); `false`, adding
    /// nothing, if it has not.
    fn spend(
        &self,
        counter: &crate::domain::rate_limit::RateCounter,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}

/// The deployment's secret for signing list cursors, made by whichever request first finds none.
pub trait CursorKeyStore: Send + Sync {
    fn cursor_key(&self) -> impl Future<Output = Result<Vec<u8>, BackendError>> + Send;
}

/// The indexes of the notification log (`GET /v1/notifications`).
pub trait NotificationLog: Send + Sync {
    /// The ids of the tenant's notifications in `window`, newest first, at most `limit`, starting after
    /// `after` (a `next` this store gave). `next` is `None` once nothing is left.
    fn log_page(
        &self,
        tenant: &TenantId,
        window: &crate::domain::log_query::LogWindow,
        limit: u16,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page<NotificationId>, BackendError>> + Send;
}

/// Notifications still owed a delivery (`queued`, `sending`, `retrying`), for the reconciler, which finds
/// the ones nothing will deliver any more.
pub trait UnsettledNotifications: Send + Sync {
    /// Unsettled notifications, of every tenant, that were due for a delivery before `due_before` (created
    /// then, or told to retry then), oldest first, at most `limit`: queries of a sparse index, never a scan.
    fn overdue(
        &self,
        due_before: Timestamp,
        limit: u16,
    ) -> impl Future<Output = Result<Vec<(TenantId, NotificationId)>, BackendError>> + Send;

    /// Marks a stalled notification `dead_lettered` (reason `stalled`) if it is still as `seen` (same
    /// status, not updated since). `false` when a delivery touched it meanwhile.
    fn dead_letter_stalled(
        &self,
        seen: &Notification,
        now: Timestamp,
        detail: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Takes a settled notification out of the index, should one have been left in it.
    fn forget_settled(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// How many messages a channel's queue holds, visible, in flight and delayed (SQS's approximate counts).
pub trait QueueDepth: Send + Sync {
    fn messages(&self, channel: Channel) -> impl Future<Output = Result<u64, BackendError>> + Send;
}

pub trait NotificationQueue: Send + Sync {
    /// Puts the envelopes on the channel's queue; succeeds only when every one is on it.
    fn enqueue(
        &self,
        channel: Channel,
        envelopes: &[Envelope],
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// A channel: the only thing that differs between the email, SMS and Slack functions.
pub trait Sender: Send + Sync {
    fn channel(&self) -> Channel;

    /// Why this channel will not send to `to` for `tenant` at all (an SMS country outside the tenant's
    /// allow-list, an address on the suppression list), decided before any provider call; `None` to send.
    /// `Err` when what decides it cannot be read now: the notification waits.
    fn refuse(
        &self,
        _tenant: &TenantId,
        _to: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::delivery::DestinationRefusal>, BackendError>> + Send
    {
        async { Ok(None) }
    }

    /// Sends one rendered message to one address (an email address, an E.164 number, a webhook URL).
    fn send(
        &self,
        outgoing: &crate::domain::delivery::Outgoing<'_>,
    ) -> impl Future<Output = Result<crate::domain::delivery::SendReceipt, crate::domain::delivery::SendError>>
    + Send;
}

/// What claiming a notification for delivery found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The notification is this delivery's to send; `attempt` numbers the attempt (1, 2, …) and fences
    /// the outcome, so a delivery that lost its lease cannot overwrite a newer one.
    Claimed {
        notification: Box<Notification>,
        attempt: u32,
    },
    /// Already `sent` or `failed` (or never to be sent): acknowledge and do nothing.
    Settled(crate::domain::notification::NotificationStatus),
    /// Another delivery is sending it now, or it is a retry not due yet: come back after `lease_remaining`.
    Busy { lease_remaining: Duration },
    /// No such notification (expired, or never written).
    Missing,
}

/// The new state of a notification after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub status: crate::domain::notification::NotificationStatus,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub provider_message_id: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    /// Steps of the retry schedule used up so far (0 again once dead-lettered, so a redrive starts over).
    pub failures: u32,
}

/// The delivery side of the activity table: claims, outcomes and the record of attempts.
pub trait DeliveryLedger: Send + Sync {
    /// Conditionally moves the notification to `sending` with a lease, when it is `queued`, `retrying`,
    /// `dead_lettered` (a redrive), or `sending` with an expired lease.
    fn claim(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        now: Timestamp,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, BackendError>> + Send;

    /// Records the attempt and the notification's new state in one transaction. `Ok(false)` when the
    /// claim was lost meanwhile (its lease ran out and another delivery took over); `Ok(true)` also when
    /// this very record was already written (a retry after the answer to the first write was lost).
    fn settle(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        attempt: &crate::domain::delivery::Attempt,
        settlement: &Settlement,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// The notification and its attempts, oldest first.
    fn notification_with_attempts(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
    ) -> impl Future<
        Output = Result<Option<(Notification, Vec<crate::domain::delivery::Attempt>)>, BackendError>,
    > + Send;
}

/// Where the circuit breakers of the providers keep their state, shared by every delivery function.
pub trait CircuitStore: Send + Sync {
    /// The circuit named `key`; closed with no failures when it was never written.
    fn circuit(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<crate::domain::circuit::CircuitState, BackendError>> + Send;

    /// One more transient failure in a row; when that makes `threshold`, the circuit opens until
    /// `open_until` (only once: a circuit already open is left as it is). The state after.
    fn record_failure(
        &self,
        key: &str,
        threshold: u32,
        open_until: Timestamp,
    ) -> impl Future<Output = Result<crate::domain::circuit::CircuitState, BackendError>> + Send;

    /// The provider answered: closed, with no failures.
    fn close(&self, key: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Takes the one probe of a half-open circuit: `true` for exactly one caller while the circuit's
    /// `open_until` has passed and no other probe is out (a conditional write).
    fn take_probe(
        &self,
        key: &str,
        now: Timestamp,
        probe_until: Timestamp,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// The probe failed: open again until `open_until`.
    fn reopen(
        &self,
        key: &str,
        open_until: Timestamp,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// A channel's queue and its DLQ, as the delivery loop uses them.
pub trait ChannelQueue: Send + Sync {
    /// Keeps a received message invisible for `delay` (at most 12 hours), so it comes back then; every
    /// receive counts towards the queue's `maxReceiveCount`.
    fn delay(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Puts `body` on the queue again as a new message, delayed by `delay` (at most 15 minutes; a longer
    /// wait comes back early and waits out the rest). A new message starts with no receives, so retries
    /// never use up the receives that stand between a message and the DLQ.
    fn send_later(
        &self,
        body: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Puts `body` in the queue's DLQ, for a person to redrive.
    fn dead_letter(&self, body: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
}
