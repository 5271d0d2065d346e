//! Strict request-body validation that reports every violation with a JSON Pointer.
//!
//! Bodies are checked as `serde_json::Value` rather than through `#[serde(deny_unknown_fields)]`, because
//! serde stops at the first problem and cannot say where it is; a client fixing a request wants all of
//! them at once.

use super::FieldError;
use serde_json::{Map, Value};

/// The pattern every name and id in a path follows: `[a-z0-9_.-]{1,64}`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

/// A BCP 47-like locale tag: `en`, `en-GB`, `pt-BR`, `zh-Hant-TW`.
pub fn is_valid_locale(locale: &str) -> bool {
    let mut parts = locale.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|lang| (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_alphabetic()));
    language_ok
        && locale.len() <= 35
        && parts.all(|part| (2..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Collects violations while walking a body.
#[derive(Debug, Default)]
pub struct Violations {
    errors: Vec<FieldError>,
}

impl Violations {
    pub fn add(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, message));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }

    /// `Ok(value)` when nothing was reported.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    /// The object at `pointer`, reporting a non-object and every field not in `allowed`.
    pub fn object<'v>(
        &mut self,
        value: &'v Value,
        pointer: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(object) = value.as_object() else {
            self.add(pointer, format!("must be an object, not {}", type_name(value)));
            return None;
        };
        for key in object.keys().filter(|key| !allowed.contains(&key.as_str())) {
            self.add(
                child(pointer, key),
                format!("unknown field; allowed fields are {}", allowed.join(", ")),
            );
        }
        Some(object)
    }

    /// A string field; reports a missing required one and a value of another type.
    pub fn string<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        pointer: &str,
        field: &str,
        required: bool,
    ) -> Option<&'v str> {
        match object.get(field) {
            None | Some(Value::Null) if required => {
                self.add(child(pointer, field), "is required");
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(other) => {
                self.add(
                    child(pointer, field),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional boolean field.
    pub fn boolean(&mut self, object: &Map<String, Value>, pointer: &str, field: &str) -> Option<bool> {
        match object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(flag)) => Some(*flag),
            Some(other) => {
                self.add(
                    child(pointer, field),
                    format!("must be a boolean, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A string field that must be a valid name (`[a-z0-9_.-]{1,64}`).
    pub fn name<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        pointer: &str,
        field: &str,
        required: bool,
    ) -> Option<&'v str> {
        let name = self.string(object, pointer, field, required)?;
        if is_valid_name(name) {
            Some(name)
        } else {
            self.add(child(pointer, field), "must match [a-z0-9_.-]{1,64}");
            None
        }
    }
}

/// The pointer to `field` inside the object at `parent`, escaped per RFC 6901.
pub fn child(parent: &str, field: &str) -> String {
    format!("{parent}/{}", field.replace('~', "~0").replace('/', "~1"))
}

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_contract() {
        assert!(is_valid_name("order_created.v2-a"));
        for bad in ["", "Order", "a b", "a/b", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn locales() {
        for good in ["en", "en-GB", "zh-Hant-TW", "pt-BR"] {
            assert!(is_valid_locale(good), "{good}");
        }
        for bad in ["", "e", "english-", "en_GB", "12", "en-G"] {
            assert!(!is_valid_locale(bad), "{bad}");
        }
    }

    #[test]
    fn reports_every_unknown_and_mistyped_field() {
        let mut violations = Violations::default();
        let body = json!({"name": 3, "extra": true, "a/b": 1});
        let object = violations.object(&body, "/rule", &["name"]).unwrap();
        assert_eq!(violations.string(object, "/rule", "name", true), None);
        assert_eq!(violations.string(object, "/rule", "missing", false), None);
        assert_eq!(violations.string(object, "/rule", "required", true), None);
        let errors = violations.into_errors();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/rule/extra", "/rule/a~1b", "/rule/name", "/rule/required"]
        );
        assert_eq!(errors[2].message, "must be a string, not a number");
    }
}
