//! What one render may cost, and how that is held to.
//!
//! minijinja's fuel counts instructions, not bytes: one `"x" * 100000000`, `join` or `~` of a list holding
//! the same large string many times builds hundreds of megabytes in one step, and a channel function has
//! 256 MB for a whole batch. So, on top of fuel:
//! - the output goes to a writer that refuses to grow past [`MAX_RENDERED_BYTES`] and stops the render;
//! - `*`, `+`, `~` and slices are rewritten into calls of the functions here ([`super::rewrite`]), and
//!   every builtin filter is wrapped: each value they build is at most [`MAX_VALUE_BYTES`] (strings) or
//!   [`MAX_ITEMS`] (sequences), and all of them together at most [`BUILD_BUDGET_BYTES`] per render;
//! - a filter that turns a list or map into text first measures that text without building it, and
//!   `indent`, `pprint` and the `debug()` function, which can multiply their input, are removed;
//! - `{% set %}` and `{% filter %}` blocks, which buffer output out of the writer's reach, are refused.
//!
//! So one render holds at most about the budget, the output and what fuel allows a step of small values.

use super::rewrite;
use minijinja::value::{Rest, ValueKind, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, Value};
use std::fmt::{self, Write as _};

/// The most one rendered part may be.
pub const MAX_RENDERED_BYTES: usize = 256 * 1024;
/// The longest string an operator or filter may build: no more than a part can hold.
pub const MAX_VALUE_BYTES: usize = MAX_RENDERED_BYTES;
/// The longest sequence an operator or filter may build (the same as minijinja's own `range` limit).
pub const MAX_ITEMS: usize = 100_000;
/// The most text a filter may make of a list or map before working on it.
pub const MAX_DISPLAY_BYTES: usize = 1024 * 1024;
/// Everything operators and filters build in one render, together: values that are built and dropped
/// count too, so a loop cannot keep building afresh.
pub const BUILD_BUDGET_BYTES: usize = 16 * 1024 * 1024;
/// Widths and precisions `format` accepts (`%10s`, `%.2f`); larger ones only pad.
const MAX_FORMAT_WIDTH: usize = 1_000;

/// The bytes built so far in this render: a render-local extension of minijinja's state.
#[derive(Debug, Default)]
struct Built(usize);

/// Marks an error as a cap reached, which a test render at PUT refuses whatever the payload.
#[derive(Debug, thiserror::Error)]
#[error("a limit of the template sandbox")]
struct LimitReached;

fn too_large(what: impl fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{what}")).with_source(LimitReached)
}

/// Whether `error` is a cap of the sandbox reached (rather than a type error or a missing value).
pub(super) fn is_limit(error: &Error) -> bool {
    std::error::Error::source(error).is_some_and(<dyn std::error::Error>::is::<LimitReached>)
}

/// Counts `bytes` against the render's budget.
fn charge(state: &mut State, bytes: usize) -> Result<(), Error> {
    let built = state.get_or_insert_extension_with(Built::default);
    built.0 = built.0.saturating_add(bytes);
    if built.0 > BUILD_BUDGET_BYTES {
        return Err(too_large(format_args!(
            "the template builds more than {BUILD_BUDGET_BYTES} bytes of values"
        )));
    }
    Ok(())
}

/// Checks a value an operator or filter built, and charges it: a string by its length, a sequence or map
/// by its slots (the items themselves are shared, not copied).
fn admit(state: &mut State, value: Value) -> Result<Value, Error> {
    let bytes = if let Some(text) = value.as_str() {
        if text.len() > MAX_VALUE_BYTES {
            return Err(too_large(format_args!(
                "a value of {} bytes; the limit is {MAX_VALUE_BYTES}",
                text.len()
            )));
        }
        text.len()
    } else if let Some(bytes) = value.as_bytes() {
        bytes.len()
    } else {
        let items = value.len().unwrap_or(0);
        if items > MAX_ITEMS {
            return Err(too_large(format_args!(
                "a sequence of {items} items; the limit is {MAX_ITEMS}"
            )));
        }
        items.saturating_mul(std::mem::size_of::<Value>())
    };
    charge(state, bytes)?;
    Ok(value)
}

/// Writes text into a string that refuses to grow past `cap` bytes.
#[derive(Debug)]
pub(super) struct CappedText {
    pub text: String,
    cap: usize,
    /// Count only: nothing is kept.
    measure_only: bool,
    pub len: usize,
}

impl CappedText {
    pub fn new(cap: usize) -> Self {
        Self {
            text: String::new(),
            cap,
            measure_only: false,
            len: 0,
        }
    }

    pub fn measuring(cap: usize) -> Self {
        Self {
            measure_only: true,
            ..Self::new(cap)
        }
    }
}

impl fmt::Write for CappedText {
    fn write_str(&mut self, chunk: &str) -> fmt::Result {
        self.len = self.len.saturating_add(chunk.len());
        if self.len > self.cap {
            return Err(fmt::Error);
        }
        if !self.measure_only {
            self.text.push_str(chunk);
        }
        Ok(())
    }
}

/// The length of `value` as text, measured without building it; an error past [`MAX_DISPLAY_BYTES`].
fn display_len(state: &mut State, value: &Value) -> Result<usize, Error> {
    if let Some(text) = value.as_str() {
        return Ok(text.len());
    }
    if matches!(
        value.kind(),
        ValueKind::Undefined | ValueKind::None | ValueKind::Bool | ValueKind::Number
    ) {
        return Ok(32);
    }
    let mut measure = CappedText::measuring(MAX_DISPLAY_BYTES);
    let fits = write!(measure, "{value}").is_ok();
    charge(state, measure.len)?;
    if fits {
        Ok(measure.len)
    } else {
        Err(too_large(format_args!(
            "a value whose text is over {MAX_DISPLAY_BYTES} bytes"
        )))
    }
}

fn check_defined(state: &State, value: &Value) -> Result<(), Error> {
    if value.is_undefined() && state.undefined_behavior() == minijinja::UndefinedBehavior::Strict {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(())
}

/// minijinja's own operator on two values whose result is known to be small.
fn builtin_op(expression: &str, left: Value, right: Value) -> Result<Value, Error> {
    let env = Environment::empty();
    let expression = env.compile_expression(expression)?;
    expression.eval(minijinja::context! { left, right })
}

fn count(value: &Value) -> Result<usize, Error> {
    value.as_usize().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "strings and sequences can only be multiplied with non-negative integers",
        )
    })
}

fn is_sequence(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// `a * b`: a string or sequence is repeated only up to the caps.
fn mul(state: &mut State, left: Value, right: Value) -> Result<Value, Error> {
    check_defined(state, &left)?;
    check_defined(state, &right)?;
    if let Some((text, times)) = left
        .as_str()
        .map(|text| (text, &right))
        .or_else(|| right.as_str().map(|text| (text, &left)))
    {
        let times = count(times)?;
        let len = text.len().saturating_mul(times);
        if len > MAX_VALUE_BYTES {
            return Err(too_large(format_args!(
                "repeating a string to {len} bytes; the limit is {MAX_VALUE_BYTES}"
            )));
        }
        let repeated = Value::from(text.repeat(times));
        return admit(state, repeated);
    }
    if let Some((sequence, times)) = [(&left, &right), (&right, &left)]
        .into_iter()
        .find(|(sequence, _)| is_sequence(sequence))
    {
        let items = sequence.len().unwrap_or(MAX_ITEMS).saturating_mul(count(times)?);
        if items > MAX_ITEMS {
            return Err(too_large(format_args!(
                "repeating a sequence to {items} items; the limit is {MAX_ITEMS}"
            )));
        }
    }
    let product = builtin_op("left * right", left, right)?;
    admit(state, product)
}

/// `a + b`: strings and sequences are joined only up to the caps.
fn add(state: &mut State, left: Value, right: Value) -> Result<Value, Error> {
    check_defined(state, &left)?;
    check_defined(state, &right)?;
    if let (Some(a), Some(b)) = (left.as_str(), right.as_str()) {
        return concat_text(state, a, b);
    }
    if is_sequence(&left) && is_sequence(&right) {
        let items = left
            .len()
            .unwrap_or(MAX_ITEMS)
            .saturating_add(right.len().unwrap_or(MAX_ITEMS));
        if items > MAX_ITEMS {
            return Err(too_large(format_args!(
                "a sequence of {items} items; the limit is {MAX_ITEMS}"
            )));
        }
    }
    let sum = builtin_op("left + right", left, right)?;
    admit(state, sum)
}

fn concat_text(state: &mut State, a: &str, b: &str) -> Result<Value, Error> {
    let len = a.len().saturating_add(b.len());
    if len > MAX_VALUE_BYTES {
        return Err(too_large(format_args!(
            "joining strings to {len} bytes; the limit is {MAX_VALUE_BYTES}"
        )));
    }
    admit(state, Value::from([a, b].concat()))
}

/// `a ~ b`: both as text, written into a capped string (a list's text is written item by item, so a
/// list holding one large string many times stops at the cap instead of being built whole).
fn concat(state: &mut State, left: &Value, right: &Value) -> Result<Value, Error> {
    check_defined(state, left)?;
    check_defined(state, right)?;
    let mut text = CappedText::new(MAX_VALUE_BYTES);
    if write!(text, "{left}{right}").is_err() {
        charge(state, text.len)?;
        return Err(too_large(format_args!(
            "joining text past {MAX_VALUE_BYTES} bytes"
        )));
    }
    admit(state, Value::from(text.text))
}

/// `value[start:stop:step]`: a copy, charged like any value built.
fn slice(state: &mut State, value: Value, from: Value, until: Value, stride: Value) -> Result<Value, Error> {
    check_defined(state, &value)?;
    let env = Environment::empty();
    let sliced = env
        .compile_expression("value[from:until:stride]")?
        .eval(minijinja::context! { value, from, until, stride })?;
    admit(state, sliced)
}

/// How a builtin filter is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Builds no more than its input: its result is checked and charged.
    Result,
    /// Also turns its input into text: a list or map is measured first.
    Text,
    /// `join`: the separator repeats once per item.
    Join,
    /// `replace`: the replacement repeats once per match.
    Replace,
    /// `format`: widths and precisions pad.
    Format,
    /// `batch` and `slice`: their count makes that many slots.
    Count,
}

fn filters() -> Vec<(&'static str, Value, Bound)> {
    use Bound::{Count, Format, Join, Replace, Result, Text};
    use minijinja::filters as f;
    vec![
        ("safe", Value::from_function(f::safe), Text),
        ("escape", Value::from_function(f::escape), Text),
        ("e", Value::from_function(f::escape), Text),
        ("lower", Value::from_function(f::lower), Text),
        ("upper", Value::from_function(f::upper), Text),
        ("title", Value::from_function(f::title), Text),
        ("capitalize", Value::from_function(f::capitalize), Text),
        ("replace", Value::from_function(f::replace), Replace),
        ("length", Value::from_function(f::length), Result),
        ("count", Value::from_function(f::length), Result),
        ("dictsort", Value::from_function(f::dictsort), Result),
        ("items", Value::from_function(f::items), Result),
        ("reverse", Value::from_function(f::reverse), Result),
        ("trim", Value::from_function(f::trim), Text),
        ("join", Value::from_function(f::join), Join),
        ("split", Value::from_function(f::split), Text),
        ("lines", Value::from_function(f::lines), Text),
        ("default", Value::from_function(f::default), Result),
        ("d", Value::from_function(f::default), Result),
        ("round", Value::from_function(f::round), Result),
        ("abs", Value::from_function(f::abs), Result),
        ("int", Value::from_function(f::int), Text),
        ("float", Value::from_function(f::float), Text),
        ("attr", Value::from_function(f::attr), Result),
        ("first", Value::from_function(f::first), Result),
        ("last", Value::from_function(f::last), Result),
        ("min", Value::from_function(f::min), Result),
        ("max", Value::from_function(f::max), Result),
        ("sort", Value::from_function(f::sort), Result),
        ("list", Value::from_function(f::list), Result),
        ("string", Value::from_function(f::string), Text),
        ("bool", Value::from_function(f::bool), Result),
        ("batch", Value::from_function(f::batch), Count),
        ("slice", Value::from_function(f::slice), Count),
        ("sum", Value::from_function(f::sum), Result),
        ("select", Value::from_function(f::select), Result),
        ("reject", Value::from_function(f::reject), Result),
        ("selectattr", Value::from_function(f::selectattr), Result),
        ("rejectattr", Value::from_function(f::rejectattr), Result),
        ("map", Value::from_function(f::map), Result),
        ("groupby", Value::from_function(f::groupby), Result),
        ("unique", Value::from_function(f::unique), Result),
        ("chain", Value::from_function(f::chain), Result),
        ("zip", Value::from_function(f::zip), Result),
        ("format", Value::from_function(f::format), Format),
    ]
}

/// Filters removed outright: each can multiply its input by an argument, and none is needed to write a
/// notification.
pub const REMOVED_FILTERS: [&str; 2] = ["indent", "pprint"];

fn check_before(bound: Bound, state: &mut State, args: &[Value]) -> Result<(), Error> {
    if bound != Bound::Result {
        for arg in args {
            display_len(state, arg)?;
        }
    }
    let text = |index: usize| args.get(index).and_then(Value::as_str);
    match bound {
        Bound::Join => {
            let items = args.first().and_then(Value::len).unwrap_or(0);
            let separator = text(1).map_or(0, str::len);
            if items.saturating_mul(separator) > MAX_VALUE_BYTES {
                return Err(too_large("joining with that separator would pass the size limit"));
            }
        }
        Bound::Replace => {
            let (value, from, to) = (
                text(0).unwrap_or(""),
                text(1).unwrap_or(""),
                text(2).unwrap_or(""),
            );
            let matches = if from.is_empty() {
                value.chars().count() + 1
            } else {
                value.matches(from).count()
            };
            let len = value.len().saturating_add(matches.saturating_mul(to.len()));
            if len > MAX_VALUE_BYTES {
                return Err(too_large(format_args!(
                    "replacing would build {len} bytes; the limit is {MAX_VALUE_BYTES}"
                )));
            }
        }
        Bound::Format => check_format(text(0).unwrap_or(""))?,
        Bound::Count => {
            if args
                .get(1)
                .and_then(Value::as_usize)
                .is_some_and(|n| n > MAX_ITEMS)
            {
                return Err(too_large(format_args!("a count over {MAX_ITEMS}")));
            }
        }
        Bound::Result | Bound::Text => {}
    }
    Ok(())
}

/// Refuses `*` widths and widths or precisions over [`MAX_FORMAT_WIDTH`] in a printf-style format.
fn check_format(format: &str) -> Result<(), Error> {
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let spec: String = rest[at + 1..]
            .chars()
            .take_while(|c| !c.is_ascii_alphabetic() && *c != '%')
            .collect();
        if spec.contains('*') {
            return Err(too_large("`*` widths are not supported in format"));
        }
        let widest = spec
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|digits| {
                digits
                    .parse::<usize>()
                    .ok()
                    .or((!digits.is_empty()).then_some(usize::MAX))
            })
            .max()
            .unwrap_or(0);
        if widest > MAX_FORMAT_WIDTH {
            return Err(too_large(format_args!(
                "format widths and precisions are at most {MAX_FORMAT_WIDTH}"
            )));
        }
        rest = rest[at + 1..].get(spec.len() + 1..).unwrap_or("");
    }
    Ok(())
}

/// Registers the bounded operators and filters, and removes what cannot be bounded.
pub(super) fn install(env: &mut Environment<'static>) {
    env.add_function(rewrite::MUL, mul);
    env.add_function(rewrite::ADD, add);
    env.add_function(rewrite::CONCAT, concat);
    env.add_function(rewrite::SLICE, slice);
    for (name, builtin, bound) in filters() {
        env.add_filter(name, move |state: &mut State, args: Rest<ValueOrKwargs>| {
            // Keyword arguments pass through as the trailing value, as minijinja itself passes them.
            let args = args.into_values();
            check_before(bound, state, &args)?;
            let result = builtin.call(state, &args)?;
            admit(state, result)
        });
    }
    for name in REMOVED_FILTERS {
        env.remove_filter(name);
    }
    env.remove_global("debug");
    for name in ["dict", "namespace"] {
        let builtin = match name {
            "dict" => Value::from_function(minijinja::functions::dict),
            _ => Value::from_function(minijinja::functions::namespace),
        };
        env.add_function(name, move |state: &mut State, args: Rest<ValueOrKwargs>| {
            let result = builtin.call(state, &args.into_values())?;
            admit(state, result)
        });
    }
}

/// The formatter for every `{{ … }}`: text goes straight into the output (which is capped), never into
/// an intermediate string. In Slack text, values are escaped for mrkdwn on the way.
pub(super) fn format_value(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &Value,
    mrkdwn: bool,
) -> Result<(), Error> {
    check_defined(state, value)?;
    if mrkdwn && !value.is_safe() {
        write!(MrkdwnEscaper(out), "{value}").map_err(Error::from)
    } else {
        minijinja::escape_formatter(out, state, value)
    }
}

/// Slack's three control characters, escaped as its docs ask, as the text passes through.
struct MrkdwnEscaper<'a, 'o>(&'a mut minijinja::Output<'o>);

impl fmt::Write for MrkdwnEscaper<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(['&', '<', '>']) {
            self.0.write_str(&rest[..at])?;
            self.0.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                _ => "&gt;",
            })?;
            rest = &rest[at + 1..];
        }
        self.0.write_str(rest)
    }
}

/// An `io::Write` that takes at most `cap` bytes and then refuses, which stops the render there.
#[derive(Debug)]
pub(super) struct CappedOutput {
    pub bytes: Vec<u8>,
    cap: usize,
    pub overflowed: bool,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
            overflowed: false,
        }
    }
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(chunk.len()) > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("the output limit is reached"));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(chunk.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The stored [`AutoEscape`] mode of Slack text.
pub(super) fn is_mrkdwn(state: &State, mode: &str) -> bool {
    matches!(state.auto_escape(), AutoEscape::Custom(name) if name == mode)
}
