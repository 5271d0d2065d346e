//! Event types: the names events are sent under, each with an optional JSON Schema for its payload.

use super::validation::{Violations, child};
use super::{FieldError, Timestamp};
use jsonschema::{Draft, Validator};
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
}

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
    const FIELDS: [&'static str; 5] = ["description", "schema", "category", "critical", "max_age_seconds"];

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
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }
}

/// Compiles a payload schema (JSON Schema 2020-12 unless it names another draft).
///
/// jsonschema is built without its `resolve-http` and `resolve-file` features, so a remote or file
/// `$ref` cannot be fetched and fails compilation: tenant-written schemas never make Herald call out.
pub fn compile_schema(schema: &Value) -> Result<Validator, String> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("must be a JSON Schema (an object or a boolean)".into());
    }
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(schema)
        .map_err(|error| format!("is not a valid JSON Schema: {error}"))
}

/// Every way `payload` fails `validator`, pointed at from the request body's root.
pub fn payload_violations(validator: &Validator, payload: &Value, pointer: &str) -> Vec<FieldError> {
    validator
        .iter_errors(payload)
        .map(|error| FieldError::new(format!("{pointer}{}", error.instance_path()), error.to_string()))
        .collect()
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
    fn refuses_unknown_fields() {
        let errors = EventTypeSpec::from_json(&json!({"schema": {}, "critcal": true})).unwrap_err();
        assert_eq!(errors[0].pointer, "/critcal");
    }
}
