//! In-memory implementations of the ports, with failpoints, so the logic above them (ingest, the outbox and
//! its sweeper, the delivery loop) is tested for every interleaving without the emulator.
//! They keep DynamoDB's semantics where the logic relies on them: conditional writes are atomic, and an
//! acceptance is all or nothing.

use crate::domain::delivery::Attempt;
use crate::domain::event::{Acceptance, IdempotencyRecord, StoredEvent};
use crate::domain::notification::{Envelope, Notification};
use crate::domain::rate_limit::RateCounter;
use crate::domain::{Channel, EventId, NotificationId, TenantId, Timestamp};
use crate::ports::{ActivityStore, BackendError, IngestBudgets, NotificationQueue, Recorded};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub mod api_keys;
mod audit;
mod circuit;
pub mod config;
pub mod devices;
pub mod event_types;
pub mod ledger;
mod notification_log;
pub mod push;
pub mod rules;
pub mod sender;
pub mod suppressions;
pub mod templates;
pub mod tenants;
mod unsettled;
pub mod users;
pub mod webhooks;
pub use unsettled::MemoryQueueDepth;

/// What a failpoint does to the next calls of its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails before doing anything (a retryable error, as a throttle or a 5xx).
    Fail,
    /// The call takes effect, then its caller sees a timeout (a retryable error).
    TimeOutAfterCommit,
    /// The call waits this long, then proceeds (a slow backend). Honoured by the delivery ledger, the
    /// queue and the config stores; the activity store's other operations ignore it.
    Slow(Duration),
    /// The call fails before doing anything, with an error no retry cures (access denied, a missing
    /// table: configuration a person must fix).
    FailPermanently,
}

/// Operations that can be told to fail, by name (`"record_acceptance"`, `"enqueue:slack"`, …), each a
/// given number of times.
#[derive(Debug, Default)]
pub struct Failpoints(Mutex<HashMap<String, (Fault, u32)>>);

impl Failpoints {
    /// The next `times` calls of `operation` meet `fault`.
    pub fn set(&self, operation: &str, fault: Fault, times: u32) {
        if times == 0 {
            lock(&self.0).remove(operation);
            return;
        }
        lock(&self.0).insert(operation.to_owned(), (fault, times));
    }

    /// The fault for this call of `operation`, if one is set; counts it down.
    pub(crate) fn take(&self, operation: &str) -> Option<Fault> {
        let mut points = lock(&self.0);
        let (fault, left) = points.get_mut(operation)?;
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            points.remove(operation);
        }
        Some(fault)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn injected(operation: &str, fault: Fault) -> BackendError {
    BackendError {
        service: "memory",
        operation: "failpoint",
        message: format!("{operation}: injected {fault:?}"),
        retryable: fault != Fault::FailPermanently,
    }
}

/// The failpoint of this call of a write, up to the write: failures answer at once, `Slow` waits and lets
/// the call proceed, and `TimeOutAfterCommit` is handed back for [`after_write`] once the write is done.
async fn before_write(failpoints: &Failpoints, operation: &str) -> Result<Option<Fault>, BackendError> {
    match failpoints.take(operation) {
        Some(fault @ (Fault::Fail | Fault::FailPermanently)) => Err(injected(operation, fault)),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(None)
        }
        other => Ok(other),
    }
}

/// What the caller of a write that took effect sees.
fn after_write(operation: &str, fault: Option<Fault>) -> Result<(), BackendError> {
    match fault {
        Some(fault) => Err(injected(operation, fault)),
        None => Ok(()),
    }
}

/// The failpoint of a read: a timeout after a read that changed nothing is simply a failed read.
/// One page of `items`, given in key order with their keys: those after `page.after`, at most `page.limit`,
/// and `next` the last key of a page that left some out.
fn page_after<T>(
    items: impl IntoIterator<Item = (String, T)>,
    page: &crate::ports::PageRequest,
) -> crate::ports::Page<T> {
    let limit = usize::from(page.limit.max(1));
    let mut keyed: Vec<(String, T)> = items
        .into_iter()
        .filter(|(key, _)| page.after.as_deref().is_none_or(|after| key.as_str() > after))
        .take(limit + 1)
        .collect();
    let next = (keyed.len() > limit).then(|| keyed[limit - 1].0.clone());
    keyed.truncate(limit);
    crate::ports::Page {
        items: keyed.into_iter().map(|(_, item)| item).collect(),
        next,
    }
}

async fn before_read(failpoints: &Failpoints, operation: &str) -> Result<(), BackendError> {
    let fault = before_write(failpoints, operation).await?;
    after_write(operation, fault)
}

#[derive(Debug, Clone)]
struct EventEntry {
    event: StoredEvent,
    lease_until: Option<Timestamp>,
}

/// A notification with what DynamoDB keeps beside it on its item and under its key: the claim's lease and
/// counter, and the attempt records (see [`ledger`]).
#[derive(Debug, Clone)]
struct NotificationEntry {
    notification: Notification,
    lease_until: Option<Timestamp>,
    attempts: u32,
    records: BTreeMap<u32, Attempt>,
}

impl NotificationEntry {
    fn new(notification: Notification) -> Self {
        Self {
            notification,
            lease_until: None,
            attempts: 0,
            records: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    idempotency: HashMap<(TenantId, String), IdempotencyRecord>,
    events: HashMap<(TenantId, EventId), EventEntry>,
    notifications: HashMap<(TenantId, NotificationId), NotificationEntry>,
    /// Rate counters by key: sends so far.
    rate_counters: HashMap<String, u32>,
}

/// The activity table in memory.
#[derive(Debug, Default)]
pub struct MemoryActivityStore {
    tables: Mutex<Tables>,
    /// The providers' circuits, by key.
    circuits: Mutex<HashMap<String, crate::domain::circuit::CircuitState>>,
    /// Requests that read events (`event` or `events`), as DynamoDB would bill them: one per call.
    event_reads: Mutex<usize>,
    pub failpoints: Failpoints,
}

impl MemoryActivityStore {
    /// The event as stored, with its fan-out lease.
    pub fn stored_event(&self, tenant: &TenantId, id: &EventId) -> Option<(StoredEvent, Option<Timestamp>)> {
        lock(&self.tables)
            .events
            .get(&(tenant.clone(), id.clone()))
            .map(|entry| (entry.event.clone(), entry.lease_until))
    }

    /// How many requests have read events so far.
    pub fn event_reads(&self) -> usize {
        *lock(&self.event_reads)
    }

    fn check(&self, operation: &str) -> Result<Option<Fault>, BackendError> {
        match self.failpoints.take(operation) {
            Some(fault @ (Fault::Fail | Fault::FailPermanently)) => Err(injected(operation, fault)),
            other => Ok(other),
        }
    }

    /// The transaction of [`ActivityStore::record_acceptance`], as DynamoDB applies it.
    fn transact_acceptance(&self, acceptance: &Acceptance, now: Timestamp, lease: Duration) -> Transacted {
        let mut tables = lock(&self.tables);
        let tenant = &acceptance.event.tenant;
        if let Some(record) = &acceptance.idempotency
            && let Some(old) = tables.idempotency.get(&(tenant.clone(), record.key.clone()))
            && old.expires_at.epoch_seconds() >= now.epoch_seconds()
        {
            return Transacted::IdempotencyExists(old.clone());
        }
        let event_key = (tenant.clone(), acceptance.event.id.clone());
        if tables.events.contains_key(&event_key) {
            return Transacted::EventExists;
        }
        let full: Vec<NotificationId> = acceptance
            .rate_counters
            .iter()
            .filter(|counter| !counter.has_room(tables.rate_counters.get(&counter.key).copied().unwrap_or(0)))
            .flat_map(|counter| counter.notification_ids.iter().cloned())
            .collect();
        if !full.is_empty() {
            return Transacted::RateLimited(full);
        }
        for counter in &acceptance.rate_counters {
            *tables.rate_counters.entry(counter.key.clone()).or_insert(0) += counter.increment;
        }
        if let Some(record) = &acceptance.idempotency {
            tables
                .idempotency
                .insert((tenant.clone(), record.key.clone()), record.clone());
        }
        let lease_millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let lease_until = acceptance
            .event
            .fanout_pending
            .then(|| Timestamp::from_millis(now.millis().saturating_add(lease_millis)));
        tables.events.insert(
            event_key,
            EventEntry {
                event: acceptance.event.clone(),
                lease_until,
            },
        );
        for notification in &acceptance.notifications {
            tables.notifications.insert(
                (tenant.clone(), notification.id.clone()),
                NotificationEntry::new(notification.clone()),
            );
        }
        Transacted::Committed
    }
}

enum Transacted {
    Committed,
    IdempotencyExists(IdempotencyRecord),
    EventExists,
    RateLimited(Vec<NotificationId>),
}

impl IngestBudgets for MemoryActivityStore {
    async fn spend(&self, counter: &RateCounter) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "spend").await?;
        let room = {
            let mut tables = lock(&self.tables);
            let count = tables.rate_counters.entry(counter.key.clone()).or_insert(0);
            let room = counter.has_room(*count);
            if room {
                *count += counter.increment;
            }
            room
        };
        after_write("spend", fault)?;
        Ok(room)
    }
}

impl ActivityStore for MemoryActivityStore {
    async fn record_acceptance(
        &self,
        acceptance: &Acceptance,
        fanout_lease: Duration,
    ) -> Result<Recorded, BackendError> {
        let fault = self.check("record_acceptance")?;
        let outcome = self.transact_acceptance(acceptance, Timestamp::now(), fanout_lease);
        if fault == Some(Fault::TimeOutAfterCommit) {
            // What the SDK does after a timed-out attempt: the same request again, which meets its own write.
            return match self.transact_acceptance(acceptance, Timestamp::now(), fanout_lease) {
                Transacted::IdempotencyExists(record) if record.event_id == acceptance.event.id => {
                    Ok(Recorded::New)
                }
                Transacted::IdempotencyExists(record) => Ok(Recorded::Existing(record)),
                Transacted::EventExists | Transacted::Committed => Ok(Recorded::New),
                Transacted::RateLimited(full) => Ok(Recorded::RateLimited(full)),
            };
        }
        Ok(match outcome {
            Transacted::Committed | Transacted::EventExists => Recorded::New,
            Transacted::IdempotencyExists(record) => Recorded::Existing(record),
            Transacted::RateLimited(full) => Recorded::RateLimited(full),
        })
    }

    async fn event(&self, tenant: &TenantId, id: &EventId) -> Result<Option<StoredEvent>, BackendError> {
        self.check("event")?;
        *lock(&self.event_reads) += 1;
        Ok(self.stored_event(tenant, id).map(|(event, _)| event))
    }

    async fn events(&self, keys: &[(TenantId, EventId)]) -> Result<Vec<StoredEvent>, BackendError> {
        self.check("events")?;
        *lock(&self.event_reads) += 1;
        let tables = lock(&self.tables);
        let mut seen = std::collections::HashSet::new();
        Ok(keys
            .iter()
            .filter(|key| seen.insert(*key))
            .filter_map(|key| tables.events.get(key))
            .filter(|entry| entry.event.expires_at > Timestamp::now())
            .map(|entry| entry.event.clone())
            .collect())
    }

    async fn notifications(
        &self,
        tenant: &TenantId,
        ids: &[NotificationId],
    ) -> Result<Vec<Notification>, BackendError> {
        self.check("notifications")?;
        let tables = lock(&self.tables);
        Ok(ids
            .iter()
            .filter_map(|id| tables.notifications.get(&(tenant.clone(), id.clone())))
            .map(|entry| entry.notification.clone())
            .collect())
    }

    async fn claim_fanout(
        &self,
        tenant: &TenantId,
        id: &EventId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, BackendError> {
        let fault = self.check("claim_fanout")?;
        let mut tables = lock(&self.tables);
        let Some(entry) = tables.events.get_mut(&(tenant.clone(), id.clone())) else {
            return Ok(false);
        };
        let free = entry.event.fanout_pending && entry.lease_until.is_none_or(|until| until < now);
        if free {
            let lease_millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            entry.lease_until = Some(Timestamp::from_millis(now.millis().saturating_add(lease_millis)));
        }
        match fault {
            Some(fault) => Err(injected("claim_fanout", fault)),
            None => Ok(free),
        }
    }

    async fn finish_fanout(&self, tenant: &TenantId, id: &EventId) -> Result<(), BackendError> {
        self.check("finish_fanout")?;
        if let Some(entry) = lock(&self.tables).events.get_mut(&(tenant.clone(), id.clone())) {
            entry.event.fanout_pending = false;
            entry.lease_until = None;
        }
        Ok(())
    }

    async fn release_fanout(&self, tenant: &TenantId, id: &EventId) -> Result<(), BackendError> {
        self.check("release_fanout")?;
        if let Some(entry) = lock(&self.tables).events.get_mut(&(tenant.clone(), id.clone())) {
            entry.lease_until = None;
        }
        Ok(())
    }

    async fn pending_fanouts(
        &self,
        received_before: Timestamp,
        limit: u16,
    ) -> Result<Vec<(TenantId, EventId)>, BackendError> {
        self.check("pending_fanouts")?;
        let tables = lock(&self.tables);
        let mut pending: Vec<&StoredEvent> = tables
            .events
            .values()
            .map(|entry| &entry.event)
            .filter(|event| event.fanout_pending && event.received_at < received_before)
            .collect();
        pending.sort_by_key(|event| event.received_at);
        Ok(pending
            .into_iter()
            .take(usize::from(limit))
            .map(|event| (event.tenant.clone(), event.id.clone()))
            .collect())
    }
}

/// The channel queues in memory: every envelope ever enqueued, per channel, in order.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<BTreeMap<Channel, Vec<Envelope>>>,
    pub failpoints: Failpoints,
}

impl MemoryQueue {
    /// What was enqueued on `channel`, duplicates included.
    pub fn enqueued(&self, channel: Channel) -> Vec<Envelope> {
        lock(&self.sent).get(&channel).cloned().unwrap_or_default()
    }
}

impl NotificationQueue for MemoryQueue {
    async fn enqueue(&self, channel: Channel, envelopes: &[Envelope]) -> Result<(), BackendError> {
        let operation = format!("enqueue:{channel}");
        let fault = before_write(&self.failpoints, &operation).await?;
        lock(&self.sent)
            .entry(channel)
            .or_default()
            .extend_from_slice(envelopes);
        after_write(&operation, fault)
    }
}
