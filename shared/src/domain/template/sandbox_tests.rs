//! Hostile templates against the sandbox: each is stopped by a cap, and what it built stays small.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::hostile::HOSTILE;
use super::sandbox::{BUILD_BUDGET_BYTES, CappedOutput, MAX_ITEMS, MAX_VALUE_BYTES};
use super::*;

fn sms(text: &str) -> TemplateContent {
    TemplateContent::from_json(&json!({"channel": "sms", "text": text})).unwrap()
}

fn slack(text: &str) -> TemplateContent {
    TemplateContent::from_json(&json!({"channel": "slack", "text": text})).unwrap()
}

fn context() -> Value {
    json!({"payload": {"name": "Ada", "total": 12.5, "qty": 3, "items": ["a", "b", "c"], "n": 100_000_000},
           "recipient": {"email": "ada@example.com"}, "event": {"name": "order_created", "id": "evt_1"}})
}

#[test]
fn every_hostile_template_is_stopped_by_a_cap_or_refused() {
    for source in HOSTILE {
        let content = TemplateContent::from_json(&json!({"channel": "sms", "text": source}));
        let Ok(content) = content else {
            continue; // refused at PUT already
        };
        let error = content.render(&context()).expect_err(source);
        assert!(
            matches!(
                error.failure,
                Failure::Limit | Failure::Unsupported | Failure::UnknownName
            ),
            "{source}: {error} ({:?})",
            error.failure
        );
    }
}

#[test]
fn compiling_does_not_fold_a_huge_constant() {
    // minijinja folds `"x" * n` with constant operands while compiling; the rewrite turns it into a call,
    // so the PUT's compile check builds nothing (the render, not the compile, reaches the cap).
    let content = sms(r#"{{ "x" * 100000000 }}"#);
    let error = content.render(&context()).unwrap_err();
    assert_eq!(error.failure, Failure::Limit);
    assert!(error.message.contains("262144"), "{error}");
}

#[test]
fn the_output_stops_at_its_cap() {
    let env = environment(Channel::Sms);
    let mut output = CappedOutput::new(1_000);
    let template = env
        .template_from_str("{% for i in range(100000) %}0123456789{% endfor %}")
        .unwrap();
    let error = template
        .render_captured_to(minijinja::Value::UNDEFINED, &mut output)
        .unwrap_err();
    assert!(output.overflowed, "{error}");
    assert_eq!(
        output.bytes.len(),
        1_000,
        "it stopped at the cap, and kept nothing past it"
    );

    let long = slack(&format!(
        "{{% for i in range(100000) %}}{}{{% endfor %}}",
        "0123456789".repeat(10)
    ));
    let error = long.render(&context()).unwrap_err();
    assert_eq!(error.failure, Failure::Limit);
    assert!(error.message.contains("more than"), "{error}");
}

#[test]
fn values_are_capped_by_size_items_and_a_budget() {
    let render = |source: &str| sms(source).render(&context());
    let at_cap = format!("{{{{ ('x' * {MAX_VALUE_BYTES})|length }}}}");
    assert_eq!(
        render(&at_cap).unwrap().text.unwrap(),
        MAX_VALUE_BYTES.to_string()
    );
    let past = format!("{{{{ ('x' * {})|length }}}}", MAX_VALUE_BYTES + 1);
    assert_eq!(render(&past).unwrap_err().failure, Failure::Limit);

    let items = format!("{{{{ ([1] * {MAX_ITEMS})|list|length }}}}");
    assert_eq!(render(&items).unwrap().text.unwrap(), MAX_ITEMS.to_string());
    let too_many = format!("{{{{ ([1] * {})|list|length }}}}", MAX_ITEMS + 1);
    assert_eq!(render(&too_many).unwrap_err().failure, Failure::Limit);

    // Each value is small, but together they pass the budget: built values are counted, kept or not.
    let rounds = BUILD_BUDGET_BYTES / 100_000 + 10;
    let budget = format!("{{% for i in range({rounds}) %}}{{{{ ('x' * 100000)|length > 0 }}}}{{% endfor %}}");
    let error = render(&budget).unwrap_err();
    assert_eq!(error.failure, Failure::Limit);
    assert!(error.message.contains("builds more than"), "{error}");
}

#[test]
fn ordinary_templates_render_as_before() {
    let cases = [
        (r#"{{ "Total: " ~ payload.total }}"#, "Total: 12.5"),
        (
            "{{ payload.qty * 2 }} {{ payload.qty + 1 }} {{ payload.total * 2 }}",
            "6 4 25.0",
        ),
        (r#"{{ "ab" * 3 }}{{ 3 * "c" }}"#, "abababccc"),
        ("{{ ([1, 2] + [3])|join(',') }} {{ [0] * 3 }}", "1,2,3 [0, 0, 0]"),
        (
            r#"{{ payload.items[:2]|join(", ") }} {{ payload.name[1:] }} {{ payload.items[::-1]|first }}"#,
            "a, b da c",
        ),
        (
            r#"{{ "%.2f"|format(payload.total) }} {{ "%5s|"|format("x") }}"#,
            "12.50     x|",
        ),
        (
            "{{ payload.name|upper }} {{ payload.items|length }} {{ payload.items|batch(2)|list }}",
            "ADA 3 [['a', 'b'], ['c']]",
        ),
        (
            "{% set ns = namespace(total=0) %}{% for i in payload.items %}{% set ns.total = ns.total + 1 %}{% endfor %}{{ ns.total }}",
            "3",
        ),
        (
            "{{ dict(a=1)|items|list }} {{ 'a-b'|replace('-', '+') }} {{ payload.items|map('upper')|join }}",
            "[('a', 1)] a+b ABC",
        ),
        (
            "{{ (payload.name ~ '!')|lower }}{% if payload.qty * 2 > 5 %} many{% endif %}",
            "ada! many",
        ),
    ];
    for (source, expected) in cases {
        let rendered = sms(source)
            .render(&context())
            .unwrap_or_else(|error| panic!("{source}: {error}"));
        assert_eq!(rendered.text.as_deref(), Some(expected), "{source}");
    }
}

#[test]
fn slack_text_is_still_escaped_for_mrkdwn_through_the_bounded_operators() {
    let rendered = slack(r#"{{ "<!channel>" ~ payload.name }} {{ ["<b>"] }}"#)
        .render(&context())
        .unwrap();
    assert_eq!(
        rendered.text.as_deref(),
        Some("&lt;!channel&gt;Ada ['&lt;b&gt;']")
    );
}

#[test]
fn undefined_values_are_still_errors_through_the_bounded_operators() {
    for source in [
        "{{ payload.missing ~ 'x' }}",
        "{{ payload.missing * 2 }}",
        "{{ payload.missing[1:] }}",
    ] {
        let error = sms(source).render(&context()).unwrap_err();
        assert_eq!(error.failure, Failure::Undefined, "{source}: {error}");
    }
}

#[test]
fn capturing_blocks_are_refused_at_put() {
    for source in [
        "{% set x %}a{% endset %}{{ x }}",
        "{% filter upper %}a{% endfilter %}",
    ] {
        let errors = TemplateContent::from_json(&json!({"channel": "sms", "text": source})).unwrap_err();
        assert!(
            errors[0].message.contains("not supported"),
            "{source}: {}",
            errors[0].message
        );
    }
}
