//! Templates: per channel, per locale, versioned; Jinja syntax rendered by minijinja.

use super::delivery::RenderedMessage;
use super::validation::{Violations, child, is_valid_locale, type_name};
use super::{Channel, FieldError, Timestamp};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Value, json};
use std::borrow::Cow;
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

/// The auto-escape mode of Slack text: values are escaped for mrkdwn.
const MRKDWN: &str = "mrkdwn";
/// The most one rendered part may be.
pub const MAX_RENDERED_BYTES: usize = 256 * 1024;
/// SNS refuses SMS messages longer than this.
pub const MAX_SMS_CHARS: usize = 1600;
/// RFC 5322's line limit, and so a subject's.
pub const MAX_SUBJECT_BYTES: usize = 998;

/// The one minijinja environment templates are compiled and rendered with: undefined variables are
/// errors, HTML parts are auto-escaped, values put into Slack text are escaped for mrkdwn (so a payload
/// cannot inject `<!channel>` or a link), and rendering is bounded by fuel.
pub fn environment(channel: Channel) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    env.set_auto_escape_callback(move |name| match channel {
        Channel::Email if name.to_ascii_lowercase().ends_with(".html") => AutoEscape::Html,
        Channel::Slack => AutoEscape::Custom(Cow::Borrowed(MRKDWN)),
        _ => AutoEscape::None,
    });
    env.set_formatter(|out, state, value| {
        if matches!(state.auto_escape(), AutoEscape::Custom(mode) if mode == MRKDWN) && !value.is_safe() {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            out.write_str(&escape_mrkdwn(&text))
                .map_err(minijinja::Error::from)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

/// Slack's three control characters, as its docs ask: `&`, `<`, `>`.
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A template that cannot be rendered with this event: a missing variable, a type error, out of fuel,
/// or output over the limits. The notification fails with `render_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct RenderError {
    pub part: String,
    pub message: String,
}

impl RenderError {
    fn new(part: &str, message: impl Into<String>) -> Self {
        Self {
            part: part.to_owned(),
            message: message.into(),
        }
    }
}

impl TemplateContent {
    /// Renders every part with `context` (`payload`, `recipient`, `event`).
    pub fn render(&self, context: &Value) -> Result<RenderedMessage, RenderError> {
        let env = environment(self.channel);
        let context = minijinja::Value::from(minijinja::value::Serde(context));
        let render = |part: &str, name: &str, source: &str| -> Result<String, RenderError> {
            let output = env
                .render_named_str(name, source, context.clone())
                .map_err(|error| RenderError::new(part, describe(&error)))?;
            if output.len() > MAX_RENDERED_BYTES {
                let message = format!(
                    "renders to {} bytes; the limit is {MAX_RENDERED_BYTES}",
                    output.len()
                );
                return Err(RenderError::new(part, message));
            }
            Ok(output)
        };
        let subject = match self.subject.as_deref() {
            None => None,
            Some(source) => {
                // A line break in a subject is a header injection waiting to happen.
                let subject = render("subject", "subject.txt", source)?.replace(['\r', '\n'], " ");
                if subject.len() > MAX_SUBJECT_BYTES {
                    return Err(RenderError::new(
                        "subject",
                        format!("is longer than {MAX_SUBJECT_BYTES} bytes"),
                    ));
                }
                Some(subject.trim().to_owned())
            }
        };
        let text = self
            .text
            .as_deref()
            .map(|source| render("text", "text.txt", source))
            .transpose()?;
        let sms_chars = text
            .as_ref()
            .filter(|_| self.channel == Channel::Sms)
            .map(|text| text.chars().count());
        if let Some(count) = sms_chars.filter(|count| *count > MAX_SMS_CHARS) {
            let message = format!("is {count} characters; an SMS takes at most {MAX_SMS_CHARS}");
            return Err(RenderError::new("text", message));
        }
        let html = self
            .html
            .as_deref()
            .map(|source| render("html", "body.html", source))
            .transpose()?;
        let blocks = self
            .blocks
            .as_ref()
            .map(|blocks| render_strings(blocks, "/blocks", &render))
            .transpose()?;
        Ok(RenderedMessage {
            subject,
            text,
            html,
            blocks,
        })
    }
}

/// Block Kit is rendered field by field: every string is a template, the structure stays as written.
fn render_strings(
    value: &Value,
    pointer: &str,
    render: &dyn Fn(&str, &str, &str) -> Result<String, RenderError>,
) -> Result<Value, RenderError> {
    Ok(match value {
        Value::String(source) => Value::String(render(pointer, "block.txt", source)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| render_strings(item, &format!("{pointer}/{index}"), render))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, item)| Ok((key.clone(), render_strings(item, &child(pointer, key), render)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

/// minijinja's error with its detail (e.g. which variable is undefined), without the source dump.
fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
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

    fn context() -> Value {
        json!({"payload": {"order_id": 444, "name": "<!channel> & <https://evil|click>"},
               "recipient": {"email": "ada@example.com"}, "event": {"name": "order_created", "id": "evt_1"}})
    }

    #[test]
    fn renders_email_with_html_escaped_and_text_verbatim() {
        let content = TemplateContent::from_json(
            &json!({"channel": "email", "subject": "Order #{{ payload.order_id }}",
            "text": "Hi {{ payload.name }}", "html": "<p>{{ payload.name }}</p>"}),
        )
        .unwrap();
        let rendered = content.render(&context()).unwrap();
        assert_eq!(rendered.subject.as_deref(), Some("Order #444"));
        assert_eq!(
            rendered.text.as_deref(),
            Some("Hi <!channel> & <https://evil|click>")
        );
        assert_eq!(
            rendered.html.as_deref(),
            Some("<p>&lt;!channel&gt; &amp; &lt;https:&#x2f;&#x2f;evil|click&gt;</p>")
        );
    }

    #[test]
    fn slack_values_are_escaped_for_mrkdwn_but_the_template_is_not() {
        let content = TemplateContent::from_json(
            &json!({"channel": "slack", "text": "*New* <https://shop|order> {{ payload.name }}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "{{ payload.name }}"}}]}),
        )
        .unwrap();
        let rendered = content.render(&context()).unwrap();
        assert_eq!(
            rendered.text.as_deref(),
            Some("*New* <https://shop|order> &lt;!channel&gt; &amp; &lt;https://evil|click&gt;")
        );
        assert_eq!(
            rendered.blocks.unwrap()[0]["text"]["text"],
            "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
        );
    }

    #[test]
    fn undefined_variables_fuel_and_size_are_render_errors() {
        let missing =
            TemplateContent::from_json(&json!({"channel": "sms", "text": "{{ payload.missing }}"})).unwrap();
        let error = missing.render(&context()).unwrap_err();
        assert_eq!(error.part, "text");
        assert!(error.message.contains("undefined"), "{error}");

        let endless = TemplateContent::from_json(&json!({"channel": "sms",
            "text": "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"}))
        .unwrap();
        assert!(endless.render(&context()).is_err(), "runs out of fuel");

        let long =
            TemplateContent::from_json(&json!({"channel": "sms", "text": "{{ 'x' * 1601 }}"})).unwrap();
        assert!(long.render(&context()).unwrap_err().message.contains("1600"));
    }

    #[test]
    fn subjects_lose_line_breaks() {
        let content = TemplateContent::from_json(
            &json!({"channel": "email", "subject": "A{{ '\r\nBcc: x' }}", "text": "t"}),
        )
        .unwrap();
        assert_eq!(
            content.render(&context()).unwrap().subject.as_deref(),
            Some("A  Bcc: x")
        );
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
