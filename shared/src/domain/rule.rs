//! Rules: on an event of a type, send one notification on one channel with one template, when an
//! optional EventBridge-style condition over `{"payload": …, "recipient": …}` matches.

use super::validation::{Violations, child, type_name};
use super::{Channel, FieldError, Timestamp};
use quamina::Quamina;
use serde_json::{Value, json};

/// At most this many rules per event type, so one event's notifications fit in one transaction.
pub const MAX_RULES_PER_EVENT_TYPE: usize = 50;

/// What a client PUTs at `/v1/rules/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub event: String,
    pub channel: Channel,
    pub template: String,
    pub condition: Option<Value>,
    pub enabled: bool,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub spec: RuleSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl RuleSpec {
    const FIELDS: [&'static str; 5] = ["event", "channel", "template", "condition", "enabled"];

    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(body, "", &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let event = violations.name(object, "", "event", true).map(str::to_owned);
        let channel = violations.string(object, "", "channel", true).and_then(|raw| {
            raw.parse::<Channel>()
                .map_err(|unknown| violations.add("/channel", unknown.to_string()))
                .ok()
        });
        let template = violations.name(object, "", "template", true).map(str::to_owned);
        let enabled = violations.boolean(object, "", "enabled").unwrap_or(true);
        let condition = match object.get("condition") {
            None | Some(Value::Null) => None,
            Some(condition) => match check_condition(condition) {
                Ok(()) => Some(condition.clone()),
                Err(message) => {
                    violations.add(child("", "condition"), message);
                    None
                }
            },
        };
        match (event, channel, template) {
            (Some(event), Some(channel), Some(template)) => violations.finish(Self {
                event,
                channel,
                template,
                condition,
                enabled,
            }),
            _ => Err(violations.into_errors()),
        }
    }
}

impl Rule {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "event": self.spec.event,
            "channel": self.spec.channel,
            "template": self.spec.template,
            "condition": self.spec.condition,
            "enabled": self.spec.enabled,
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }
}

/// A condition is a quamina pattern whose top-level fields are `payload` and/or `recipient`.
fn check_condition(condition: &Value) -> Result<(), String> {
    let Some(object) = condition.as_object() else {
        return Err(format!("must be a pattern object, not {}", type_name(condition)));
    };
    if object.is_empty() {
        return Err("must not be empty; leave it out to match every event".into());
    }
    if let Some(key) = object
        .keys()
        .find(|key| !matches!(key.as_str(), "payload" | "recipient"))
    {
        return Err(format!("may only match on payload and recipient, not {key:?}"));
    }
    let mut quamina: Quamina<usize> = Quamina::new();
    quamina
        .add_pattern(0, &condition.to_string())
        .map_err(|error| format!("is not a valid pattern: {error}"))
}

/// The rules of one event type, compiled for matching.
pub struct RuleSet {
    rules: Vec<Rule>,
    conditions: Quamina<usize>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl RuleSet {
    /// Compiles the enabled rules; one whose stored condition no longer compiles never matches (and is
    /// logged), rather than failing every event of the type.
    pub fn new(rules: Vec<Rule>) -> Self {
        let rules: Vec<Rule> = rules.into_iter().filter(|rule| rule.spec.enabled).collect();
        let mut conditions = Quamina::new();
        for (index, rule) in rules.iter().enumerate() {
            if let Some(condition) = &rule.spec.condition {
                if let Err(error) = conditions.add_pattern(index, &condition.to_string()) {
                    tracing::warn!(rule = %rule.id, %error, "rule condition does not compile; it never matches");
                }
            }
        }
        Self { rules, conditions }
    }

    /// Whether any enabled rule sends on `channel`.
    pub fn uses(&self, channel: Channel) -> bool {
        self.rules.iter().any(|rule| rule.spec.channel == channel)
    }

    /// The rules that apply to an event with this payload and recipient, in a stable order.
    pub fn matching(&self, payload: &Value, recipient: &Value) -> Vec<&Rule> {
        let subject = json!({"payload": payload, "recipient": recipient}).to_string();
        let matched = self.conditions.matches_for_event(subject.as_bytes()).unwrap_or_else(|error| {
            tracing::warn!(%error, "rule conditions could not be evaluated; only unconditional rules apply");
            Vec::new()
        });
        self.rules
            .iter()
            .enumerate()
            .filter(|(index, rule)| rule.spec.condition.is_none() || matched.contains(index))
            .map(|(_, rule)| rule)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, condition: Option<Value>, enabled: bool) -> Rule {
        Rule {
            id: id.into(),
            spec: RuleSpec {
                event: "order_created".into(),
                channel: Channel::Email,
                template: "t".into(),
                condition,
                enabled,
            },
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn matches_conditions_over_payload_and_recipient() {
        let rules = RuleSet::new(vec![
            rule("always", None, true),
            rule(
                "big",
                Some(json!({"payload": {"total": [{"numeric": [">", 100]}]}})),
                true,
            ),
            rule(
                "vip",
                Some(json!({"recipient": {"locale": [{"prefix": "en"}]}})),
                true,
            ),
            rule("off", None, false),
        ]);
        let ids = |payload: Value, recipient: Value| -> Vec<String> {
            rules
                .matching(&payload, &recipient)
                .into_iter()
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(ids(json!({"total": 99.99}), json!({"locale": "de"})), ["always"]);
        assert_eq!(
            ids(json!({"total": 150}), json!({"locale": "en-GB"})),
            ["always", "big", "vip"]
        );
    }

    #[test]
    fn validates_conditions_at_put() {
        let body = |condition: Value| json!({"event": "e", "channel": "sms", "template": "t", "condition": condition});
        assert!(RuleSpec::from_json(&body(json!({"payload": {"total": [{"numeric": [">", 100]}]}}))).is_ok());
        for bad in [
            json!({"total": [1]}),
            json!({"payload": {"x": 1}}),
            json!([]),
            json!({}),
        ] {
            let errors = RuleSpec::from_json(&body(bad.clone())).unwrap_err();
            assert_eq!(errors[0].pointer, "/condition", "{bad}");
        }
    }

    #[test]
    fn requires_known_channel_and_names() {
        let errors = RuleSpec::from_json(&json!({"event": "E", "channel": "fax"})).unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/event", "/channel", "/template"]);
    }
}
