//! An event as a client submits it to `POST /v1/events`, validated strictly.

use super::address::{WebhookPolicy, check_email, check_phone};
use super::notification::Notification;
use super::validation::{Violations, child, is_valid_locale, is_valid_name, type_name};
use super::{Channel, EventId, FieldError, NotificationId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Idempotency keys are opaque to Herald but bounded, so they fit in a key attribute.
pub const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;

/// Who a notification is for. Every field is optional; each channel needs its own address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack_webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl Recipient {
    const FIELDS: [&'static str; 5] = ["user_id", "email", "phone", "slack_webhook_url", "locale"];

    /// The address a channel delivers to, if the recipient has one.
    pub fn address(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Email => self.email.as_deref(),
            Channel::Sms => self.phone.as_deref(),
            Channel::Slack => self.slack_webhook_url.as_deref(),
            // The tenant's own endpoints, not the recipient's, and the user's registered devices: ingest
            // sends to each endpoint that receives the event, and to each device.
            Channel::Webhook | Channel::Push => None,
        }
    }

    /// The contact fields at `pointer`, each checked as the channel that uses it will check it again.
    pub(crate) fn parse(
        value: &Value,
        pointer: &str,
        policy: &WebhookPolicy,
        violations: &mut Violations,
    ) -> Option<Self> {
        let object = violations.object(value, pointer, &Self::FIELDS)?;
        let mut field = |name: &str, check: &dyn Fn(&str) -> Result<(), String>| {
            let text = violations.string(object, pointer, name, false)?;
            match check(text) {
                Ok(()) => Some(text.to_owned()),
                Err(message) => {
                    violations.add(child(pointer, name), message);
                    None
                }
            }
        };
        let recipient = Self {
            user_id: field("user_id", &|id| {
                if is_valid_name(id) {
                    Ok(())
                } else {
                    Err("must match [a-z0-9_.-]{1,64}".into())
                }
            }),
            email: field("email", &|email| check_email(email).map_err(Into::into)),
            phone: field("phone", &|phone| check_phone(phone).map_err(Into::into)),
            slack_webhook_url: field("slack_webhook_url", &|url| policy.check(url).map(|_| ())),
            locale: field("locale", &|locale| {
                if is_valid_locale(locale) {
                    Ok(())
                } else {
                    Err("must be a locale such as en or en-GB".into())
                }
            }),
        };
        if object.values().all(Value::is_null) {
            violations.add(
                pointer,
                format!("must name at least one of {}", Self::FIELDS.join(", ")),
            );
        }
        Some(recipient)
    }
}

/// A validated `POST /v1/events` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSubmission {
    pub event: String,
    pub recipient: Recipient,
    /// Always a JSON object.
    pub payload: Value,
    /// Narrows the rules that apply; `None` means every channel.
    pub channels: Option<BTreeSet<Channel>>,
    pub idempotency_key: Option<String>,
}

impl EventSubmission {
    const FIELDS: [&'static str; 5] = ["event", "recipient", "payload", "channels", "idempotency_key"];

    /// Validates a parsed body, reporting every violation at once.
    pub fn from_json(body: &Value, policy: &WebhookPolicy) -> Result<Self, Vec<FieldError>> {
        Self::parse_at(body, "", policy)
    }

    /// As [`Self::from_json`], for an item of a batch at `pointer` (e.g. `/events/3`).
    pub fn parse_at(body: &Value, pointer: &str, policy: &WebhookPolicy) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(body, pointer, &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let event = violations.name(object, pointer, "event", true).map(str::to_owned);
        let recipient = match object.get("recipient") {
            None | Some(Value::Null) => {
                violations.add(child(pointer, "recipient"), "is required");
                None
            }
            Some(value) => Recipient::parse(value, &child(pointer, "recipient"), policy, &mut violations),
        };
        let payload = match object.get("payload") {
            Some(payload @ Value::Object(_)) => Some(payload.clone()),
            None | Some(Value::Null) => {
                violations.add(child(pointer, "payload"), "is required");
                None
            }
            Some(other) => {
                violations.add(
                    child(pointer, "payload"),
                    format!("must be an object, not {}", type_name(other)),
                );
                None
            }
        };
        let channels = parse_channels(
            object.get("channels"),
            &child(pointer, "channels"),
            &mut violations,
        );
        let idempotency_key = violations
            .string(object, pointer, "idempotency_key", false)
            .and_then(|key| {
                check_idempotency_key(key)
                    .map_err(|message| violations.add(child(pointer, "idempotency_key"), message))
                    .ok()
                    .map(|()| key.to_owned())
            });
        match (event, recipient, payload) {
            (Some(event), Some(recipient), Some(payload)) if violations.is_empty() => Ok(Self {
                event,
                recipient,
                payload,
                channels,
                idempotency_key,
            }),
            _ => Err(violations.into_errors()),
        }
    }

    /// Hash of the canonical JSON of what makes two submissions "the same request": `event`,
    /// `recipient`, `payload` and `channels`, with every object's keys sorted so key order does not
    /// matter.
    pub fn fingerprint(&self) -> String {
        let canonical = json!({
            "event": self.event,
            "recipient": self.recipient,
            "payload": self.payload,
            "channels": self.channels,
        });
        hex::encode(Sha256::digest(sorted_keys(&canonical).to_string().as_bytes()))
    }

    pub fn wants(&self, channel: Channel) -> bool {
        self.channels
            .as_ref()
            .is_none_or(|channels| channels.contains(&channel))
    }

    /// Settles the key from the `Idempotency-Key` header and the body's `idempotency_key`: either may
    /// be given, both only if they agree.
    pub fn settle_idempotency_key(&mut self, header: Option<&str>) -> Result<(), FieldError> {
        let Some(header) = header else { return Ok(()) };
        check_idempotency_key(header).map_err(|message| FieldError::new("/idempotency_key", message))?;
        match &self.idempotency_key {
            Some(body) if body != header => Err(FieldError::new(
                "/idempotency_key",
                "differs from the Idempotency-Key header; send one, or the same in both",
            )),
            _ => {
                self.idempotency_key = Some(header.to_owned());
                Ok(())
            }
        }
    }
}

/// What an idempotency key remembers: which request took it, and the answer it got.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub fingerprint: String,
    pub event_id: EventId,
    /// The 202 body, replayed verbatim.
    pub response: Value,
    pub expires_at: Timestamp,
}

/// An accepted event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub tenant: TenantId,
    pub id: EventId,
    pub event: String,
    pub received_at: Timestamp,
    pub payload: Value,
    pub recipient: Recipient,
    pub notification_ids: Vec<NotificationId>,
    pub idempotency_key: Option<String>,
    /// Set until every queued notification is on its queue.
    pub fanout_pending: bool,
    pub expires_at: Timestamp,
}

impl StoredEvent {
    /// The body of `GET /v1/events/{id}`.
    pub fn to_json(&self, notifications: &[Notification]) -> Value {
        json!({
            "event_id": self.id,
            "event": self.event,
            "received_at": self.received_at.to_rfc3339(),
            "payload": self.payload,
            "recipient": self.recipient,
            "notifications": notifications.iter().map(Notification::summary_json).collect::<Vec<_>>(),
        })
    }
}

/// Everything one accepted event writes, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    pub idempotency: Option<IdempotencyRecord>,
    pub event: StoredEvent,
    pub notifications: Vec<Notification>,
    /// Written with the rest, each on the condition that it has room (see [`super::rate_limit`]).
    pub rate_counters: Vec<super::rate_limit::RateCounter>,
}

/// The value with every object's keys in sorted order (serde_json keeps insertion order here).
fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<_> = object.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, item)| (key.clone(), sorted_keys(item)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LENGTH {
        return Err(format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"));
    }
    if key.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn parse_channels(
    value: Option<&Value>,
    pointer: &str,
    violations: &mut Violations,
) -> Option<BTreeSet<Channel>> {
    let items = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(other) => {
            violations.add(
                pointer,
                format!("must be an array of channel names, not {}", type_name(other)),
            );
            return None;
        }
    };
    if items.is_empty() {
        violations.add(pointer, "must not be empty; leave it out to use every channel");
        return None;
    }
    let mut channels = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let item_pointer = format!("{pointer}/{index}");
        match item.as_str().map(str::parse::<Channel>) {
            Some(Ok(channel)) => {
                channels.insert(channel);
            }
            Some(Err(unknown)) => violations.add(item_pointer, unknown.to_string()),
            None => violations.add(
                item_pointer,
                format!("must be a channel name, not {}", type_name(item)),
            ),
        }
    }
    Some(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WebhookPolicy {
        WebhookPolicy::new(["hooks.slack.com".to_owned()], false)
    }

    fn valid() -> Value {
        json!({
            "event": "order_created",
            "recipient": {"user_id": "u-42", "email": "ada@example.com", "phone": "+15555550100",
                          "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X", "locale": "en-GB"},
            "payload": {"order_id": 444, "total": 99.99},
            "channels": ["email", "slack"]
        })
    }

    fn pointers(body: &Value) -> Vec<String> {
        EventSubmission::from_json(body, &policy())
            .unwrap_err()
            .into_iter()
            .map(|e| e.pointer)
            .collect()
    }

    #[test]
    fn accepts_the_contract_example() {
        let submission = EventSubmission::from_json(&valid(), &policy()).unwrap();
        assert_eq!(submission.event, "order_created");
        assert!(submission.wants(Channel::Email) && !submission.wants(Channel::Sms));
        assert_eq!(submission.recipient.address(Channel::Sms), Some("+15555550100"));
    }

    #[test]
    fn reports_every_violation_with_its_pointer() {
        let body = json!({
            "event": "Order Created", "recipient": {"email": "nope", "phone": "555", "fax": "1"},
            "payload": [], "channels": ["email", "pigeon"], "extra": 1
        });
        assert_eq!(
            pointers(&body),
            [
                "/extra",
                "/event",
                "/recipient/fax",
                "/recipient/email",
                "/recipient/phone",
                "/payload",
                "/channels/1"
            ]
        );
    }

    #[test]
    fn requires_event_recipient_and_payload() {
        assert_eq!(pointers(&json!({})), ["/event", "/recipient", "/payload"]);
        assert_eq!(
            pointers(&json!({"event": "a", "recipient": {}, "payload": {}})),
            ["/recipient"]
        );
        assert_eq!(
            pointers(&json!({"event": "a", "recipient": {"email": "a@b.co"}, "payload": {}, "channels": []})),
            ["/channels"]
        );
    }

    #[test]
    fn fingerprint_ignores_key_order_but_not_content() {
        let a = EventSubmission::from_json(&valid(), &policy()).unwrap();
        let reordered: Value = serde_json::from_str(
            r#"{"payload": {"total": 99.99, "order_id": 444}, "channels": ["slack", "email"], "event": "order_created",
                "recipient": {"locale": "en-GB", "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X",
                              "phone": "+15555550100", "email": "ada@example.com", "user_id": "u-42"}}"#,
        )
        .unwrap();
        let b = EventSubmission::from_json(&reordered, &policy()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut changed = valid();
        changed["payload"]["total"] = json!(100);
        assert_ne!(
            a.fingerprint(),
            EventSubmission::from_json(&changed, &policy())
                .unwrap()
                .fingerprint()
        );
    }

    #[test]
    fn header_and_body_keys_must_agree() {
        let mut body = valid();
        body["idempotency_key"] = json!("k-1");
        let mut submission = EventSubmission::from_json(&body, &policy()).unwrap();
        assert!(submission.settle_idempotency_key(Some("k-1")).is_ok());
        assert!(submission.settle_idempotency_key(Some("k-2")).is_err());
        let too_long = "k".repeat(256);
        let mut plain = EventSubmission::from_json(&valid(), &policy()).unwrap();
        assert!(plain.settle_idempotency_key(Some(&too_long)).is_err());
        assert!(plain.settle_idempotency_key(Some("k-3")).is_ok());
        assert_eq!(plain.idempotency_key.as_deref(), Some("k-3"));
    }
}
