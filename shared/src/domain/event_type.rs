//! Event types: the names events are sent under, each with an optional JSON Schema for its payload.

use super::validation::{Violations, child};
use super::{FieldError, Timestamp};
use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::Value;

/// What a client PUTs at `/v1/event-types/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeSpec {
    pub description: Option<String>,
    pub schema: Option<Value>,
    pub category: Option<String>,
    /// Critical event types ignore opt-outs and rate limits.
    pub critical: bool,
    /// How late a notification of this type may still arrive; past it, it ends `expired` instead (an
    /// OTP is useless after minutes). `None`: the deployment's default.
    pub max_age_seconds: Option<u64>,
    /// Notifications a minute per recipient and channel for this type, instead of the tenant's or the
    /// deployment's limit (0: none). `None`: theirs.
    pub rate_limit_per_minute: Option<u32>,
}

/// The values `rate_limit_per_minute` may take (0: no limit).
pub const RATE_LIMIT_RANGE: std::ops::RangeInclusive<u32> = 0..=100_000;

/// The shortest and longest `max_age_seconds`: a minute, and the fourteen days a queue keeps a message.
pub const MAX_AGE_RANGE: std::ops::RangeInclusive<u64> = 60..=1_209_600;

/// A stored event type.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: String,
    pub spec: EventTypeSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl EventTypeSpec {
    const FIELDS: [&'static str; 6] = [
        "description",
        "schema",
        "category",
        "critical",
        "max_age_seconds",
        "rate_limit_per_minute",
    ];

    /// Validates the body and compiles its schema, so a broken schema is refused at PUT, not at ingest.
    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(body, "", &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let description = violations
            .string(object, "", "description", false)
            .map(str::to_owned);
        let category = violations.name(object, "", "category", false).map(str::to_owned);
        let critical = violations.boolean(object, "", "critical").unwrap_or(false);
        let max_age_seconds = object
            .get("max_age_seconds")
            .filter(|value| !value.is_null())
            .and_then(|value| {
                let seconds = value.as_u64().filter(|seconds| MAX_AGE_RANGE.contains(seconds));
                if seconds.is_none() {
                    violations.add(
                        child("", "max_age_seconds"),
                        format!(
                            "must be a whole number of seconds from {} to {} (14 days)",
                            MAX_AGE_RANGE.start(),
                            MAX_AGE_RANGE.end()
                        ),
                    );
                }
                seconds
            });
        let rate_limit_per_minute = object
            .get("rate_limit_per_minute")
            .filter(|value| !value.is_null())
            .and_then(|value| {
                let limit = value
                    .as_u64()
                    .and_then(|limit| u32::try_from(limit).ok())
                    .filter(|limit| RATE_LIMIT_RANGE.contains(limit));
                if limit.is_none() {
                    violations.add(
                        child("", "rate_limit_per_minute"),
                        format!(
                            "must be a whole number from {} (no limit) to {}",
                            RATE_LIMIT_RANGE.start(),
                            RATE_LIMIT_RANGE.end()
                        ),
                    );
                }
                limit
            });
        let schema = match object.get("schema") {
            None | Some(Value::Null) => None,
            Some(schema) => match compile_schema(schema) {
                Ok(_) => Some(schema.clone()),
                Err(message) => {
                    violations.add(child("", "schema"), message);
                    None
                }
            },
        };
        violations.finish(Self {
            description,
            schema,
            category,
            critical,
            max_age_seconds,
            rate_limit_per_minute,
        })
    }
}

impl EventType {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "description": self.spec.description,
            "schema": self.spec.schema,
            "category": self.spec.category,
            "critical": self.spec.critical,
            "max_age_seconds": self.spec.max_age_seconds,
            "rate_limit_per_minute": self.spec.rate_limit_per_minute,
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }
}

/// The most violations one answer lists; a payload of 256 KiB can fail a schema hundreds of thousands of
/// times, and the answer must stay readable (and inside a Lambda response).
pub const MAX_VIOLATIONS: usize = 50;
/// The longest message of one violation: jsonschema quotes the failing value, which may be 256 KiB.
const MAX_VIOLATION_MESSAGE_CHARS: usize = 300;
/// The most one compiled `pattern` (and its lazy DFA's cache) may take.
const MAX_PATTERN_BYTES: usize = 1024 * 1024;

/// Compiles a payload schema (JSON Schema 2020-12 unless it names another draft).
///
/// jsonschema is built without its `resolve-http` and `resolve-file` features, so a remote or file
/// `$ref` cannot be fetched and fails compilation: tenant-written schemas never make Herald call out.
/// `pattern` and `patternProperties` use the `regex` crate, which matches in time linear in the input
/// whatever the pattern (no backtracking), instead of jsonschema's default `fancy-regex`: a tenant's
/// `^(a+)+$` cannot hold ingest for seconds. The price is that look-around and backreferences are not
/// supported; a schema using them does not compile and is refused at PUT.
pub fn compile_schema(schema: &Value) -> Result<Validator, String> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("must be a JSON Schema (an object or a boolean)".into());
    }
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_pattern_options(
            PatternOptions::regex()
                .size_limit(MAX_PATTERN_BYTES)
                .dfa_size_limit(MAX_PATTERN_BYTES),
        )
        .build(schema)
        .map_err(|error| format!("is not a valid JSON Schema: {error}"))
}

/// The ways `payload` fails `validator`, pointed at from the request body's root: at most
/// [`MAX_VIOLATIONS`], then one entry saying how many more there are.
pub fn payload_violations(validator: &Validator, payload: &Value, pointer: &str) -> Vec<FieldError> {
    if validator.is_valid(payload) {
        return Vec::new();
    }
    let mut errors = validator.iter_errors(payload);
    let mut violations: Vec<FieldError> = errors
        .by_ref()
        .take(MAX_VIOLATIONS)
        .map(|error| {
            FieldError::new(
                format!("{pointer}{}", error.instance_path()),
                describe(&error.to_string(), &error.instance().to_string()),
            )
        })
        .collect();
    let more = errors.count();
    if more > 0 {
        violations.push(FieldError::new(
            pointer,
            format!("and {more} more violations, not listed (the first {MAX_VIOLATIONS} are)"),
        ));
    }
    violations
}

/// jsonschema's message, which starts with the failing value, with that value cut short, so what is
/// wrong with it stays in view.
fn describe(message: &str, instance: &str) -> String {
    const VALUE_CHARS: usize = 60;
    let message = match message.strip_prefix(instance) {
        Some(rest) if instance.chars().count() > VALUE_CHARS => {
            format!("{}…{rest}", truncate(instance, VALUE_CHARS))
        }
        _ => message.to_owned(),
    };
    match message.char_indices().nth(MAX_VIOLATION_MESSAGE_CHARS) {
        None => message,
        Some((cut, _)) => format!("{}…", &message[..cut]),
    }
}

fn truncate(text: &str, chars: usize) -> &str {
    text.char_indices()
        .nth(chars)
        .map_or(text, |(cut, _)| &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_a_schema_and_reports_every_payload_violation() {
        let spec = EventTypeSpec::from_json(&json!({
            "description": "An order was placed",
            "schema": {"type": "object", "required": ["order_id"],
                       "properties": {"order_id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}}},
            "category": "orders"
        }))
        .unwrap();
        let validator = compile_schema(spec.schema.as_ref().unwrap()).unwrap();
        assert!(payload_violations(&validator, &json!({"order_id": 1, "total": 2.5}), "/payload").is_empty());
        let errors = payload_violations(&validator, &json!({"total": -1}), "/payload");
        let mut pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(pointers, ["/payload", "/payload/total"]);
    }

    #[test]
    fn refuses_schemas_that_do_not_compile() {
        for schema in [json!({"type": "nonsense"}), json!(3), json!({"minimum": "ten"})] {
            let errors = EventTypeSpec::from_json(&json!({"schema": schema})).unwrap_err();
            assert_eq!(errors[0].pointer, "/schema", "{schema}");
        }
    }

    #[test]
    fn refuses_remote_and_file_refs() {
        for reference in ["https://example.com/schema.json", "file:///etc/passwd"] {
            let schema = json!({"$ref": reference});
            assert!(
                compile_schema(&schema).is_err(),
                "{reference} must not be fetched"
            );
        }
    }

    #[test]
    fn a_max_age_is_a_whole_number_of_seconds_within_a_queues_retention() {
        let spec = EventTypeSpec::from_json(&json!({"max_age_seconds": 300})).unwrap();
        assert_eq!(spec.max_age_seconds, Some(300));
        assert_eq!(
            EventTypeSpec::from_json(&json!({})).unwrap().max_age_seconds,
            None
        );
        for bad in [json!(59), json!(1_209_601), json!(-5), json!(1.5), json!("300")] {
            let errors = EventTypeSpec::from_json(&json!({"max_age_seconds": bad})).unwrap_err();
            assert_eq!(errors[0].pointer, "/max_age_seconds", "{bad}");
        }
    }

    #[test]
    fn patterns_match_in_linear_time_so_catastrophic_backtracking_cannot_happen() {
        // Under a backtracking engine `^(a+)+$` against "aaaa…b" tries every split of the a's; the
        // linear-time engine answers at once. The result is what is asserted, never the time.
        let validator = compile_schema(&json!({"type": "string", "pattern": "^(a+)+$"})).unwrap();
        let hostile = format!("{}b", "a".repeat(100_000));
        let errors = payload_violations(&validator, &json!(hostile), "/payload");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("does not match"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.chars().count() <= MAX_VIOLATION_MESSAGE_CHARS + 1,
            "the 100,000-character value is not echoed whole"
        );
        assert!(payload_violations(&validator, &json!("aaaa"), "/payload").is_empty());
    }

    #[test]
    fn patterns_a_linear_engine_cannot_run_are_refused_at_put() {
        for pattern in ["^(?=a)a$", r"^(a)\1$"] {
            let errors = EventTypeSpec::from_json(&json!({"schema": {"type": "string", "pattern": pattern}}))
                .unwrap_err();
            assert_eq!(errors[0].pointer, "/schema", "{pattern}");
        }
    }

    #[test]
    fn violation_lists_are_capped() {
        let validator = compile_schema(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let payload = json!(vec![1; 10_000]);
        let errors = payload_violations(&validator, &payload, "/payload");
        assert_eq!(errors.len(), MAX_VIOLATIONS + 1);
        assert_eq!(errors[0].pointer, "/payload/0");
        let last = errors.last().unwrap();
        assert_eq!(last.pointer, "/payload");
        assert!(last.message.contains("9950 more"), "{}", last.message);
    }

    #[test]
    fn refuses_unknown_fields() {
        let errors = EventTypeSpec::from_json(&json!({"schema": {}, "critcal": true})).unwrap_err();
        assert_eq!(errors[0].pointer, "/critcal");
    }
}
