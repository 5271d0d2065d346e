//! A tenant's users: the contact data an event naming `recipient.user_id` falls back on, and what each
//! user has opted out of.

use super::address::WebhookPolicy;
use super::event::Recipient;
use super::validation::{Violations, child, type_name};
use super::{Channel, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Event types and categories a user may set preferences for, at most.
const MAX_PREFERENCE_ENTRIES: usize = 200;

/// `PUT /v1/users/{id}`: contact fields, each checked as the channel that uses it checks it, plus a time
/// zone. Every field is optional; a PUT replaces the whole profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The contact fields, as an event's recipient has them (never with a `user_id`: the path names it).
    #[serde(flatten)]
    pub contact: Recipient,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl UserProfile {
    pub fn parse(body: &Value, policy: &WebhookPolicy) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = body.as_object() else {
            violations.add("", format!("must be an object, not {}", type_name(body)));
            return Err(violations.into_errors());
        };
        let mut contact_fields = object.clone();
        let timezone = contact_fields.remove("timezone");
        if contact_fields.remove("user_id").is_some() {
            violations.add("/user_id", "unknown field; the path names the user");
        }
        let timezone = match timezone {
            None | Some(Value::Null) => None,
            Some(Value::String(zone)) if is_valid_timezone(&zone) => Some(zone),
            Some(Value::String(_)) => {
                violations.add(
                    "/timezone",
                    "must be an IANA time zone such as Europe/London or UTC",
                );
                None
            }
            Some(other) => {
                violations.add(
                    "/timezone",
                    format!("must be a string, not {}", type_name(&other)),
                );
                None
            }
        };
        // An empty profile is allowed (a user known only by id, with preferences): the recipient's "at
        // least one field" rule is for events.
        let contact = if contact_fields.values().all(Value::is_null) {
            Some(Recipient::default())
        } else {
            Recipient::parse(&Value::Object(contact_fields), "", policy, &mut violations)
        };
        violations.finish(Self {
            contact: contact.unwrap_or_default(),
            timezone,
        })
    }

    pub fn to_json(&self, user_id: &str) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(object) = body.as_object_mut() {
            object.insert("user_id".into(), Value::String(user_id.to_owned()));
        }
        body
    }
}

/// An IANA zone name (`Europe/London`, `America/Argentina/Buenos_Aires`, `UTC`, `Etc/GMT+3`): checked for
/// its shape only; Herald keeps no zone database.
pub fn is_valid_timezone(zone: &str) -> bool {
    (1..=64).contains(&zone.len())
        && zone.split('/').all(|part| {
            part.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

/// `PUT /v1/users/{id}/preferences`: channels a user has opted in or out of, overall, per event type and
/// per category (an event type's `category`). The most specific setting wins: event type, then category,
/// then channel; a channel nobody set is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(default)]
    pub channels: BTreeMap<Channel, bool>,
    #[serde(default)]
    pub event_types: BTreeMap<String, BTreeMap<Channel, bool>>,
    #[serde(default)]
    pub categories: BTreeMap<String, BTreeMap<Channel, bool>>,
}

impl Preferences {
    const FIELDS: [&'static str; 3] = ["channels", "event_types", "categories"];

    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(body, "", &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let channels = channel_flags(object.get("channels"), "/channels", &mut violations);
        let event_types = grouped(object.get("event_types"), "/event_types", &mut violations);
        let categories = grouped(object.get("categories"), "/categories", &mut violations);
        violations.finish(Self {
            channels,
            event_types,
            categories,
        })
    }

    /// Whether the user takes `channel` for an event of type `event` in `category`.
    pub fn allows(&self, channel: Channel, event: &str, category: Option<&str>) -> bool {
        let by_event_type = self.event_types.get(event).and_then(|flags| flags.get(&channel));
        let by_category = category
            .and_then(|category| self.categories.get(category))
            .and_then(|flags| flags.get(&channel));
        by_event_type
            .or(by_category)
            .or_else(|| self.channels.get(&channel))
            .copied()
            .unwrap_or(true)
    }

    pub fn to_json(&self, user_id: &str) -> Value {
        json!({
            "user_id": user_id,
            "channels": self.channels,
            "event_types": self.event_types,
            "categories": self.categories,
        })
    }
}

/// `{"email": false, "sms": true}` at `pointer`.
fn channel_flags(
    value: Option<&Value>,
    pointer: &str,
    violations: &mut Violations,
) -> BTreeMap<Channel, bool> {
    let mut flags = BTreeMap::new();
    let Some(object) = present_object(value, pointer, violations) else {
        return flags;
    };
    for (name, flag) in object {
        let at = child(pointer, name);
        match (name.parse::<Channel>(), flag) {
            (Ok(channel), Value::Bool(flag)) => {
                flags.insert(channel, *flag);
            }
            (Err(unknown), _) => violations.add(at, unknown.to_string()),
            (Ok(_), other) => violations.add(at, format!("must be a boolean, not {}", type_name(other))),
        }
    }
    flags
}

/// `{"promo_sent": {"email": false}}` at `pointer`: channel flags by event type or category name.
fn grouped(
    value: Option<&Value>,
    pointer: &str,
    violations: &mut Violations,
) -> BTreeMap<String, BTreeMap<Channel, bool>> {
    let mut groups = BTreeMap::new();
    let Some(object) = present_object(value, pointer, violations) else {
        return groups;
    };
    if object.len() > MAX_PREFERENCE_ENTRIES {
        violations.add(pointer, format!("at most {MAX_PREFERENCE_ENTRIES} entries"));
        return groups;
    }
    for (name, flags) in object {
        let at = child(pointer, name);
        if !super::validation::is_valid_name(name) {
            violations.add(&at, "must be a name matching [a-z0-9_.-]{1,64}");
            continue;
        }
        if !flags.is_object() {
            violations.add(&at, format!("must be an object, not {}", type_name(flags)));
            continue;
        }
        groups.insert(name.clone(), channel_flags(Some(flags), &at, violations));
    }
    groups
}

fn present_object<'v>(
    value: Option<&'v Value>,
    pointer: &str,
    violations: &mut Violations,
) -> Option<&'v Map<String, Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(object)) => Some(object),
        Some(other) => {
            violations.add(pointer, format!("must be an object, not {}", type_name(other)));
            None
        }
    }
}

/// What Herald keeps of one user: either part may be missing (a user with preferences only, or never
/// asked about any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub profile: Option<UserProfile>,
    pub preferences: Option<Preferences>,
}

impl Recipient {
    /// The event's own fields, with each one it left out taken from the stored user's profile.
    #[must_use]
    pub fn filled_from(&self, profile: &UserProfile) -> Self {
        let stored = &profile.contact;
        Self {
            user_id: self.user_id.clone(),
            email: self.email.clone().or_else(|| stored.email.clone()),
            phone: self.phone.clone().or_else(|| stored.phone.clone()),
            slack_webhook_url: self
                .slack_webhook_url
                .clone()
                .or_else(|| stored.slack_webhook_url.clone()),
            locale: self.locale.clone().or_else(|| stored.locale.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy() -> WebhookPolicy {
        WebhookPolicy::new(["hooks.slack.com".to_owned()], false)
    }

    #[test]
    fn a_profile_takes_contact_fields_and_a_time_zone() {
        let profile = UserProfile::parse(
            &json!({"email": "ada@example.com", "phone": "+15555550100", "locale": "en-GB", "timezone": "Europe/London"}),
            &policy(),
        )
        .unwrap();
        assert_eq!(profile.contact.email.as_deref(), Some("ada@example.com"));
        assert_eq!(profile.timezone.as_deref(), Some("Europe/London"));
        let body = profile.to_json("u-42");
        assert_eq!(body["user_id"], "u-42");
        assert_eq!(body["locale"], "en-GB");
    }

    #[test]
    fn a_profile_reports_every_bad_field() {
        let errors = UserProfile::parse(
            &json!({"email": "not an address", "phone": "555", "timezone": "../etc", "user_id": "x", "fax": "1"}),
            &policy(),
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for pointer in ["/email", "/phone", "/timezone", "/user_id", "/fax"] {
            assert!(pointers.contains(&pointer), "{pointer} not in {pointers:?}");
        }
    }

    #[test]
    fn an_empty_profile_is_a_user_known_by_id_alone() {
        assert_eq!(
            UserProfile::parse(&json!({}), &policy()).unwrap(),
            UserProfile::default()
        );
    }

    #[test]
    fn the_most_specific_preference_wins() {
        let preferences = Preferences::parse(&json!({
            "channels": {"sms": false},
            "categories": {"marketing": {"email": false, "sms": true}},
            "event_types": {"promo_sent": {"email": true}}
        }))
        .unwrap();
        assert!(!preferences.allows(Channel::Sms, "order_created", None));
        assert!(preferences.allows(Channel::Email, "order_created", None));
        assert!(preferences.allows(Channel::Sms, "newsletter", Some("marketing")));
        assert!(!preferences.allows(Channel::Email, "newsletter", Some("marketing")));
        assert!(preferences.allows(Channel::Email, "promo_sent", Some("marketing")));
        assert!(preferences.allows(Channel::Slack, "anything", Some("marketing")));
    }

    #[test]
    fn preferences_refuse_unknown_channels_and_non_booleans() {
        let errors = Preferences::parse(&json!({
            "channels": {"fax": false, "sms": "no"},
            "event_types": {"Bad Name": {"email": false}},
            "other": {}
        }))
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for pointer in [
            "/channels/fax",
            "/channels/sms",
            "/event_types/Bad Name",
            "/other",
        ] {
            assert!(pointers.contains(&pointer), "{pointer} not in {pointers:?}");
        }
    }

    #[test]
    fn fields_given_in_the_event_win_over_the_stored_ones() {
        let profile = UserProfile::parse(
            &json!({"email": "stored@example.com", "phone": "+15555550100", "locale": "fr"}),
            &policy(),
        )
        .unwrap();
        let event = Recipient {
            user_id: Some("u-42".into()),
            email: Some("given@example.com".into()),
            ..Recipient::default()
        };
        let filled = event.filled_from(&profile);
        assert_eq!(filled.email.as_deref(), Some("given@example.com"));
        assert_eq!(filled.phone.as_deref(), Some("+15555550100"));
        assert_eq!(filled.locale.as_deref(), Some("fr"));
        assert_eq!(filled.user_id.as_deref(), Some("u-42"));
    }

    #[test]
    fn time_zones_are_checked_for_shape() {
        for good in [
            "UTC",
            "Europe/London",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+3",
        ] {
            assert!(is_valid_timezone(good), "{good}");
        }
        for bad in ["", "../etc", "Europe//London", "1970/Zone", "a b"] {
            assert!(!is_valid_timezone(bad), "{bad}");
        }
    }
}
