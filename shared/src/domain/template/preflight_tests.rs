//! The test render at PUT: what fails for every event is refused, what depends on the payload is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::hostile::HOSTILE;
use super::*;

fn template(channel: &str, text: &str) -> TemplateContent {
    TemplateContent::from_json(&json!({"channel": channel, "text": text})).unwrap()
}

fn orders() -> Usage {
    Usage {
        event_type: "order_created".into(),
        schema: Some(json!({
            "type": "object", "required": ["order_id"],
            "properties": {
                "order_id": {"type": "integer"},
                "total": {"type": "number"},
                "coupon": {"type": "string"},
                "customer": {"type": "object", "properties": {"name": {"type": "string"}}},
                "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
                "extra": {"type": "object"}
            }
        })),
    }
}

#[test]
fn every_hostile_template_is_refused_by_the_test_render() {
    // One that takes its size from the payload (`"x" * payload.n`) depends on the event: the sandbox
    // stops it at send time, and the test render does not refuse it.
    for source in HOSTILE.iter().filter(|source| !source.contains("payload.")) {
        let Ok(content) = TemplateContent::from_json(&json!({"channel": "sms", "text": source})) else {
            continue; // refused by the compile check already
        };
        let errors = content.test_render(&[]);
        assert!(!errors.is_empty(), "{source} passed the test render");
        assert_eq!(errors[0].pointer, "/text", "{source}");
    }
}

#[test]
fn legitimate_templates_pass_optional_fields_included() {
    for source in [
        "Order {{ payload.order_id }} of {{ payload.total }}",
        "{% if payload.coupon is defined %}Coupon {{ payload.coupon|upper }}{% endif %}",
        "{{ payload.coupon|default('none') }} {{ payload.customer.name }}",
        "{% for line in payload.lines %}{{ line.sku }} {{ loop.index }}{% endfor %}",
        "{{ payload.extra.anything }} {{ recipient.email }} {{ event.name }} {{ range(3)|join }}",
        "{{ (payload.total * 1.2)|round(2) }} {{ payload.customer.name ~ '!' }}",
        // A type error with the example's values depends on the payload: not refused.
        "{{ payload.customer.name * 'x' }}",
    ] {
        let errors = template("sms", source).test_render(&[orders()]);
        assert!(errors.is_empty(), "{source}: {errors:?}");
    }
}

#[test]
fn names_never_in_scope_are_refused() {
    let cases = [
        ("{{ payload.ordr_id }}", "payload.ordr_id"),
        ("{{ payload.customer.nmae }}", "payload.customer.nmae"),
        ("{{ order_id }}", "order_id"),
        ("{{ recipient.mail }}", "recipient.mail"),
        ("{{ event.nme }}", "event.nme"),
    ];
    for (source, variable) in cases {
        let errors = template("sms", source).test_render(&[orders()]);
        assert_eq!(errors.len(), 1, "{source}: {errors:?}");
        assert!(
            errors[0].message.contains(variable),
            "{source}: {}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains("order_created"),
            "{}",
            errors[0].message
        );
    }
    // Without a schema, or with one that lists no properties, any payload field may exist.
    let open = Usage {
        event_type: "open".into(),
        schema: Some(json!({"type": "object"})),
    };
    for usages in [vec![], vec![open]] {
        assert!(
            template("sms", "{{ payload.ordr_id }}")
                .test_render(&usages)
                .is_empty()
        );
    }
}

#[test]
fn unknown_filters_and_caps_are_refused_on_the_example() {
    let errors = template("sms", "{{ payload.order_id|no_such_filter }}").test_render(&[orders()]);
    assert!(errors[0].message.contains("unknown filter"), "{errors:?}");
    let too_long = template("sms", &"x".repeat(2_000)).test_render(&[orders()]);
    assert!(too_long[0].message.contains("1600"), "{too_long:?}");
}

#[test]
fn examples_come_from_the_schema() {
    let schema = orders().schema.unwrap();
    let example = example_payload(&schema);
    assert_eq!(example["order_id"], 1);
    assert_eq!(example["lines"][0]["sku"], "example");
    assert_eq!(example["customer"]["name"], "example");
    let with_example = json!({"type": "object", "examples": [{"order_id": 42}]});
    assert_eq!(example_payload(&with_example), json!({"order_id": 42}));
}
