//! The operations part of `template.yaml` (issue 10): every queue, function and the API has its alarms, and
//! every alarm and dashboard graph on Herald's own metrics names a metric the code emits, with exactly the
//! dimensions it is emitted with (`herald::telemetry::catalogue`). CloudWatch takes a metric with one
//! dimension more or less for another one, which never gets a data point: such an alarm never fires.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::Channel;
use herald::telemetry::Function;
use herald::telemetry::catalogue;
use herald_integration_tests::template_file::{intrinsic, reference, resources, template};
use serde_norway::Value;
use std::collections::BTreeSet;

const ALARM: &str = "AWS::CloudWatch::Alarm";

/// A value as written: a plain string, or an intrinsic with its tag (`!GetAtt EmailQueue.QueueName`).
fn spelled(value: &Value) -> String {
    match intrinsic(value) {
        Some((tag, text)) if tag.is_empty() => text.to_owned(),
        Some((tag, text)) => format!("{tag} {text}"),
        None => format!("{value:?}"),
    }
}

/// The namespace the functions get (`HERALD_METRICS_NAMESPACE`), as written in the template: what every
/// alarm and graph on Herald's metrics must name.
fn herald_namespace(template: &Value) -> String {
    spelled(&template["Globals"]["Function"]["Environment"]["Variables"]["HERALD_METRICS_NAMESPACE"])
}

/// An alarm's dimensions, as `(name, value as written)`.
fn dimensions(alarm: &Value) -> Vec<(String, String)> {
    alarm["Properties"]["Dimensions"]
        .as_sequence()
        .map(|dimensions| {
            dimensions
                .iter()
                .map(|dimension| (spelled(&dimension["Name"]), spelled(&dimension["Value"])))
                .collect()
        })
        .unwrap_or_default()
}

/// The alarms on `metric` of `namespace` (as written) with exactly these dimensions.
fn alarms_on<'t>(
    template: &'t Value,
    namespace: &str,
    metric: &str,
    expected: &[(&str, &str)],
) -> Vec<&'t Value> {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    resources(template, ALARM)
        .into_iter()
        .map(|(_, alarm)| alarm)
        .filter(|alarm| {
            let properties = &alarm["Properties"];
            spelled(&properties["Namespace"]) == namespace
                && properties["MetricName"].as_str() == Some(metric)
                && dimensions(alarm) == expected
        })
        .collect()
}

fn fires_above(alarm: &Value, threshold: u64) -> bool {
    let properties = &alarm["Properties"];
    properties["ComparisonOperator"].as_str() == Some("GreaterThanThreshold")
        && properties["Threshold"].as_u64() == Some(threshold)
}

#[test]
fn every_queue_has_an_alarm_on_its_oldest_message_and_every_dlq_one_on_any_message() {
    let template = template();
    let queues = resources(&template, "AWS::SQS::Queue");
    let dead_letter_queues: BTreeSet<String> = queues
        .iter()
        .filter_map(|(_, queue)| {
            let target = &queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"];
            (!target.is_null()).then(|| reference(target))
        })
        .collect();
    // A queue and a DLQ per channel, and the feedback queue with its own.
    let redriven = Channel::ALL.len() + 1;
    assert_eq!((queues.len(), dead_letter_queues.len()), (2 * redriven, redriven));
    for (id, _) in &queues {
        let queue_name = format!("!GetAtt {id}.QueueName");
        let by_name = [("QueueName", queue_name.as_str())];
        let ages = alarms_on(&template, "AWS/SQS", "ApproximateAgeOfOldestMessage", &by_name);
        assert_eq!(ages.len(), 1, "{id}: an alarm on the age of its oldest message");
        if dead_letter_queues.contains(*id) {
            let any = alarms_on(
                &template,
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &by_name,
            );
            assert_eq!(any.len(), 1, "{id}: an alarm on any message in it");
            assert!(fires_above(any[0], 0), "{id}: fires on the first message");
            assert_eq!(
                any[0]["Properties"]["Statistic"].as_str(),
                Some("Maximum"),
                "{id}"
            );
        } else {
            assert_eq!(
                reference(&ages[0]["Properties"]["Threshold"]),
                "OldestMessageAlarmSeconds",
                "{id}: retries wait on the queue, so its threshold is a parameter"
            );
        }
    }
}

#[test]
fn every_function_has_an_error_and_a_throttle_alarm_and_the_api_a_5xx_alarm() {
    let template = template();
    let functions = resources(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), Function::ALL.len());
    for (id, _) in functions {
        let function = format!("!Ref {id}");
        for metric in ["Errors", "Throttles"] {
            let alarms = alarms_on(&template, "AWS/Lambda", metric, &[("FunctionName", &function)]);
            assert_eq!(alarms.len(), 1, "{id}: {metric}");
            assert!(fires_above(alarms[0], 0), "{id}: {metric}");
        }
    }
    let api = alarms_on(&template, "AWS/ApiGateway", "5xx", &[("ApiId", "!Ref HttpApi")]);
    assert_eq!(api.len(), 1, "the HTTP API's 5xx");
}

#[test]
fn every_alarm_notifies_the_alarm_topic_is_named_after_the_stack_and_is_an_output() {
    let template = template();
    let alarms = resources(&template, ALARM);
    for (id, alarm) in &alarms {
        let properties = &alarm["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<String> = properties[actions]
                .as_sequence()
                .unwrap_or_else(|| panic!("{id}: {actions}"))
                .iter()
                .map(reference)
                .collect();
            assert_eq!(targets, ["AlarmTopic"], "{id}: {actions}");
        }
        let (tag, name) = intrinsic(&properties["AlarmName"]).unwrap();
        assert!(
            tag == "!Sub" && name.starts_with("${AWS::StackName}-"),
            "{id}: {name}"
        );
        assert_eq!(
            properties["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{id}: no data is no trouble (an idle queue, an idle stack)"
        );
    }
    let Value::Tagged(join) = &template["Outputs"]["AlarmNames"]["Value"] else {
        panic!("AlarmNames is a !Join of the alarms");
    };
    let listed: BTreeSet<String> = join.value[1]
        .as_sequence()
        .unwrap()
        .iter()
        .map(reference)
        .collect();
    let declared: BTreeSet<String> = alarms.iter().map(|(id, _)| (*id).to_owned()).collect();
    assert_eq!(listed, declared);

    let subscription = &template["Resources"]["AlarmEmailSubscription"];
    assert_eq!(subscription["Condition"].as_str(), Some("HasAlarmEmail"));
    assert_eq!(reference(&subscription["Properties"]["TopicArn"]), "AlarmTopic");
    assert_eq!(reference(&subscription["Properties"]["Endpoint"]), "AlarmEmail");
    assert_eq!(template["Parameters"]["AlarmEmail"]["Default"].as_str(), Some(""));
}

#[test]
fn every_alarm_on_heralds_metrics_names_a_metric_the_code_emits_with_exactly_its_dimensions() {
    let template = template();
    let namespace = herald_namespace(&template);
    assert_eq!(namespace, "!Sub Herald/${AWS::StackName}");
    let mut herald_alarms = 0;
    for (id, alarm) in resources(&template, ALARM) {
        let properties = &alarm["Properties"];
        let alarm_namespace = spelled(&properties["Namespace"]);
        if alarm_namespace.starts_with("AWS/") {
            continue;
        }
        herald_alarms += 1;
        assert_eq!(alarm_namespace, namespace, "{id}: Herald's namespace");
        let metric = properties["MetricName"].as_str().unwrap();
        let named: Vec<(String, String)> = dimensions(alarm);
        let named: Vec<(&str, &str)> = named.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        if let Some(problem) = catalogue_mismatch(metric, &named) {
            panic!("{id}: {problem}");
        }
    }
    // A circuit opening on any channel that reaches a person, and a sweeper that had to finish a fan-out,
    // each raise an alarm. A webhook's circuit is a tenant's endpoint: the tenant's to fix, not a page.
    for channel in Channel::ALL.into_iter().filter(|c| c.reaches_a_person()) {
        let breaker = [("Channel", channel.as_str()), ("State", "open")];
        let alarms = alarms_on(&template, &namespace, "BreakerStateChanges", &breaker);
        assert_eq!(alarms.len(), 1, "{channel}: breaker open");
        assert!(fires_above(alarms[0], 0));
    }
    let recovered = alarms_on(&template, &namespace, "FanoutsRecovered", &[]);
    assert_eq!(recovered.len(), 1);
    assert!(fires_above(recovered[0], 0), "any recovery");
    let breakers = Channel::ALL.iter().filter(|c| c.reaches_a_person()).count();
    assert_eq!(
        herald_alarms,
        breakers + 1,
        "a breaker alarm per channel that reaches a person, and the sweeper's"
    );
}

/// How `metric` with these dimensions departs from what the code emits, if it does.
fn catalogue_mismatch(metric: &str, named: &[(&str, &str)]) -> Option<String> {
    let Some(spec) = catalogue::find(metric) else {
        return Some(format!("{metric} is not a metric Herald emits"));
    };
    let emitted: BTreeSet<&str> = spec.dimensions.iter().map(|d| d.name).collect();
    let given: BTreeSet<&str> = named.iter().map(|(name, _)| *name).collect();
    if emitted != given || given.len() != named.len() {
        return Some(format!(
            "{metric} is emitted with the dimensions {emitted:?}, not {given:?}"
        ));
    }
    named.iter().find_map(|(name, value)| {
        let dimension = spec.dimension(name)?;
        (!dimension.values.contains(value)).then(|| {
            format!(
                "{metric}: {name}={value} is never emitted; its values are {:?}",
                dimension.values
            )
        })
    })
}

/// Every metric a dashboard graph names: `[namespace, name, dimension, value, …, {options}]`.
fn dashboard_metrics(template: &Value) -> Vec<Vec<String>> {
    let Value::Tagged(body) = &template["Resources"]["Dashboard"]["Properties"]["DashboardBody"] else {
        panic!("the dashboard body is a !Sub");
    };
    // `${…}` stand inside JSON strings, so the body is JSON before the substitution too.
    let body: serde_json::Value = serde_json::from_str(body.value.as_str().unwrap()).expect("JSON");
    body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|widget| widget["properties"]["metrics"].as_array())
        .flatten()
        .map(|metric| {
            metric
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|part| part.as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[test]
fn every_dashboard_graph_of_heralds_metrics_names_a_metric_the_code_emits_with_exactly_its_dimensions() {
    let template = template();
    // The body is a `!Sub` itself, so it names the namespace as the functions' `!Sub` does.
    let namespace = herald_namespace(&template);
    let namespace = namespace.trim_start_matches("!Sub ").to_owned();
    let metrics = dashboard_metrics(&template);
    let declared = template["Resources"].as_mapping().unwrap();
    for metric in &metrics {
        let [metric_namespace, name, pairs @ ..] = metric.as_slice() else {
            panic!("{metric:?}");
        };
        assert!(pairs.len() % 2 == 0, "{metric:?}: dimension, value, …");
        let named: Vec<(&str, &str)> = pairs
            .chunks(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()))
            .collect();
        if *metric_namespace == namespace {
            if let Some(problem) = catalogue_mismatch(name, &named) {
                panic!("{metric:?}: {problem}");
            }
        } else {
            assert!(metric_namespace.starts_with("AWS/"), "{metric:?}");
            for (_, value) in named {
                // `${EmailQueue.QueueName}`, `${IngestFunction}`: a resource of this template.
                let reference = value
                    .strip_prefix("${")
                    .and_then(|rest| rest.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("{metric:?}: {value} names no resource"));
                let id = reference.split('.').next().unwrap_or_default();
                assert!(declared.contains_key(id), "{metric:?}: no resource {id}");
            }
        }
    }
    // What the issue asks to see: queues and DLQs, sends by outcome, latencies, errors.
    let graphs = |namespace: &str, name: &str, value: &str| {
        metrics
            .iter()
            .any(|m| m[0] == namespace && m[1] == name && m.iter().skip(2).any(|part| part == value))
    };
    for (id, _) in resources(&template, "AWS::SQS::Queue") {
        let queue = format!("${{{id}.QueueName}}");
        assert!(
            graphs("AWS/SQS", "ApproximateNumberOfMessagesVisible", &queue),
            "{id}"
        );
    }
    for (id, _) in resources(&template, "AWS::Serverless::Function") {
        assert!(graphs("AWS/Lambda", "Errors", &format!("${{{id}}}")), "{id}");
    }
    for channel in Channel::ALL {
        for outcome in ["sent", "retried", "failed", "dead_lettered", "expired"] {
            let sends = metrics.iter().any(|m| {
                m[0] == namespace
                    && m[1] == "Notifications"
                    && m[2..] == ["Channel", channel.as_str(), "Outcome", outcome]
            });
            assert!(sends, "{channel} {outcome}");
        }
        for latency in ["ProviderLatency", "EndToEndLatency"] {
            assert!(
                graphs(&namespace, latency, channel.as_str()),
                "{latency} {channel}"
            );
        }
    }
    assert!(graphs("AWS/ApiGateway", "5xx", "${HttpApi}"));
}

#[test]
fn the_saved_queries_trace_across_every_functions_log_group() {
    let template = template();
    let function_logs: BTreeSet<String> = resources(&template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(_, function)| reference(&function["Properties"]["LoggingConfig"]["LogGroup"]))
        .collect();
    let queries = resources(&template, "AWS::Logs::QueryDefinition");
    assert_eq!(
        queries.len(),
        4,
        "trace by id, failures, slowest, sweeper recoveries"
    );
    for (id, query) in &queries {
        let properties = &query["Properties"];
        let (tag, name) = intrinsic(&properties["Name"]).unwrap();
        assert!(
            tag == "!Sub" && name.starts_with("Herald/${AWS::StackName}/"),
            "{id}: {name}"
        );
        let groups: BTreeSet<String> = properties["LogGroupNames"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(reference)
            .collect();
        assert!(groups.is_subset(&function_logs), "{id}: {groups:?}");
        assert!(
            properties["QueryString"].as_str().is_some_and(|q| !q.is_empty()),
            "{id}"
        );
        let output = format!("{id}Id");
        assert_eq!(reference(&template["Outputs"][output.as_str()]["Value"]), *id);
    }
    let trace = &template["Resources"]["TraceByIdQuery"]["Properties"];
    let traced: BTreeSet<String> = trace["LogGroupNames"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(reference)
        .collect();
    assert_eq!(traced, function_logs, "an id is traced across all functions");
}

#[test]
fn the_api_logs_every_request_and_x_ray_tracing_is_a_parameter() {
    let template = template();
    let access = &template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"];
    let group = reference(&access["DestinationArn"]);
    let log_group = &template["Resources"][group.as_str()];
    assert_eq!(log_group["Type"].as_str(), Some("AWS::Logs::LogGroup"));
    assert!(!log_group["Properties"]["RetentionInDays"].is_null());
    let format: serde_json::Value =
        serde_json::from_str(access["Format"].as_str().unwrap()).expect("a JSON line per request");
    for field in [
        "requestId",
        "status",
        "routeKey",
        "responseLatency",
        "lambdaRequestId",
    ] {
        assert!(format[field].is_string(), "{field}");
    }
    assert_eq!(
        reference(&template["Outputs"]["ApiAccessLogGroupName"]["Value"]),
        group
    );

    assert_eq!(
        reference(&template["Globals"]["Function"]["Tracing"]),
        "XRayTracing"
    );
    let allowed: Vec<&str> = template["Parameters"]["XRayTracing"]["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, ["Active", "PassThrough"]);
}

#[test]
fn the_operations_doc_lists_every_metric_with_its_unit_and_dimensions() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md")).unwrap();
    for spec in catalogue::all() {
        let row = doc
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", spec.name)))
            .unwrap_or_else(|| panic!("{} has no row in docs/operations.md", spec.name));
        assert!(row.contains(spec.unit.as_str()), "{}: unit", spec.name);
        for dimension in spec.dimensions {
            assert!(
                row.contains(&format!("`{}`", dimension.name)),
                "{}: {}",
                spec.name,
                dimension.name
            );
        }
    }
}
