#![allow(clippy::unwrap_used, clippy::expect_used)]

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

    let long = TemplateContent::from_json(&json!({"channel": "sms", "text": "{{ 'x' * 1601 }}"})).unwrap();
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

#[test]
fn a_webhook_body_takes_every_value_as_json_so_a_payload_cannot_break_out() {
    let content = TemplateContent::from_json(&json!({
        "channel": "webhook",
        "text": "{\"type\": {{ event.name }}, \"name\": {{ payload.name }}, \"data\": {{ payload }}}"
    }))
    .unwrap();
    let hostile = json!({"payload": {"name": "\", \"admin\": true, \"x\": \"</script>", "n": 1},
                         "event": {"name": "order_created", "id": "evt_1"}});
    let body = content.render(&hostile).unwrap().text.unwrap();
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["type"], "order_created");
    assert_eq!(
        parsed["name"], hostile["payload"]["name"],
        "the quotes stayed inside the string"
    );
    assert_eq!(parsed["data"], hostile["payload"]);
    assert!(parsed.get("admin").is_none());
}

#[test]
fn a_webhook_body_that_is_not_json_fails_to_render_and_other_parts_are_refused() {
    let content =
        TemplateContent::from_json(&json!({"channel": "webhook", "text": "order {{ payload.order_id }}"}))
            .unwrap();
    let error = content.render(&context()).unwrap_err();
    assert_eq!(error.part, "text");
    assert!(error.message.contains("JSON"), "{}", error.message);

    let errors = TemplateContent::from_json(
        &json!({"channel": "webhook", "text": "{}", "subject": "s", "blocks": []}),
    )
    .unwrap_err();
    let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/subject", "/blocks"]);
}

#[test]
fn a_push_has_a_body_and_may_have_a_title_and_string_data_each_rendered() {
    let content = TemplateContent::from_json(&json!({
        "channel": "push", "title": "Order {{ payload.order_id }}", "text": "Hi {{ payload.name }}",
        "data": {"order_id": "{{ payload.order_id }}", "link": "app://orders/{{ payload.order_id }}"}
    }))
    .unwrap();
    let rendered = content.render(&context()).unwrap();
    assert_eq!(rendered.title.as_deref(), Some("Order 444"));
    assert_eq!(
        rendered.text.as_deref(),
        Some("Hi <!channel> & <https://evil|click>"),
        "a push is plain text: nothing to escape for"
    );
    assert_eq!(
        rendered.data,
        Some(json!({"order_id": "444", "link": "app://orders/444"}))
    );
    let stored = TemplateVersion {
        name: "p".into(),
        version: 1,
        content,
        created_at: Timestamp::from_millis(0),
    };
    assert_eq!(stored.to_json()["data"]["order_id"], "{{ payload.order_id }}");

    let cases = [
        (json!({"channel": "push", "title": "t"}), vec!["/text"]),
        (
            json!({"channel": "push", "text": "b", "subject": "s", "blocks": []}),
            vec!["/subject", "/blocks"],
        ),
        (
            json!({"channel": "push", "text": "b", "data": ["x"]}),
            vec!["/data"],
        ),
        (
            json!({"channel": "push", "text": "b", "data": {"n": 1, "ok": "{{ x }}"}}),
            vec!["/data/n"],
        ),
        (
            json!({"channel": "push", "text": "b", "data": {"bad": "{{ oops"}}),
            vec!["/data/bad"],
        ),
        (
            json!({"channel": "push", "text": "b", "data": {"aps": "x"}}),
            vec!["/data/aps"],
        ),
        (
            json!({"channel": "sms", "text": "b", "title": "t", "data": {}}),
            vec!["/title", "/data"],
        ),
    ];
    for (body, pointers) in cases {
        let errors = TemplateContent::from_json(&body).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(found, pointers, "{body}");
    }
}
