//! A hostile template against the emulator: refused at PUT, and when forced into the store (bypassing the
//! API), its one notification ends failed with render_error while its neighbours in the same SQS batch are
//! sent, and the channel function keeps its memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::similar_names)] // test code: a panic is a failed test

use herald::domain::template::TemplateContent;
use herald::domain::{Channel, Timestamp};
use herald::ports::TemplateStore;
use herald_integration_tests::ApiRequest;
use herald_integration_tests::delivery_fixture::{
    accept, notification, notification_id, seeded_stack, slack_that_accepts,
};
use serde_json::json;

/// Unbounded, 100 MB in one step (and at compile time, where minijinja folds constants).
const HOSTILE: &str = r#"New order {{ "x" * 100000000 }}"#;

#[tokio::test]
async fn a_hostile_template_is_refused_at_put_and_if_forced_in_fails_alone_in_its_batch() {
    let slack = slack_that_accepts().await;
    let (stack, mut event) = seeded_stack(&slack).await;
    let hostile = json!({"channel": "slack", "text": HOSTILE});

    let put = ApiRequest::new("PUT", "/v1/templates/order-slack")
        .key(&stack.api_key)
        .json(&hostile);
    let refused = stack.call_api(&stack.api(), &put).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(refused.problem_code(), "validation_failed");
    let error = &refused.body["errors"][0];
    assert_eq!(error["pointer"], "/text");
    assert!(error["message"].as_str().unwrap().contains("limit"), "{error}");
    let live = stack
        .config_store()
        .template_head(&stack.tenant, "order-slack")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.live_versions["en"], 1, "nothing was stored");

    // Four events are accepted on the good template, then the hostile one is forced in, bypassing the
    // API, and a fifth event pins it.
    event["channels"] = json!(["slack"]);
    let mut accepted = Vec::new();
    for order in 0..4 {
        event["payload"]["order_id"] = json!(order);
        accepted.push(accept(&stack, &event).await);
    }
    let content = TemplateContent::from_json(&hostile).unwrap();
    stack
        .config_store()
        .put_template(&stack.tenant, "order-slack", &content, Timestamp::now())
        .await
        .unwrap();
    event["payload"]["order_id"] = json!(4);
    let forced = accept(&stack, &event).await;

    let envelopes = stack.drain(Channel::Slack).await;
    assert_eq!(envelopes.len(), 5);
    let bodies: Vec<(String, String)> = envelopes
        .iter()
        .enumerate()
        .map(|(i, envelope)| (format!("m{i}"), serde_json::to_string(envelope).unwrap()))
        .collect();
    let response = stack.deliver_slack_bodies(&bodies).await;

    assert!(
        response.batch_item_failures.is_empty(),
        "every message settled and acknowledged: {:?}",
        response.batch_item_failures
    );
    let failed = notification(&stack, &notification_id(&forced, Channel::Slack)).await;
    assert_eq!(
        (failed["status"].clone(), failed["reason"].clone()),
        (json!("failed"), json!("render_error")),
        "{failed}"
    );
    for answer in &accepted {
        let sent = notification(&stack, &notification_id(answer, Channel::Slack)).await;
        assert_eq!(sent["status"], "sent", "{sent}");
    }
    let received = slack.received_requests().await.unwrap();
    assert_eq!(
        received.len(),
        4,
        "the neighbours, each once; nothing of the hostile one"
    );
    assert!(received.iter().all(|request| request.body.len() < 1024));

    let audit = stack.audit(Some(&slack)).await;
    audit.assert_nothing_lost_or_doubled(&[]);
}
