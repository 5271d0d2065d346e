//! Notifications: one per rule that applies to an event, with its status and the template version
//! pinned when the event was accepted.

use super::address::{mask_email, mask_phone, mask_webhook};
use super::{Channel, EventId, NotificationId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Queued,
    Sending,
    Sent,
    Retrying,
    Failed,
    DeadLettered,
    Suppressed,
    RateLimited,
    Skipped,
    /// Not delivered within its event type's maximum age: too late to be worth sending.
    Expired,
    /// After `sent`: the recipient's server accepted the message (SES's delivery event).
    Delivered,
    /// After `sent`: the recipient's server refused the message (SES's bounce event).
    Bounced,
    /// After `sent`: the recipient marked the message as spam (SES's complaint event).
    Complained,
}

impl NotificationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
            Self::Suppressed => "suppressed",
            Self::RateLimited => "rate_limited",
            Self::Skipped => "skipped",
            Self::Expired => "expired",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }

    /// The statuses a provider's later word may move a notification from to `self`: `None` for statuses
    /// no feedback leads to. Feedback arrives out of order and more than once; a complaint or a bounce
    /// outranks a delivery, and nothing moves a notification back.
    pub const fn after_feedback_from(self) -> Option<&'static [NotificationStatus]> {
        match self {
            Self::Delivered => Some(&[Self::Sent]),
            Self::Bounced | Self::Complained => Some(&[Self::Sent, Self::Delivered]),
            _ => None,
        }
    }

    /// Whether the notification goes on a channel queue when its event is accepted.
    pub const fn needs_delivery(self) -> bool {
        matches!(self, Self::Queued)
    }

    /// Whether a delivery is still owed: the notification is on its way, and a message on its channel's
    /// queue (or a delivery holding it) should bring it to an end.
    pub const fn is_unsettled(self) -> bool {
        matches!(self, Self::Queued | Self::Sending | Self::Retrying)
    }
}

impl fmt::Display for NotificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotificationStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_owned())).map_err(|_| format!("unknown status {s:?}"))
    }
}

/// Machine codes for why a notification is where it is.
pub mod reason {
    pub const NO_ADDRESS: &str = "no_address";
    /// The user's preferences leave the channel out for this event.
    pub const OPTED_OUT: &str = "opted_out";
    /// Over the recipient's notifications a minute on the channel.
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const TEMPLATE_NOT_FOUND: &str = "template_not_found";
    pub const RENDER_ERROR: &str = "render_error";
    pub const REJECTED_BY_PROVIDER: &str = "rejected_by_provider";
    /// The channel refuses the address before any provider call (an SMS country not allowed).
    pub const DESTINATION_NOT_ALLOWED: &str = "destination_not_allowed";
    pub const PROVIDER_ERROR: &str = "provider_error";
    /// The provider did not answer in time after the request went out: it may have sent the message.
    pub const PROVIDER_TIMEOUT: &str = "provider_timeout";
    pub const CONFIGURATION_ERROR: &str = "configuration_error";
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    /// Nothing delivered it for so long that no message for it can be left on its queue (its last receive
    /// failed before it could be recorded, or the process holding it died on it): the reconciler put a
    /// message for it in the DLQ, to be redriven.
    pub const STALLED: &str = "stalled";
    pub const EVENT_EXPIRED: &str = "event_expired";
    /// Not sent within its event type's maximum age (`expired`).
    pub const MAX_AGE_EXCEEDED: &str = "max_age_exceeded";
    /// The provider asked for fewer calls (`retrying`, using up no step of the schedule).
    pub const THROTTLED: &str = "throttled";
    /// The address is on the tenant's suppression list (it bounced, or its owner complained).
    pub const ADDRESS_SUPPRESSED: &str = "address_suppressed";
    /// `bounced`: the recipient's server refused the message for good (no such mailbox); the address is now
    /// suppressed.
    pub const PERMANENT_BOUNCE: &str = "permanent_bounce";
    /// `bounced`: the recipient's server refused the message for now (a full mailbox) and SES gave up.
    pub const TRANSIENT_BOUNCE: &str = "transient_bounce";
    /// `complained`: the recipient marked the message as spam; the address is now suppressed.
    pub const COMPLAINT: &str = "complaint";
    /// `failed`: the push platform says the device is no more (its endpoint disabled or deleted), or the
    /// user removed it after the event; the device is forgotten.
    pub const DEVICE_GONE: &str = "device_gone";

    /// Why a notification failed when its channel refused the recipient for good with `code`: the code when
    /// it is a reason of its own ([`DEVICE_GONE`]), else [`REJECTED_BY_PROVIDER`].
    pub fn of_refusal(code: &str) -> &'static str {
        if code == DEVICE_GONE {
            DEVICE_GONE
        } else {
            REJECTED_BY_PROVIDER
        }
    }

    /// Every code: the values of the metrics' `Reason` dimension (telemetry::catalogue).
    pub const ALL: [&str; 20] = [
        NO_ADDRESS,
        OPTED_OUT,
        RATE_LIMITED,
        TEMPLATE_NOT_FOUND,
        RENDER_ERROR,
        REJECTED_BY_PROVIDER,
        DESTINATION_NOT_ALLOWED,
        PROVIDER_ERROR,
        PROVIDER_TIMEOUT,
        CONFIGURATION_ERROR,
        RETRIES_EXHAUSTED,
        STALLED,
        EVENT_EXPIRED,
        MAX_AGE_EXCEEDED,
        THROTTLED,
        ADDRESS_SUPPRESSED,
        PERMANENT_BOUNCE,
        TRANSIENT_BOUNCE,
        COMPLAINT,
        DEVICE_GONE,
    ];
}

/// Where a notification's template comes from: pinned at acceptance, so later edits never change what
/// an accepted event sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedTemplate {
    pub name: String,
    pub locale: String,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: NotificationId,
    pub tenant: TenantId,
    pub event_id: EventId,
    pub event: String,
    pub rule_id: String,
    pub channel: Channel,
    pub status: NotificationStatus,
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// The full address; shown masked.
    pub to: Option<String>,
    pub template: String,
    pub pinned: Option<PinnedTemplate>,
    pub user_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub provider_message_id: Option<String>,
    /// When a `retrying` notification is due again.
    pub next_attempt_at: Option<Timestamp>,
    /// Failed attempts that used up a step of the retry schedule since it was accepted or redriven.
    pub failures: u32,
    /// Past this, it is `expired` rather than sent: its event type's maximum age, when it has one.
    pub deliver_by: Option<Timestamp>,
    /// The accepting request's `X-Correlation-Id`, logged on every line of its delivery; none on
    /// notifications accepted before it was kept (their event id stands in).
    pub correlation_id: Option<String>,
}

impl Notification {
    pub fn masked_to(&self) -> Option<String> {
        self.to.as_deref().map(|to| match self.channel {
            Channel::Email => mask_email(to),
            Channel::Sms => mask_phone(to),
            Channel::Slack => mask_webhook(to),
            // An endpoint's id, chosen by the tenant, and a device token's SHA-256 (never the token
            // itself): nothing secret in either.
            Channel::Webhook | Channel::Push => to.to_owned(),
        })
    }

    /// The short form listed in an event's answer.
    pub fn summary_json(&self) -> Value {
        let mut summary = json!({"id": self.id, "channel": self.channel, "status": self.status});
        if let Some(reason) = &self.reason {
            summary["reason"] = json!(reason);
        }
        summary
    }

    /// The full form of `GET /v1/notifications/{id}`, less its attempts.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "event_id": self.event_id,
            "event": self.event,
            "rule_id": self.rule_id,
            "channel": self.channel,
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
            "to": self.masked_to(),
            "user_id": self.user_id,
            "template": self.template,
            "locale": self.pinned.as_ref().map(|pinned| &pinned.locale),
            "template_version": self.pinned.as_ref().map(|pinned| pinned.version),
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
            "sent_at": self.sent_at.map(Timestamp::to_rfc3339),
            "provider_message_id": self.provider_message_id,
            "next_attempt_at": self.next_attempt_at.map(Timestamp::to_rfc3339),
            "deliver_by": self.deliver_by.map(Timestamp::to_rfc3339),
            "correlation_id": self.correlation_id,
        })
    }
}

/// The message put on a channel queue: ids only, versioned, so a message never carries personal data
/// and old messages stay readable after the format changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub tenant: TenantId,
    pub notification_id: NotificationId,
    pub correlation_id: String,
    /// The channel whose queue it belongs on, so a message on the wrong queue is refused before anything
    /// is claimed. Optional within v1: messages written before it was added have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// The provider endpoint it goes through (`ses`, `sns`, `slack:<host>`), so a delivery can defer it
    /// while that provider's circuit is open before claiming anything. Optional within v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The event it renders from, so a delivery reads the events of a whole batch in one request instead
    /// of one per message. Optional within v1: without it the event is read when the message is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
}

impl Envelope {
    pub const VERSION: u32 = 1;

    pub fn new(tenant: TenantId, notification_id: NotificationId, correlation_id: String) -> Self {
        Self {
            v: Self::VERSION,
            tenant,
            notification_id,
            correlation_id,
            channel: None,
            provider: None,
            event_id: None,
        }
    }

    /// The message for `notification`: its ids, its channel and the provider it will be sent through.
    pub fn for_notification(notification: &Notification) -> Self {
        Self {
            provider: Some(super::circuit::provider_key(
                &notification.tenant,
                notification.channel,
                notification.to.as_deref(),
            )),
            event_id: Some(notification.event_id.clone()),
            ..Self::new(
                notification.tenant.clone(),
                notification.id.clone(),
                notification
                    .correlation_id
                    .clone()
                    .unwrap_or_else(|| notification.event_id.to_string()),
            )
            .on(notification.channel)
        }
    }

    #[must_use]
    pub fn on(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_as_snake_case() {
        assert_eq!(
            "dead_lettered".parse::<NotificationStatus>(),
            Ok(NotificationStatus::DeadLettered)
        );
        assert_eq!(NotificationStatus::RateLimited.to_string(), "rate_limited");
        assert!("lost".parse::<NotificationStatus>().is_err());
        assert_eq!("bounced".parse(), Ok(NotificationStatus::Bounced));
    }

    #[test]
    fn feedback_never_moves_a_notification_back() {
        use NotificationStatus::{Bounced, Complained, Delivered, Queued, Sent};
        assert_eq!(Delivered.after_feedback_from(), Some(&[Sent][..]));
        for worse in [Bounced, Complained] {
            let from = worse.after_feedback_from().unwrap();
            assert!(from.contains(&Sent) && from.contains(&Delivered));
            assert!(!from.contains(&Bounced) && !from.contains(&Complained));
            assert!(!Delivered.after_feedback_from().unwrap().contains(&worse));
        }
        assert_eq!(Queued.after_feedback_from(), None);
    }

    #[test]
    fn envelope_is_ids_only_and_versioned() {
        let envelope = Envelope::new(
            TenantId::new("acme"),
            NotificationId::parse("ntf_0190000000007000800000000000000a").unwrap(),
            "evt_x".into(),
        );
        assert_eq!(
            serde_json::to_value(&envelope).unwrap(),
            json!({"v": 1, "tenant": "acme", "notification_id": "ntf_0190000000007000800000000000000a", "correlation_id": "evt_x"})
        );
        let on_sms = serde_json::to_value(envelope.clone().on(Channel::Sms)).unwrap();
        assert_eq!(on_sms["channel"], "sms");
        let read: Envelope = serde_json::from_value(on_sms).unwrap();
        assert_eq!(read.channel, Some(Channel::Sms));
        let mut slack = crate::test_fixtures::acceptance("acme", None, &[Channel::Slack])
            .notifications
            .remove(0);
        slack.to = Some("https://hooks.slack.com/services/T/B/secret".into());
        let envelope = serde_json::to_value(Envelope::for_notification(&slack)).unwrap();
        assert_eq!(
            envelope["provider"], "slack:hooks.slack.com",
            "the host, never the secret path"
        );
        assert_eq!(envelope["channel"], "slack");
        assert_eq!(envelope["event_id"], slack.event_id.as_str());
    }
}
