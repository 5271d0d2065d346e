//! Per-recipient rate limits: a recipient's notifications on one channel are counted per minute, and the
//! counters are written in the transaction that accepts the event, each on the condition that it has room.
//! A notification whose counter is full is recorded `rate_limited` and never queued.

use super::event::Recipient;
use super::notification::{Notification, NotificationStatus};
use super::{Channel, NotificationId, TenantId, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The seeds' figure: five notifications a minute per recipient and channel.
pub const DEFAULT_PER_MINUTE: u32 = 5;
/// Events a minute one API key may send unless its tenant's settings say otherwise: 100 a second.
pub const DEFAULT_INGEST_BUDGET_PER_MINUTE: u32 = 6_000;
/// A counter outlives its minute by this much before TTL may delete it (TTL deletion lags anyway; a late
/// deletion only keeps a stale count that no later minute reads).
const KEEP_SECONDS: i64 = 120;

/// One recipient's sends on one channel in one minute, and what this event adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCounter {
    /// Unique per tenant, recipient, channel and minute.
    pub key: String,
    /// Notifications of this event it counts (rules sending twice on one channel share a counter).
    pub increment: u32,
    pub limit: u32,
    pub expires_at: Timestamp,
    pub notification_ids: Vec<NotificationId>,
}

impl RateCounter {
    /// The most the counter may hold before this event for the event to fit.
    pub fn room_before(&self) -> u32 {
        self.limit.saturating_sub(self.increment)
    }

    /// Whether a counter holding `sends` has room for this event.
    pub fn has_room(&self, sends: u32) -> bool {
        sends <= self.room_before()
    }
}

/// Who a counter counts: the user when the event names one (whatever address it reaches them at), otherwise
/// the channel's address, hashed so no address is in a key.
fn subject(recipient: &Recipient, notification: &Notification) -> Option<String> {
    if let Some(user_id) = &recipient.user_id {
        return Some(format!("U#{user_id}"));
    }
    let address = notification.to.as_deref()?;
    let hash = hex::encode(Sha256::digest(address.as_bytes()));
    Some(format!("A#{}", &hash[..32]))
}

/// The counters the queued notifications of an event need, at `limit` a minute (`None`: unlimited).
pub fn counters(
    tenant: &TenantId,
    recipient: &Recipient,
    notifications: &[Notification],
    limit: Option<u32>,
    now: Timestamp,
) -> Vec<RateCounter> {
    let Some(limit) = limit else {
        return Vec::new();
    };
    let (minute, expires_at) = window(now);
    let mut by_key: BTreeMap<(String, Channel), RateCounter> = BTreeMap::new();
    // A push to each of a person's phones is one notification to that person: a rule counts once.
    let mut counted: BTreeSet<(String, Channel, &str)> = BTreeSet::new();
    // A limit protects a person from a flood; a webhook goes to the tenant's own systems.
    for notification in notifications
        .iter()
        .filter(|n| n.status == NotificationStatus::Queued && n.channel.reaches_a_person())
    {
        let Some(subject) = subject(recipient, notification) else {
            continue;
        };
        let channel = notification.channel;
        let rate_counter = by_key
            .entry((subject.clone(), channel))
            .or_insert_with(|| RateCounter {
                key: format!("T#{tenant}#RATE#{subject}#{channel}#{minute}"),
                increment: 0,
                limit,
                expires_at,
                notification_ids: Vec::new(),
            });
        if counted.insert((subject, channel, notification.rule_id.as_str())) {
            rate_counter.increment += 1;
        }
        rate_counter.notification_ids.push(notification.id.clone());
    }
    by_key.into_values().collect()
}

/// The minute `now` is in, and when a counter of it may go.
fn window(now: Timestamp) -> (i64, Timestamp) {
    let minute = now.epoch_seconds().div_euclid(60);
    (
        minute,
        Timestamp::from_millis((minute * 60 + 60 + KEEP_SECONDS) * 1000),
    )
}

/// A per-minute limit set in layers: the event type's, else the tenant's, else the deployment's (`None` when it
/// has none); a 0 set for the event type or the tenant means none. The ingest budget has no event-type layer.
pub fn effective_per_minute(
    event_type: Option<u32>,
    tenant: Option<u32>,
    deployment: Option<u32>,
) -> Option<u32> {
    match event_type.or(tenant) {
        Some(0) => None,
        Some(limit) => Some(limit),
        None => deployment,
    }
}

/// The count of events one API key sent this minute, held to `budget`; a request adds its `events` (one, or
/// a batch's).
pub fn budget_counter(
    tenant: &TenantId,
    key_id: &str,
    budget: u32,
    events: u32,
    now: Timestamp,
) -> RateCounter {
    let (minute, expires_at) = window(now);
    RateCounter {
        key: format!("T#{tenant}#BUDGET#{key_id}#{minute}"),
        increment: events,
        limit: budget,
        expires_at,
        notification_ids: Vec::new(),
    }
}

/// Whole seconds until the minute of `now` is over, when a used-up budget has room again (1 to 60).
pub fn seconds_left_in_minute(now: Timestamp) -> u32 {
    let into_minute = now.millis().rem_euclid(60_000);
    u32::try_from((60_000 - into_minute + 999) / 1000).unwrap_or(60)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::test_fixtures;

    fn queued(channels: &[Channel]) -> Vec<Notification> {
        test_fixtures::acceptance("acme", None, channels).notifications
    }

    #[test]
    fn one_counter_per_channel_keyed_by_the_user_and_the_minute() {
        let notifications = queued(&[Channel::Email, Channel::Sms]);
        let recipient = Recipient {
            user_id: Some("u-1".into()),
            ..Recipient::default()
        };
        let now = Timestamp::from_millis(1_800_000_030_000);
        let counters = counters(&TenantId::new("acme"), &recipient, &notifications, Some(5), now);
        assert_eq!(counters.len(), 2);
        assert!(
            counters[0].key.starts_with("T#acme#RATE#U#u-1#email#30000000"),
            "{}",
            counters[0].key
        );
        assert_eq!((counters[0].increment, counters[0].limit), (1, 5));
        assert_eq!(counters[0].expires_at.epoch_seconds(), 1_800_000_060 + 120);
        let later = counters_at(&recipient, &notifications, 1_800_000_060_000);
        assert_ne!(later[0].key, counters[0].key, "a new minute, a new counter");
    }

    fn counters_at(recipient: &Recipient, notifications: &[Notification], millis: i64) -> Vec<RateCounter> {
        counters(
            &TenantId::new("acme"),
            recipient,
            notifications,
            Some(5),
            Timestamp::from_millis(millis),
        )
    }

    #[test]
    fn the_event_types_limit_wins_then_the_tenants_then_the_deployments_and_zero_is_none() {
        assert_eq!(effective_per_minute(Some(2), Some(9), Some(5)), Some(2));
        assert_eq!(effective_per_minute(None, Some(9), Some(5)), Some(9));
        assert_eq!(effective_per_minute(None, None, Some(5)), Some(5));
        assert_eq!(effective_per_minute(Some(0), Some(9), Some(5)), None);
        assert_eq!(effective_per_minute(None, Some(0), Some(5)), None);
        assert_eq!(effective_per_minute(Some(3), None, None), Some(3));
    }

    #[test]
    fn a_keys_budget_is_counted_per_minute_and_its_wait_is_what_is_left_of_the_minute() {
        let now = Timestamp::from_millis(1_800_000_030_500);
        let counter = budget_counter(&TenantId::new("acme"), "k-1", 100, 1, now);
        assert_eq!(counter.key, "T#acme#BUDGET#k-1#30000000");
        assert_eq!((counter.increment, counter.room_before()), (1, 99));
        assert_eq!(seconds_left_in_minute(now), 30);
        assert_eq!(
            seconds_left_in_minute(Timestamp::from_millis(1_800_000_000_000)),
            60
        );
        assert_eq!(
            seconds_left_in_minute(Timestamp::from_millis(1_800_000_059_999)),
            1
        );
    }

    #[test]
    fn without_a_user_the_address_is_counted_and_never_written_in_the_key() {
        let notifications = queued(&[Channel::Email]);
        let counters = counters_at(&Recipient::default(), &notifications, 1_800_000_000_000);
        let address = notifications[0].to.clone().unwrap();
        assert!(!counters[0].key.contains(&address));
        assert!(counters[0].key.contains("#A#"));
    }

    #[test]
    fn notifications_not_queued_and_unlimited_events_count_nothing() {
        let mut notifications = queued(&[Channel::Email, Channel::Sms]);
        notifications[1].status = NotificationStatus::Suppressed;
        let counted = counters_at(&Recipient::default(), &notifications, 1_800_000_000_000);
        assert_eq!(counted.len(), 1);
        let none = counters(
            &TenantId::new("acme"),
            &Recipient::default(),
            &notifications,
            None,
            Timestamp::now(),
        );
        assert!(none.is_empty());
    }

    #[test]
    fn a_push_to_each_of_a_users_devices_counts_once() {
        let mut notifications = queued(&[Channel::Push]);
        let mut second_device = notifications[0].clone();
        second_device.id = NotificationId::parse("ntf_0000000000000000000000000000000c").unwrap();
        notifications.push(second_device);
        let recipient = Recipient {
            user_id: Some("u-1".into()),
            ..Recipient::default()
        };
        let counted = counters_at(&recipient, &notifications, 1_800_000_000_000);
        assert_eq!(counted.len(), 1);
        assert_eq!(counted[0].increment, 1, "one rule, one push to the person");
        assert_eq!(counted[0].notification_ids.len(), 2, "both limited together");
    }

    #[test]
    fn two_rules_on_one_channel_share_a_counter() {
        let mut notifications = queued(&[Channel::Email]);
        let mut second = notifications[0].clone();
        second.id = NotificationId::parse("ntf_0000000000000000000000000000000b").unwrap();
        "second-rule".clone_into(&mut second.rule_id);
        notifications.push(second);
        let counted = counters_at(&Recipient::default(), &notifications, 1_800_000_000_000);
        assert_eq!(counted.len(), 1);
        assert_eq!((counted[0].increment, counted[0].room_before()), (2, 3));
    }
}
