//! Templates: per channel, per locale, versioned; Jinja syntax rendered by minijinja.

use super::delivery::RenderedMessage;
use super::validation::{Violations, child, is_valid_locale, type_name};
use super::{Channel, FieldError, Timestamp};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

mod preflight;
mod rewrite;
pub mod sandbox;

pub use preflight::{Usage, example_payload};

pub use sandbox::MAX_RENDERED_BYTES;
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
    /// A push's title (its body is `text`).
    pub title: Option<String>,
    /// A push's data: an object whose every value is a template of a string the app receives.
    pub data: Option<Value>,
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
    const FIELDS: [&'static str; 8] = [
        "channel", "locale", "subject", "text", "html", "blocks", "title", "data",
    ];

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
        let title = violations.string(object, "", "title", false).map(str::to_owned);
        let data = object.get("data").filter(|data| !data.is_null()).cloned();
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
            title,
            data,
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
            Channel::Push => {
                if self.text.is_none() {
                    violations.add("/text", "is required for push templates (the body)");
                }
                forbid(violations, "subject", self.subject.is_some());
                forbid(violations, "html", self.html.is_some());
                forbid(violations, "blocks", self.blocks.is_some());
            }
            Channel::Sms | Channel::Slack | Channel::Webhook => {
                if self.text.is_none() {
                    violations.add("/text", format!("is required for {} templates", self.channel));
                }
                forbid(violations, "subject", self.subject.is_some());
                forbid(violations, "html", self.html.is_some());
                if matches!(self.channel, Channel::Sms | Channel::Webhook) {
                    forbid(violations, "blocks", self.blocks.is_some());
                }
            }
        }
        if self.channel != Channel::Push {
            forbid(violations, "title", self.title.is_some());
            forbid(violations, "data", self.data.is_some());
        }
        if let Some(data) = &self.data {
            match data.as_object() {
                None => violations.add("/data", format!("must be an object, not {}", type_name(data))),
                Some(object) => {
                    for (key, value) in object {
                        if super::device::is_reserved_data_key(key) {
                            violations.add(
                                child("/data", key),
                                "is a key the push platforms keep for themselves",
                            );
                        } else if !value.is_string() {
                            violations.add(
                                child("/data", key),
                                format!("must be a string template, not {}", type_name(value)),
                            );
                        }
                    }
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

    /// Compiles every part as it will be rendered. Compiling the source as written is not enough, and not
    /// safe: minijinja folds constant operands while compiling, so `{{ "x" * 100000000 }}` would allocate
    /// there; the sandbox's rewrite turns such operators into bounded calls first.
    fn compile(&self, violations: &mut Violations) {
        let env = environment(self.channel);
        for (pointer, name, source) in self.parts() {
            if source.len() > MAX_SOURCE_BYTES {
                violations.add(pointer, format!("must be at most {MAX_SOURCE_BYTES} bytes"));
            } else if let Err(error) = compile_part(&env, name, source) {
                violations.add(pointer, format!("does not compile: {}", error.message));
            }
        }
    }

    /// Every template string of the content: its pointer in a PUT body, the name it renders under (which
    /// picks its escaping) and its source.
    fn parts(&self) -> Vec<(String, &'static str, &str)> {
        let mut parts = Vec::new();
        for (field, name, source) in [
            ("subject", "subject.txt", &self.subject),
            ("text", "text.txt", &self.text),
            ("html", "body.html", &self.html),
            ("title", "title.txt", &self.title),
        ] {
            if let Some(source) = source {
                parts.push((child("", field), name, source.as_str()));
            }
        }
        if let Some(blocks) = &self.blocks {
            for_each_string(blocks, "/blocks", &mut |pointer, source| {
                parts.push((pointer, "block.txt", source));
            });
        }
        if let Some(data) = &self.data {
            for_each_string(data, "/data", &mut |pointer, source| {
                parts.push((pointer, "data.txt", source));
            });
        }
        parts
    }

    /// The stored form of the content (channel and locale live on the item's keys).
    pub fn parts_json(&self) -> Value {
        json!({
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "blocks": self.blocks,
            "title": self.title,
            "data": self.data,
        })
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
/// SNS refuses SMS messages longer than this.
pub const MAX_SMS_CHARS: usize = 1600;
/// RFC 5322's line limit, and so a subject's.
pub const MAX_SUBJECT_BYTES: usize = 998;

/// The one minijinja environment templates are compiled and rendered with: undefined variables are
/// errors, HTML parts are auto-escaped, values put into Slack text are escaped for mrkdwn (so a payload
/// cannot inject `<!channel>` or a link), and rendering is bounded by fuel and by the sandbox's caps.
pub fn environment(channel: Channel) -> Environment<'static> {
    environment_with(channel, UndefinedBehavior::Strict)
}

/// The environment with another undefined behaviour: a test render on an example payload tolerates
/// what the example lacks.
fn environment_with(channel: Channel, undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    env.set_auto_escape_callback(move |name| match channel {
        Channel::Email if name.to_ascii_lowercase().ends_with(".html") => AutoEscape::Html,
        Channel::Slack => AutoEscape::Custom(Cow::Borrowed(MRKDWN)),
        // A webhook's text is its JSON body: every value goes in as JSON (a string quoted and escaped), so
        // a payload cannot break out of the document.
        Channel::Webhook => AutoEscape::Json,
        _ => AutoEscape::None,
    });
    env.set_formatter(|out, state, value| {
        let mrkdwn = sandbox::is_mrkdwn(state, MRKDWN);
        sandbox::format_value(out, state, value, mrkdwn)
    });
    sandbox::install(&mut env);
    env
}

/// Slack's three control characters, as its docs ask: `&`, `<`, `>`.
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Compiles one part as it will be rendered (rewritten for the sandbox), without rendering it.
fn compile_part(env: &Environment<'static>, name: &str, source: &str) -> Result<(), RenderError> {
    let bounded = rewrite::bounded_source(source, name)
        .map_err(|error| RenderError::from_minijinja(name, &error, false))?;
    let template = env
        .template_from_named_str(name, &bounded)
        .map_err(|error| RenderError::from_minijinja(name, &error, false))?;
    match rewrite::unbounded_instruction(&template) {
        Some(why) => Err(RenderError::new(name, Failure::Unsupported, why)),
        None => Ok(()),
    }
}

/// Renders one part into a capped output; the render stops where the cap is reached.
fn render_part(
    env: &Environment<'static>,
    part: &str,
    name: &str,
    source: &str,
    context: &minijinja::Value,
) -> Result<String, RenderError> {
    let failed =
        |error: &minijinja::Error, overflowed: bool| RenderError::from_minijinja(part, error, overflowed);
    let bounded = rewrite::bounded_source(source, name).map_err(|error| failed(&error, false))?;
    let template = env
        .template_from_named_str(name, &bounded)
        .map_err(|error| failed(&error, false))?;
    if let Some(why) = rewrite::unbounded_instruction(&template) {
        return Err(RenderError::new(part, Failure::Unsupported, why));
    }
    let mut output = sandbox::CappedOutput::new(MAX_RENDERED_BYTES);
    let rendered = template.render_captured_to(context.clone(), &mut output);
    if let Err(error) = rendered {
        return Err(failed(&error, output.overflowed));
    }
    String::from_utf8(output.bytes)
        .map_err(|_| RenderError::new(part, Failure::Data, "renders to invalid UTF-8"))
}

/// Why a part could not be rendered: what a test render at PUT refuses depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The source does not parse.
    Syntax,
    /// A construct the sandbox does not allow (a capturing block, an operator it cannot bound).
    Unsupported,
    /// Over a cap: fuel, the output size, a value's size or the build budget. Never depends on luck.
    Limit,
    /// A filter, test, function or method that does not exist.
    UnknownName,
    /// A variable or attribute that is not there.
    Undefined,
    /// Anything else that depends on the values: a type error, a bad argument.
    Data,
}

/// A template that cannot be rendered with this event: a missing variable, a type error, out of fuel,
/// or output over the limits. The notification fails with `render_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct RenderError {
    pub part: String,
    pub message: String,
    pub failure: Failure,
}

impl RenderError {
    fn new(part: &str, failure: Failure, message: impl Into<String>) -> Self {
        Self {
            part: part.to_owned(),
            message: message.into(),
            failure,
        }
    }

    /// Classifies minijinja's error; `overflowed` says the capped output refused a write.
    fn from_minijinja(part: &str, error: &minijinja::Error, overflowed: bool) -> Self {
        use minijinja::ErrorKind as Kind;
        if overflowed {
            let message =
                format!("renders to more than {MAX_RENDERED_BYTES} bytes; the limit is {MAX_RENDERED_BYTES}");
            return Self::new(part, Failure::Limit, message);
        }
        let failure = match error.kind() {
            _ if sandbox::is_limit(error) => Failure::Limit,
            Kind::OutOfFuel => Failure::Limit,
            Kind::SyntaxError | Kind::BadEscape | Kind::InvalidDelimiter => Failure::Syntax,
            Kind::UnknownFilter
            | Kind::UnknownTest
            | Kind::UnknownFunction
            | Kind::UnknownMethod
            | Kind::TemplateNotFound
            | Kind::BadInclude => Failure::UnknownName,
            Kind::UndefinedError => Failure::Undefined,
            _ => Failure::Data,
        };
        Self::new(part, failure, describe(error))
    }
}

impl TemplateContent {
    /// Renders every part with `context` (`payload`, `recipient`, `event`).
    pub fn render(&self, context: &Value) -> Result<RenderedMessage, RenderError> {
        self.render_in(&environment(self.channel), context)
    }

    fn render_in(&self, env: &Environment<'static>, context: &Value) -> Result<RenderedMessage, RenderError> {
        let context = minijinja::Value::from(minijinja::value::Serde(context));
        let render = |part: &str, name: &str, source: &str| render_part(env, part, name, source, &context);
        let subject = match self.subject.as_deref() {
            None => None,
            Some(source) => {
                // A line break in a subject is a header injection waiting to happen.
                let subject = render("subject", "subject.txt", source)?.replace(['\r', '\n'], " ");
                if subject.len() > MAX_SUBJECT_BYTES {
                    return Err(RenderError::new(
                        "subject",
                        Failure::Limit,
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
            return Err(RenderError::new("text", Failure::Limit, message));
        }
        if let Some(body) = text.as_deref().filter(|_| self.channel == Channel::Webhook)
            && let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(body)
        {
            let message = format!("does not render to a JSON document ({error}); a webhook's body is JSON");
            return Err(RenderError::new("text", Failure::Data, message));
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
        let title = self
            .title
            .as_deref()
            .map(|source| render("title", "title.txt", source))
            .transpose()?;
        let data = self
            .data
            .as_ref()
            .map(|data| render_strings(data, "/data", &render))
            .transpose()?;
        Ok(RenderedMessage {
            subject,
            text,
            html,
            blocks,
            title,
            data,
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
fn for_each_string<'v>(value: &'v Value, pointer: &str, visit: &mut dyn FnMut(String, &'v str)) {
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
mod hostile;
#[cfg(test)]
mod preflight_tests;
#[cfg(test)]
mod sandbox_tests;
#[cfg(test)]
mod tests;
