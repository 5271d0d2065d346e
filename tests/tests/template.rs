//! The invariants of `template.yaml` that keep messages from being lost or delivered twice, checked on
//! the template itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::Channel;
use herald::telemetry::Function;
use herald_integration_tests::template_file::{reference, resources, template};
use serde_norway::Value;

/// A number, or the default of the parameter a `!Ref` names.
fn number(template: &Value, value: &Value) -> u64 {
    match value {
        Value::Tagged(tagged) => {
            let parameter = &template["Parameters"][tagged.value.as_str().unwrap()];
            parameter["Default"]
                .as_u64()
                .unwrap()
                .max(parameter["MinValue"].as_u64().unwrap_or(0))
        }
        other => other.as_u64().unwrap(),
    }
}

fn function_timeout(template: &Value, function: &Value) -> u64 {
    function["Properties"]["Timeout"]
        .as_u64()
        .or_else(|| template["Globals"]["Function"]["Timeout"].as_u64())
        .unwrap()
}

#[test]
fn every_queue_redrives_to_a_dlq_that_allows_console_redrive() {
    let template = template();
    let queues = resources(&template, "AWS::SQS::Queue");
    let sources: Vec<_> = queues
        .iter()
        .filter(|(_, q)| !q["Properties"]["RedrivePolicy"].is_null())
        .collect();
    assert_eq!(
        sources.len(),
        Channel::ALL.len() + 1,
        "one per channel, and the feedback queue"
    );
    for (id, queue) in sources {
        let redrive = &queue["Properties"]["RedrivePolicy"];
        assert!(
            number(&template, &redrive["maxReceiveCount"]) >= 5,
            "{id}: maxReceiveCount"
        );
        let dlq_id = reference(&redrive["deadLetterTargetArn"]);
        let dlq = &template["Resources"][dlq_id.as_str()]["Properties"];
        assert_eq!(
            dlq["RedriveAllowPolicy"]["redrivePermission"].as_str(),
            Some("byQueue"),
            "{id}: {dlq_id}"
        );
        assert_eq!(
            dlq["MessageRetentionPeriod"].as_u64(),
            Some(1_209_600),
            "{dlq_id}: 14 days"
        );
        assert_eq!(
            queue["Properties"]["SqsManagedSseEnabled"].as_bool(),
            Some(true),
            "{id}: SSE"
        );
        assert_eq!(dlq["SqsManagedSseEnabled"].as_bool(), Some(true), "{dlq_id}: SSE");
    }
}

/// Every function with an SQS event: its id, the function and the event's properties.
fn sqs_consumers(template: &Value) -> Vec<(&str, &Value, &Value)> {
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .flat_map(|(id, function)| {
            function["Properties"]["Events"]
                .as_mapping()
                .unwrap()
                .values()
                .filter(|event| event["Type"].as_str() == Some("SQS"))
                .map(move |event| (id, function, &event["Properties"]))
        })
        .collect()
}

#[test]
fn every_sqs_event_reports_batch_item_failures_and_its_queue_outlasts_six_timeouts() {
    let template = template();
    let consumers = sqs_consumers(&template);
    assert_eq!(
        consumers.len(),
        Channel::ALL.len() + 1,
        "each channel's function, and the feedback one"
    );
    for (id, function, properties) in consumers {
        let types: Vec<_> = properties["FunctionResponseTypes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(types, ["ReportBatchItemFailures"], "{id}");
        assert!(properties["BatchSize"].as_u64().is_some(), "{id}: batch size");
        assert!(
            !properties["ScalingConfig"]["MaximumConcurrency"].is_null(),
            "{id}: maximum concurrency"
        );
        let queue = &template["Resources"][reference(&properties["Queue"]).as_str()];
        let visibility = queue["Properties"]["VisibilityTimeout"].as_u64().unwrap();
        assert!(
            visibility >= 6 * function_timeout(&template, function),
            "{id}: visibility {visibility}"
        );
        let variables = &function["Properties"]["Environment"]["Variables"];
        let dead_letter_queue = &queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"];
        assert!(!dead_letter_queue.is_null(), "{id}: its queue has a DLQ");
        // The feedback function re-queues nothing: a failed message comes back by itself, and SQS's redrive
        // moves it on. A channel function sends its retries and dead letters itself, to its own queues.
        if id == "FeedbackFunction" {
            assert!(variables["HERALD_QUEUE_URL"].is_null() && variables["HERALD_DLQ_URL"].is_null());
            continue;
        }
        assert_eq!(
            reference(&variables["HERALD_DLQ_URL"]),
            reference(dead_letter_queue),
            "{id} dead-letters into its own queue's DLQ"
        );
        assert_eq!(
            reference(&variables["HERALD_QUEUE_URL"]),
            reference(&properties["Queue"]),
            "{id}"
        );
    }
}

#[test]
fn every_channel_function_shares_its_send_rate_among_the_invocations_that_can_run_at_once() {
    let template = template();
    let channel_functions: Vec<_> = sqs_consumers(&template)
        .into_iter()
        .filter(|(id, _, _)| *id != "FeedbackFunction")
        .collect();
    assert_eq!(channel_functions.len(), Channel::ALL.len());
    for (id, function, properties) in channel_functions {
        let variables = &function["Properties"]["Environment"]["Variables"];
        assert_eq!(
            reference(&variables["HERALD_MAX_CONCURRENCY"]),
            reference(&properties["ScalingConfig"]["MaximumConcurrency"]),
            "{id}: each invocation's share is the rate over the invocations that run at once"
        );
        let rate = reference(&variables["HERALD_SEND_RATE_PER_SECOND"]);
        let parameter = &template["Parameters"][rate.as_str()];
        assert_eq!(parameter["Type"].as_str(), Some("Number"), "{id}: {rate}");
        assert_eq!(
            parameter["MinValue"].as_u64(),
            Some(0),
            "{id}: {rate} (0: none configured)"
        );
        // Every message of a batch waits for its permit at once, claimed at the start of the invocation,
        // which leaves each the time to wait, send and record (docs/reliability.md, send rates).
        let in_flight = variables["HERALD_DELIVERY_CONCURRENCY"].as_u64().unwrap_or(10);
        assert!(
            number(&template, &properties["BatchSize"]) <= in_flight,
            "{id}: a batch is larger than the messages it sends at once"
        );
    }
}

#[test]
fn every_function_logs_json_to_its_own_log_group() {
    let template = template();
    assert_eq!(
        template["Globals"]["Function"]["LoggingConfig"]["LogFormat"].as_str(),
        Some("JSON")
    );
    let functions = resources(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), Function::ALL.len());
    for (id, function) in functions {
        let group = reference(&function["Properties"]["LoggingConfig"]["LogGroup"]);
        let log_group = &template["Resources"][group.as_str()];
        assert_eq!(log_group["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}");
        assert!(
            !log_group["Properties"]["RetentionInDays"].is_null(),
            "{id}: retention"
        );
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        assert_eq!(
            function["Properties"]["CodeUri"].as_str(),
            Some("."),
            "{id}: built from the workspace root"
        );
    }
}

#[test]
fn unmatched_routes_reach_the_api_function_for_a_problem_answer() {
    let template = template();
    let api = &template["Resources"]["ApiFunction"]["Properties"]["Events"];
    let catch_all = api
        .as_mapping()
        .unwrap()
        .values()
        .any(|event| event["Properties"]["Path"].as_str() == Some("$default"));
    assert!(catch_all);
}
