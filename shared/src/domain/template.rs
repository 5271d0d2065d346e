//! Templates: per channel, per locale, versioned; Jinja syntax rendered by minijinja.

use super::validation::{Violations, child, is_valid_locale, type_name};
use super::{Channel, FieldError, Timestamp};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Bounds on what one template source may be, so a stored template stays well inside an item.
const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Work one render may do; a template that loops without end runs out of fuel instead.
pub const RENDER_FUEL: u64 = 50_000;

/// The content of one version of a template in one locale.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateContent {
    pub channel: Channel,
    pub locale: String,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Slack Block Kit blocks; every string inside is a template.
    pub blocks: Option<Value>,
}

/// A name's channel, default locale and the live (newest) version of each locale.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateHead {
    pub name: String,
    pub channel: Channel,
    /// The first locale stored; the last fallback.
    pub default_locale: String,
    pub live_versions: BTreeMap<String, u32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One stored version.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateVersion {
    pub name: String,
    pub version: u32,
    pub content: TemplateContent,
    pub created_at: Timestamp,
}

impl TemplateContent {
    const FIELDS: [&'static str; 6] = ["channel", "locale", "subject", "text", "html", "blocks"];

    /// Validates a PUT body for its channel and compiles every part, so a template with a syntax error
    /// is refused at PUT rather than failing every notification later.
    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut violations = Violations::default();
        let Some(object) = violations.object(body, "", &Self::FIELDS) else {
            return Err(violations.into_errors());
        };
        let channel = violations.string(object, "", "channel", true).and_then(|raw| {
            raw.parse::<Channel>()
                .map_err(|unknown| violations.add("/channel", unknown.to_string()))
                .ok()
        });
        let locale = match violations.string(object, "", "locale", false) {
            None => "en".to_owned(),
            Some(locale) if is_valid_locale(locale) => locale.to_owned(),
            Some(_) => {
                violations.add("/locale", "must be a locale such as en or en-GB");
                "en".to_owned()
            }
        };
        let subject = violations.string(object, "", "subject", false).map(str::to_owned);
        let text = violations.string(object, "", "text", false).map(str::to_owned);
        let html = violations.string(object, "", "html", false).map(str::to_owned);
        let blocks = object.get("blocks").filter(|blocks| !blocks.is_null()).cloned();
        let Some(channel) = channel else {
            return Err(violations.into_errors());
        };
        let content = Self {
            channel,
            locale,
            subject,
            text,
            html,
            blocks,
        };
        content.check_parts(&mut violations);
        content.compile(&mut violations);
        violations.finish(content)
    }

    fn check_parts(&self, violations: &mut Violations) {
        let forbid = |violations: &mut Violations, field: &str, present: bool| {
            if present {
                violations.add(
                    child("", field),
                    format!("is not used by {} templates", self.channel),
                );
            }
        };
        match self.channel {
            Channel::Email => {
                if self.subject.is_none() {
                    violations.add("/subject", "is required for email templates");
                }
                if self.text.is_none() && self.html.is_none() {
                    violations.add("/text", "email templates need text, html or both");
                }
                forbid(violations, "blocks", self.blocks.is_some());
            }
            Channel::Sms | Channel::Slack => {
                if self.text.is_none() {
                    violations.add("/text", format!("is required for {} templates", self.channel));
                }
                forbid(violations, "subject", self.subject.is_some());
                forbid(violations, "html", self.html.is_some());
                if self.channel == Channel::Sms {
                    forbid(violations, "blocks", self.blocks.is_some());
                }
            }
        }
        if let Some(blocks) = &self.blocks {
            if !blocks.is_array() {
                violations.add(
                    "/blocks",
                    format!("must be a Block Kit array, not {}", type_name(blocks)),
                );
            }
        }
    }

    fn compile(&self, violations: &mut Violations) {
        let env = environment(self.channel);
        let mut check = |pointer: String, source: &str| {
            if source.len() > MAX_SOURCE_BYTES {
                violations.add(pointer, format!("must be at most {MAX_SOURCE_BYTES} bytes"));
            } else if let Err(error) = env.template_from_str(source) {
                violations.add(pointer, format!("does not compile: {error}"));
            }
        };
        for (field, source) in [
            ("subject", &self.subject),
            ("text", &self.text),
            ("html", &self.html),
        ] {
            if let Some(source) = source {
                check(child("", field), source);
            }
        }
        if let Some(blocks) = &self.blocks {
            for_each_string(blocks, "/blocks", &mut |pointer, source| check(pointer, source));
        }
    }

    /// The stored form of the content (channel and locale live on the item's keys).
    pub fn parts_json(&self) -> Value {
        json!({"subject": self.subject, "text": self.text, "html": self.html, "blocks": self.blocks})
    }
}

impl TemplateHead {
    /// Picks the locale to render for a recipient: exact (`en-GB`), then its language (`en`), then the
    /// template's default locale.
    pub fn resolve_locale(&self, requested: Option<&str>) -> (&str, u32) {
        let candidates = requested
            .into_iter()
            .flat_map(|locale| [Some(locale), locale.split_once('-').map(|(language, _)| language)])
            .flatten();
        for candidate in candidates {
            if let Some((locale, version)) = self.live_versions.get_key_value(candidate) {
                return (locale, *version);
            }
        }
        let version = self.live_versions.get(&self.default_locale).copied().unwrap_or(1);
        (&self.default_locale, version)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "channel": self.channel,
            "default_locale": self.default_locale,
            "locales": self.live_versions,
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }
}

impl TemplateVersion {
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "name": self.name,
            "channel": self.content.channel,
            "locale": self.content.locale,
            "version": self.version,
            "created_at": self.created_at.to_rfc3339(),
        });
        if let (Some(map), Value::Object(parts)) = (body.as_object_mut(), self.content.parts_json()) {
            map.extend(parts.into_iter().filter(|(_, value)| !value.is_null()));
        }
        body
    }
}

/// The one minijinja environment templates are compiled and rendered with: undefined variables are
/// errors, HTML parts are auto-escaped, and rendering is bounded by fuel.
pub fn environment(channel: Channel) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    env.set_auto_escape_callback(move |name| {
        if channel == Channel::Email && name.to_ascii_lowercase().ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// Calls `visit` with the pointer and text of every string inside `value`.
fn for_each_string(value: &Value, pointer: &str, visit: &mut dyn FnMut(String, &str)) {
    match value {
        Value::String(text) => visit(pointer.to_owned(), text),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                for_each_string(item, &format!("{pointer}/{index}"), visit);
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                for_each_string(item, &child(pointer, key), visit);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_needs_a_subject_and_a_body() {
        let errors = TemplateContent::from_json(&json!({"channel": "email"})).unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/subject", "/text"]);
        let ok = TemplateContent::from_json(
            &json!({"channel": "email", "subject": "Hi", "html": "<p>{{ payload.x }}</p>"}),
        );
        assert_eq!(ok.unwrap().locale, "en");
    }

    #[test]
    fn refuses_templates_that_do_not_compile() {
        let errors = TemplateContent::from_json(&json!({
            "channel": "slack", "text": "ok", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "{{ oops"}}]
        }))
        .unwrap_err();
        assert_eq!(errors[0].pointer, "/blocks/0/text/text");
        assert!(errors[0].message.starts_with("does not compile"));
    }

    #[test]
    fn refuses_parts_the_channel_does_not_use() {
        let errors =
            TemplateContent::from_json(&json!({"channel": "sms", "text": "x", "subject": "s", "html": "h"}))
                .unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/subject", "/html"]);
    }

    #[test]
    fn locale_falls_back_to_language_then_default() {
        let head = TemplateHead {
            name: "t".into(),
            channel: Channel::Email,
            default_locale: "de".into(),
            live_versions: BTreeMap::from([("de".into(), 2), ("en".into(), 3), ("en-US".into(), 1)]),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        };
        assert_eq!(head.resolve_locale(Some("en-US")), ("en-US", 1));
        assert_eq!(head.resolve_locale(Some("en-GB")), ("en", 3));
        assert_eq!(head.resolve_locale(Some("fr")), ("de", 2));
        assert_eq!(head.resolve_locale(None), ("de", 2));
    }
}
