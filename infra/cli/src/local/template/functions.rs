//! The functions of the template: their binary, timeout and memory, their `HttpApi` routes, `SQS` and
//! `Schedule` events, and their `Environment.Variables` (Globals merged under their own), left unevaluated.

use super::intrinsics::{Scope, as_intrinsic, integer, truthy};
use super::resources::{Resource, check_properties, queue_by_arn};
use super::{DEFAULT_MAXIMUM_CONCURRENCY, Provisioned, TemplateError, invalid};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// SQS event properties understood (or harmless to ignore) locally; `FilterCriteria` and the rest fail.
const SQS_EVENT_PROPERTIES: [&str; 7] = [
    "Queue",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "ScalingConfig",
    "Enabled",
    "MetricsConfig",
];

/// Schedule event properties understood (or harmless to ignore) locally.
const SCHEDULE_EVENT_PROPERTIES: [&str; 5] = ["Schedule", "Description", "Enabled", "State", "Name"];

/// A function of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary that is the function.
    pub binary: String,
    /// `Timeout` (the function's, else `Globals.Function`'s, else SAM's 3).
    pub timeout_seconds: u64,
    /// `MemorySize` (the function's, else `Globals.Function`'s, else SAM's 128).
    pub memory_mb: u64,
    pub http_routes: Vec<HttpRoute>,
    pub sqs_events: Vec<SqsEventSpec>,
    pub schedules: Vec<ScheduleSpec>,
}

/// A `Schedule` event (an EventBridge rule) with a `rate(...)` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// The event's name in the template (`Sweep`).
    pub name: String,
    pub every: std::time::Duration,
}

/// An `HttpApi` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// Upper case; `ANY` matches every method.
    pub method: String,
    /// `/v1/events/{id}`, or `$default` for the catch-all route.
    pub path: String,
}

/// An `SQS` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSpec {
    /// The logical id of the queue the function consumes.
    pub queue: String,
    pub batch_size: u32,
    /// `ScalingConfig.MaximumConcurrency`, else [`DEFAULT_MAXIMUM_CONCURRENCY`].
    pub maximum_concurrency: u32,
    /// `FunctionResponseTypes` includes `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `MaximumBatchingWindowInSeconds` (0, SQS's default, when absent): how long a batch may gather.
    pub batching_window_seconds: u32,
}

pub(super) fn function_spec(
    scope: &Scope<'_>,
    resource: &Resource<'_>,
    globals: &Map<String, Json>,
    predicted: &Provisioned,
) -> Result<(FunctionSpec, BTreeMap<String, Json>), TemplateError> {
    let id = resource.logical_id;
    let empty = Map::new();
    let properties = match resource.properties() {
        Some(Json::Object(properties)) => properties,
        Some(_) => return Err(invalid(id, "Properties", "must be a mapping")),
        None => &empty,
    };
    let binary = resource
        .body
        .get("Metadata")
        .and_then(|metadata| metadata.get("BuildProperties"))
        .and_then(|build| build.get("Binary"))
        .ok_or_else(|| invalid(id, "Metadata.BuildProperties.Binary", "names no binary"))?;
    let binary = scope.string(binary, "Metadata.BuildProperties.Binary")?;
    let setting = |name: &str, default: u64| -> Result<u64, TemplateError> {
        let (expression, path) = match (properties.get(name), globals.get(name)) {
            (Some(own), _) => (own, format!("Properties.{name}")),
            (None, Some(global)) => (global, format!("Globals.Function.{name}")),
            (None, None) => return Ok(default),
        };
        let value = scope.required(expression, &path)?;
        u64::try_from(integer(&value, id, &path)?).map_err(|_| invalid(id, &path, "must not be negative"))
    };
    let mut environment = variables(globals, id, "Globals.Function")?;
    environment.extend(variables(properties, id, "Properties")?);
    let Triggers {
        http_routes,
        sqs_events,
        schedules,
    } = events(scope, properties, predicted)?;
    let spec = FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        timeout_seconds: setting("Timeout", 3)?,
        memory_mb: setting("MemorySize", 128)?,
        http_routes,
        sqs_events,
        schedules,
    };
    Ok((spec, environment))
}

/// `Environment.Variables` of a function's properties or of Globals.Function, unevaluated.
fn variables(
    properties: &Map<String, Json>,
    resource: &str,
    at: &str,
) -> Result<BTreeMap<String, Json>, TemplateError> {
    let Some(environment) = properties.get("Environment") else {
        return Ok(BTreeMap::new());
    };
    match environment.get("Variables") {
        None => Ok(BTreeMap::new()),
        Some(Json::Object(variables)) if as_intrinsic(variables).is_none() => Ok(variables
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()),
        Some(_) => Err(invalid(
            resource,
            &format!("{at}.Environment.Variables"),
            "must be a mapping of names to values",
        )),
    }
}

#[derive(Debug, Default)]
struct Triggers {
    http_routes: Vec<HttpRoute>,
    sqs_events: Vec<SqsEventSpec>,
    schedules: Vec<ScheduleSpec>,
}

fn events(
    scope: &Scope<'_>,
    properties: &Map<String, Json>,
    predicted: &Provisioned,
) -> Result<Triggers, TemplateError> {
    let id = scope.resource;
    let mut found = Triggers::default();
    let Some(events) = properties.get("Events") else {
        return Ok(found);
    };
    let events = events
        .as_object()
        .ok_or_else(|| invalid(id, "Properties.Events", "must be a mapping"))?;
    for (name, event) in events {
        let path = format!("Properties.Events.{name}");
        let event_type = scope.string(
            event
                .get("Type")
                .ok_or_else(|| invalid(id, &path, "an event needs a Type"))?,
            &format!("{path}.Type"),
        )?;
        let empty = Map::new();
        let event_properties = match event.get("Properties") {
            Some(Json::Object(properties)) => properties,
            Some(_) => return Err(invalid(id, &path, "Properties must be a mapping")),
            None => &empty,
        };
        let path = format!("{path}.Properties");
        match event_type.as_str() {
            "HttpApi" => found
                .http_routes
                .push(http_route(scope, event_properties, &path)?),
            "SQS" => {
                if let Some(event) = sqs_event(scope, event_properties, &path, predicted)? {
                    found.sqs_events.push(event);
                }
            }
            "Schedule" => {
                if let Some(every) = schedule_event(scope, event_properties, &path)? {
                    found.schedules.push(ScheduleSpec {
                        name: name.clone(),
                        every,
                    });
                }
            }
            other => {
                return Err(TemplateError::UnsupportedProperty {
                    resource: id.to_owned(),
                    property: format!("Properties.Events.{name} of Type {other}"),
                });
            }
        }
    }
    Ok(found)
}

/// The period of a `Schedule` event, `None` when it is disabled. Only `rate(...)` runs locally; a
/// `cron(...)` schedule is refused rather than run at a wrong time.
fn schedule_event(
    scope: &Scope<'_>,
    properties: &Map<String, Json>,
    path: &str,
) -> Result<Option<std::time::Duration>, TemplateError> {
    let id = scope.resource;
    check_properties(id, path, properties, &SCHEDULE_EVENT_PROPERTIES)?;
    let evaluated = |name: &str| {
        properties
            .get(name)
            .map(|value| scope.required(value, &format!("{path}.{name}")))
            .transpose()
    };
    let disabled = evaluated("Enabled")?.is_some_and(|enabled| !truthy(Some(&enabled)))
        || evaluated("State")?.is_some_and(|state| state != "ENABLED");
    if disabled {
        return Ok(None);
    }
    let at = format!("{path}.Schedule");
    let expression =
        evaluated("Schedule")?.ok_or_else(|| invalid(id, path, "a Schedule event needs a Schedule"))?;
    let expression = expression.as_str().unwrap_or_default();
    rate(expression).map(Some).ok_or_else(|| {
        invalid(
            id,
            &at,
            "the local stack runs rate(N minute|minutes|hour|hours|day|days) schedules",
        )
    })
}

/// `rate(5 minutes)` as a duration.
fn rate(expression: &str) -> Option<std::time::Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok().filter(|count| *count >= 1)?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(count.checked_mul(seconds)?))
}

fn http_route(
    scope: &Scope<'_>,
    properties: &Map<String, Json>,
    path: &str,
) -> Result<HttpRoute, TemplateError> {
    let id = scope.resource;
    let field = |name: &str| {
        properties
            .get(name)
            .map(|value| scope.string(value, &format!("{path}.{name}")))
            .transpose()
    };
    if let Some(version) = field("PayloadFormatVersion")? {
        if version != "2.0" {
            return Err(invalid(
                id,
                &format!("{path}.PayloadFormatVersion"),
                "the local stack sends only payload format 2.0",
            ));
        }
    }
    match (field("Method")?, field("Path")?) {
        (Some(method), Some(route)) => {
            let method = method.to_ascii_uppercase();
            let method = if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                "ANY".to_owned()
            } else {
                method
            };
            Ok(HttpRoute { method, path: route })
        }
        // SAM: an HttpApi event with neither is the API's catch-all route.
        (None, None) => Ok(HttpRoute {
            method: "ANY".to_owned(),
            path: "$default".to_owned(),
        }),
        _ => Err(invalid(
            id,
            path,
            "an HttpApi event needs both Method and Path, or neither",
        )),
    }
}

fn sqs_event(
    scope: &Scope<'_>,
    properties: &Map<String, Json>,
    path: &str,
    predicted: &Provisioned,
) -> Result<Option<SqsEventSpec>, TemplateError> {
    let id = scope.resource;
    check_properties(id, path, properties, &SQS_EVENT_PROPERTIES)?;
    let evaluated = |name: &str| {
        properties
            .get(name)
            .map(|value| scope.required(value, &format!("{path}.{name}")))
            .transpose()
    };
    if let Some(enabled) = evaluated("Enabled")? {
        if !truthy(Some(&enabled)) {
            return Ok(None);
        }
    }
    let queue_path = format!("{path}.Queue");
    let queue = evaluated("Queue")?.ok_or_else(|| invalid(id, path, "an SQS event needs a Queue"))?;
    let queue = queue
        .as_str()
        .ok_or_else(|| invalid(id, &queue_path, "must be a queue ARN"))?;
    let count = |value: &Json, name: &str| {
        let at = format!("{path}.{name}");
        u32::try_from(integer(value, id, &at)?)
            .ok()
            .filter(|count| *count >= 1)
            .ok_or_else(|| invalid(id, &at, "must be at least 1"))
    };
    let batch_size = match evaluated("BatchSize")? {
        Some(size) => count(&size, "BatchSize")?,
        None => 10,
    };
    let maximum_concurrency = match evaluated("ScalingConfig")?
        .as_ref()
        .and_then(|scaling| scaling.get("MaximumConcurrency"))
    {
        Some(concurrency) => count(concurrency, "ScalingConfig.MaximumConcurrency")?,
        None => DEFAULT_MAXIMUM_CONCURRENCY,
    };
    let report_batch_item_failures = evaluated("FunctionResponseTypes")?
        .as_ref()
        .and_then(Json::as_array)
        .is_some_and(|types| types.iter().any(|kind| kind == "ReportBatchItemFailures"));
    let batching_window_seconds = match evaluated("MaximumBatchingWindowInSeconds")? {
        Some(window) => {
            let at = format!("{path}.MaximumBatchingWindowInSeconds");
            u32::try_from(integer(&window, id, &at)?)
                .ok()
                .filter(|seconds| *seconds <= 300)
                .ok_or_else(|| invalid(id, &at, "must be 0 to 300 seconds"))?
        }
        None => 0,
    };
    Ok(Some(SqsEventSpec {
        queue: queue_by_arn(predicted, queue, id, &queue_path)?,
        batch_size,
        maximum_concurrency,
        report_batch_item_failures,
        batching_window_seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::Provisioned;
    use super::super::testing::{function, parse, real};
    use super::*;

    #[test]
    fn the_real_template_has_seven_functions_with_globals_merged() {
        let template = real();
        let mut binaries = template
            .functions()
            .into_iter()
            .map(|f| f.binary)
            .collect::<Vec<_>>();
        binaries.sort();
        assert_eq!(
            binaries,
            [
                "api", "email", "feedback", "ingest", "push", "slack", "sms", "sweeper", "webhook"
            ]
        );
        let ingest = function(&template, "ingest");
        assert_eq!((ingest.timeout_seconds, ingest.memory_mb), (10, 256));
        assert!(ingest.http_routes.contains(&HttpRoute {
            method: "ANY".into(),
            path: "/v1/events".into()
        }));
        assert!(ingest.http_routes.contains(&HttpRoute {
            method: "ANY".into(),
            path: "/v1/events/{id}".into()
        }));
        assert!(ingest.sqs_events.is_empty());
        let email = function(&template, "email");
        assert_eq!((email.timeout_seconds, email.memory_mb), (30, 512));
    }

    #[test]
    fn the_api_function_has_the_default_catch_all_route() {
        let api = function(&real(), "api");
        assert!(api.http_routes.contains(&HttpRoute {
            method: "ANY".into(),
            path: "$default".into()
        }));
        assert!(api.http_routes.contains(&HttpRoute {
            method: "GET".into(),
            path: "/v1/health".into()
        }));
        assert_eq!(api.http_routes.len(), 15);
    }

    #[test]
    fn each_channel_function_consumes_its_queue_in_batches_of_ten() {
        let template = real();
        for (binary, queue) in [
            ("email", "EmailQueue"),
            ("sms", "SmsQueue"),
            ("slack", "SlackQueue"),
            ("webhook", "WebhookQueue"),
            ("push", "PushQueue"),
        ] {
            let spec = function(&template, binary);
            assert!(spec.http_routes.is_empty());
            assert_eq!(
                spec.sqs_events,
                [SqsEventSpec {
                    queue: queue.into(),
                    batch_size: 10,
                    maximum_concurrency: 5,
                    report_batch_item_failures: true,
                    batching_window_seconds: 1,
                }]
            );
        }
    }

    #[test]
    fn the_feedback_function_consumes_the_feedback_queue_reporting_failures_one_by_one() {
        let feedback = function(&real(), "feedback");
        assert_eq!((feedback.timeout_seconds, feedback.memory_mb), (10, 256));
        assert!(feedback.http_routes.is_empty() && feedback.schedules.is_empty());
        assert_eq!(
            feedback.sqs_events,
            [SqsEventSpec {
                queue: "FeedbackQueue".into(),
                batch_size: 10,
                maximum_concurrency: 2,
                report_batch_item_failures: true,
                batching_window_seconds: 1,
            }]
        );
    }

    #[test]
    fn a_function_variable_wins_over_the_global_one_even_when_it_is_no_value() {
        let source = "
Globals:
  Function:
    MemorySize: 512
    Environment: { Variables: { SHARED: global, MINE: global, GONE: global } }
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment: { Variables: { MINE: own, GONE: !Ref AWS::NoValue } }
";
        let template = parse(source, &[]).unwrap();
        let worker = function(&template, "worker");
        assert_eq!(worker.memory_mb, 512);
        let environment = template.environment(&worker, &Provisioned::default()).unwrap();
        assert_eq!(
            environment,
            BTreeMap::from([
                ("MINE".to_owned(), "own".to_owned()),
                ("SHARED".to_owned(), "global".to_owned())
            ])
        );
    }

    #[test]
    fn the_sweeper_runs_every_minute() {
        let sweeper = function(&real(), "sweeper");
        assert_eq!(
            sweeper.schedules,
            [ScheduleSpec {
                name: "Sweep".into(),
                every: std::time::Duration::from_secs(60),
            }]
        );
        assert!(sweeper.http_routes.is_empty() && sweeper.sqs_events.is_empty());
    }

    #[test]
    fn schedules_run_at_their_rate_unless_disabled_and_cron_is_refused() {
        let template = |schedule: &str| {
            parse(
                &format!(
                    "Resources:\n  Job:\n    Type: AWS::Serverless::Function\n    Metadata: {{ BuildProperties: {{ Binary: job }} }}\n    Properties:\n      Events:\n        Tick: {{ Type: Schedule, Properties: {schedule} }}\n"
                ),
                &[],
            )
        };
        let every = |schedule: &str| {
            template(schedule).map(|t| {
                function(&t, "job")
                    .schedules
                    .iter()
                    .map(|s| s.every.as_secs())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(every("{ Schedule: rate(1 minute) }").unwrap(), [60]);
        assert_eq!(
            every("{ Schedule: rate(2 hours), Description: two }").unwrap(),
            [7200]
        );
        assert_eq!(
            every("{ Schedule: rate(1 day), Enabled: false }").unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(
            every("{ Schedule: rate(1 day), State: DISABLED }").unwrap(),
            Vec::<u64>::new()
        );
        for refused in [
            "{ Schedule: 'cron(0 12 * * ? *)' }",
            "{ Schedule: rate(0 minutes) }",
            "{ }",
            "{ Schedule: rate(1 minute), Input: x }",
        ] {
            assert!(template(refused).is_err(), "{refused}");
        }
    }
}
