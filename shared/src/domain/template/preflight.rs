//! The test render a template PUT (and a rule PUT) runs: the template is rendered against an example of
//! each event type that uses it, and what would fail for every event is refused.
//!
//! What is refused, whatever the payload: a syntax error, a construct the sandbox does not allow, a cap
//! reached (fuel, output, a value's size, the build budget), a filter, test or function that does not
//! exist, and a variable that is never in scope: a name other than `payload`, `recipient` and `event`, a
//! recipient or event field that does not exist, or a payload field the event type's schema does not
//! declare where it lists its properties. What depends on the payload is not refused: the example is a
//! guess, and an optional field, a type mismatch on example values or a branch the example does not take
//! may well render with real events. The sandbox still bounds those at send time.

use super::{Failure, TemplateContent, environment_with, rewrite};
use crate::domain::FieldError;
use crate::domain::validation::child;
use minijinja::UndefinedBehavior;
use serde_json::{Map, Value, json};

/// The fields a template sees under `recipient` and `event`.
const RECIPIENT_FIELDS: [&str; 5] = ["user_id", "email", "phone", "slack_webhook_url", "locale"];
const EVENT_FIELDS: [&str; 3] = ["name", "id", "received_at"];
/// How deep an example is built from nested schemas.
const MAX_EXAMPLE_DEPTH: usize = 16;

/// An event type a template is rendered for: its name and payload schema (if it has one).
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub event_type: String,
    pub schema: Option<Value>,
}

impl TemplateContent {
    /// Test-renders every part for each event type in `usages` (with an empty payload when none uses the
    /// template yet) and returns what would fail whatever the event: one entry per part and reason.
    pub fn test_render(&self, usages: &[Usage]) -> Vec<FieldError> {
        let unused = [Usage {
            event_type: String::new(),
            schema: None,
        }];
        let usages = if usages.is_empty() { &unused[..] } else { usages };
        let mut errors: Vec<FieldError> = Vec::new();
        let mut add = |error: FieldError| {
            if !errors.contains(&error) {
                errors.push(error);
            }
        };
        let env = environment_with(self.channel, UndefinedBehavior::Chainable);
        for usage in usages {
            let context = example_context(usage);
            let on = describe_usage(usage);
            if let Err(error) = self.render_in(&env, &context) {
                if matches!(
                    error.failure,
                    Failure::Syntax | Failure::Unsupported | Failure::Limit | Failure::UnknownName
                ) {
                    let pointer = if error.part.starts_with('/') {
                        error.part.clone()
                    } else {
                        child("", &error.part)
                    };
                    add(FieldError::new(
                        pointer,
                        format!("fails a test render{on}: {}", error.message),
                    ));
                }
            }
            for (pointer, name, source) in self.parts() {
                for variable in never_in_scope(&env, name, source, usage.schema.as_ref()) {
                    add(FieldError::new(
                        pointer.clone(),
                        format!("uses {variable}, which is never defined{on}"),
                    ));
                }
            }
        }
        errors
    }
}

fn describe_usage(usage: &Usage) -> String {
    if usage.event_type.is_empty() {
        String::new()
    } else {
        format!(" for event type {}", usage.event_type)
    }
}

/// The context of a test render: the schema's first `examples` entry as the payload, or one built from
/// the schema (every declared property, optional ones included).
fn example_context(usage: &Usage) -> Value {
    let payload = usage.schema.as_ref().map_or_else(|| json!({}), example_payload);
    json!({
        "payload": payload,
        "recipient": {"user_id": "u-example", "email": "ada@example.com", "phone": "+15555550100",
                      "slack_webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX", "locale": "en"},
        "event": {"name": usage.event_type, "id": "evt_example", "received_at": "2025-01-01T00:00:00Z"},
    })
}

/// An example payload for `schema`: its own `examples[0]` if it has one, else one synthesised from it.
pub fn example_payload(schema: &Value) -> Value {
    match schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|examples| examples.first())
    {
        Some(example) => example.clone(),
        None => synthesise(schema, 0),
    }
}

fn synthesise(schema: &Value, depth: usize) -> Value {
    let Some(schema) = schema.as_object().filter(|_| depth < MAX_EXAMPLE_DEPTH) else {
        return Value::Null;
    };
    for keyword in ["const", "default"] {
        if let Some(value) = schema.get(keyword) {
            return value.clone();
        }
    }
    for keyword in ["examples", "enum"] {
        if let Some(first) = schema
            .get(keyword)
            .and_then(Value::as_array)
            .and_then(|list| list.first())
        {
            return first.clone();
        }
    }
    let declared_type = match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    };
    let kind = declared_type.or_else(|| schema.contains_key("properties").then_some("object"));
    match kind {
        Some("object") => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let object: Map<String, Value> = properties
                .into_iter()
                .flatten()
                .map(|(name, property)| (name.clone(), synthesise(property, depth + 1)))
                .collect();
            Value::Object(object)
        }
        Some("array") => match schema.get("items") {
            Some(items) if items.is_object() => json!([synthesise(items, depth + 1)]),
            _ => json!([]),
        },
        Some("string") => json!(match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => "2025-01-01T00:00:00Z",
            Some("date") => "2025-01-01",
            Some("email") => "ada@example.com",
            Some("uri" | "url") => "https://example.com/",
            _ => "example",
        }),
        Some("integer") => schema.get("minimum").cloned().unwrap_or_else(|| json!(1)),
        Some("number") => schema.get("minimum").cloned().unwrap_or_else(|| json!(1.5)),
        Some("boolean") => json!(true),
        _ => Value::Null,
    }
}

/// The variables `source` reads that are never in scope: `name.field` paths, as written.
fn never_in_scope(
    env: &minijinja::Environment<'static>,
    name: &str,
    source: &str,
    schema: Option<&Value>,
) -> Vec<String> {
    let Ok(bounded) = rewrite::bounded_source(source, name) else {
        return Vec::new();
    };
    let Ok(template) = env.template_from_named_str(name, &bounded) else {
        return Vec::new();
    };
    let globals: Vec<&str> = env.globals().map(|(global, _)| global).collect();
    let mut unknown: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter(|path| {
            let mut segments = path.split('.');
            let root = segments.next().unwrap_or_default();
            let field = segments.next();
            match root {
                "payload" => schema.is_some_and(|schema| !declares(schema, path.split('.').skip(1))),
                "recipient" => field.is_some_and(|field| !RECIPIENT_FIELDS.contains(&field)),
                "event" => field.is_some_and(|field| !EVENT_FIELDS.contains(&field)),
                root => !globals.contains(&root),
            }
        })
        .collect();
    unknown.sort();
    unknown
}

/// Whether `schema` may hold the path of property names: refused only where a schema lists its
/// properties and the name is not one of them. An object that lists none, `patternProperties`,
/// combinators (`allOf`, `anyOf`, `oneOf`, `$ref`, `if`) or anything other than an object schema are
/// taken to allow any name: the check must never refuse a field that can exist.
fn declares<'p>(schema: &Value, mut path: impl Iterator<Item = &'p str>) -> bool {
    let Some(name) = path.next() else {
        return true;
    };
    let Some(object) = schema.as_object() else {
        return true;
    };
    let open = [
        "patternProperties",
        "allOf",
        "anyOf",
        "oneOf",
        "$ref",
        "if",
        "dependentSchemas",
    ]
    .iter()
    .any(|keyword| object.contains_key(*keyword));
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return true;
    };
    match properties.get(name) {
        Some(property) => declares(property, path),
        None => open,
    }
}
