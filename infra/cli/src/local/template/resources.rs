//! Which resources the local stack uses, what their physical names are, and the specs of its tables and
//! queues (dead-letter queues ordered before the queues that redrive to them).

use super::intrinsics::{Scope, check_intrinsics, integer, truthy};
use super::topics::{SUBSCRIPTION, TOPIC};
use super::{Kind, Provisioned, Pseudo, Symbols, TemplateError, invalid};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

pub(super) const TABLE: &str = "AWS::DynamoDB::Table";
pub(super) const QUEUE: &str = "AWS::SQS::Queue";
pub(super) const FUNCTION: &str = "AWS::Serverless::Function";

/// An SES configuration set: not created locally, but a `Ref` of it is its name.
pub(super) const CONFIGURATION_SET: &str = "AWS::SES::ConfigurationSet";

/// Resource types with nothing to create or run locally (the local stack routes HTTP itself; the
/// operations resources watch CloudWatch, which the emulator does not feed: locally the metrics are in the
/// log; the emulator enforces no policy). SES configuration sets and their event destinations are left out
/// because moto 5.2.5 publishes no SES events through them: its SES v2 has no event destinations, and its
/// SendEmail takes a configuration set's name, ignores it and reports no bounce, complaint or delivery
/// anywhere, so a configuration set there would change nothing. Locally `herald local feedback` publishes to
/// the feedback topic what the event destination would. Any type neither here nor above fails the load.
const SKIPPED_TYPES: [&str; 14] = [
    "AWS::Logs::LogGroup",
    "AWS::Logs::QueryDefinition",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Api",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::Lambda::Permission",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    CONFIGURATION_SET,
    "AWS::SES::ConfigurationSetEventDestination",
];

/// Table properties read here, then those that change nothing locally (backups, encryption, capacity,
/// tags, streams nobody consumes locally). Any other property fails the load.
const TABLE_PROPERTIES: [&str; 17] = [
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "TimeToLiveSpecification",
    "BillingMode",
    "ProvisionedThroughput",
    "OnDemandThroughput",
    "WarmThroughput",
    "PointInTimeRecoverySpecification",
    "SSESpecification",
    "DeletionProtectionEnabled",
    "ContributorInsightsSpecification",
    "TableClass",
    "StreamSpecification",
    "ResourcePolicy",
    "Tags",
];

/// Queue properties read here, then those moto does not need (`RedriveAllowPolicy` it cannot read
/// back). Any other property (`FifoQueue`, `DelaySeconds`, ...) fails the load.
const QUEUE_PROPERTIES: [&str; 9] = [
    "QueueName",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "Tags",
];

/// A DynamoDB table of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// `TableName` if the template sets one, else `<stack>-<LogicalId>`.
    pub name: String,
    pub attributes: Vec<AttributeSpec>,
    pub key_schema: Vec<KeySpec>,
    pub global_secondary_indexes: Vec<IndexSpec>,
    /// The TTL attribute, when `TimeToLiveSpecification` enables one.
    pub ttl_attribute: Option<String>,
}

/// One of a table's `AttributeDefinitions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeSpec {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// One element of a `KeySchema`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySpec {
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexSpec {
    pub index_name: String,
    pub key_schema: Vec<KeySpec>,
    pub projection: ProjectionSpec,
}

/// A global secondary index's projection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionSpec {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// An SQS queue of the template, dead-letter queues included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    /// `QueueName` resolved (`herald-email`), else `<stack>-<LogicalId>`.
    pub name: String,
    pub visibility_timeout: Option<i64>,
    pub message_retention_period: Option<i64>,
    pub redrive: Option<Redrive>,
}

/// A queue's `RedrivePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// The logical id of the dead-letter queue.
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

/// A resource the local stack creates or runs, after its `Condition`.
pub(super) struct Resource<'a> {
    pub(super) logical_id: &'a str,
    pub(super) type_name: &'a str,
    pub(super) body: &'a Map<String, Json>,
}

impl Resource<'_> {
    pub(super) fn properties(&self) -> Option<&Json> {
        self.body.get("Properties")
    }
}

/// The resources whose `Condition` holds; those of a skipped type are kept only for references to them.
/// An unknown type fails, as does an unsupported intrinsic anywhere in a resource that is used.
pub(super) fn used_resources<'a>(
    symbols: &Symbols,
    resources: &'a Map<String, Json>,
) -> Result<Vec<Resource<'a>>, TemplateError> {
    let mut used = Vec::new();
    for (logical_id, body) in resources {
        let body = body
            .as_object()
            .ok_or_else(|| invalid(logical_id, "", "a resource must be a mapping"))?;
        let resource_type = body
            .get("Type")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid(logical_id, "Type", "a resource needs a Type"))?;
        if let Some(condition) = body.get("Condition") {
            let name = condition
                .as_str()
                .ok_or_else(|| invalid(logical_id, "Condition", "must name a condition"))?;
            let holds = symbols
                .conditions
                .get(name)
                .ok_or_else(|| invalid(logical_id, "Condition", &format!("no condition named {name}")))?;
            if !holds {
                continue;
            }
        }
        if [TABLE, QUEUE, FUNCTION, TOPIC, SUBSCRIPTION].contains(&resource_type) {
            check_intrinsics(&Json::Object(body.clone()), logical_id, "")?;
        } else if !SKIPPED_TYPES.contains(&resource_type) {
            return Err(TemplateError::UnsupportedResourceType {
                resource: logical_id.clone(),
                resource_type: resource_type.to_owned(),
            });
        }
        used.push(Resource {
            logical_id,
            type_name: resource_type,
            body,
        });
    }
    Ok(used)
}

/// The physical names of tables, queues, topics and configuration sets, which may use parameters but no
/// other resource.
pub(super) fn name_resources(
    symbols: &Symbols,
    used: &[Resource<'_>],
) -> Result<BTreeMap<String, Kind>, TemplateError> {
    let nothing = Provisioned::default();
    let mut kinds = BTreeMap::new();
    for resource in used {
        let scope = Scope {
            symbols,
            provisioned: &nothing,
            resource: resource.logical_id,
        };
        let name = |property: &str| -> Result<String, TemplateError> {
            let path = format!("Properties.{property}");
            match resource
                .properties()
                .and_then(|properties| properties.get(property))
            {
                Some(expression) => scope.string(expression, &path),
                None => Ok(format!("{}-{}", symbols.stack_name, resource.logical_id)),
            }
        };
        let kind = match resource.type_name {
            TABLE => Kind::Table {
                name: name("TableName")?,
            },
            QUEUE => Kind::Queue {
                name: name("QueueName")?,
            },
            TOPIC => Kind::Topic {
                name: name("TopicName")?,
            },
            CONFIGURATION_SET => Kind::Named { name: name("Name")? },
            other => Kind::Other {
                resource_type: other.to_owned(),
            },
        };
        kinds.insert(resource.logical_id.to_owned(), kind);
    }
    Ok(kinds)
}

/// What [`StackTemplate::provision`] will return, give or take the emulator's URLs and ARNs: enough to
/// evaluate everything at load and to tell which queue an ARN names.
pub(super) fn predict(symbols: &Symbols) -> Provisioned {
    let Pseudo {
        region,
        account_id,
        partition,
        url_suffix,
    } = &symbols.pseudo;
    let mut provisioned = Provisioned::default();
    for (id, kind) in &symbols.resources {
        match kind {
            Kind::Table { name } => {
                provisioned.table_names.insert(id.clone(), name.clone());
            }
            Kind::Queue { name } => {
                let url = format!("https://sqs.{region}.{url_suffix}/{account_id}/{name}");
                let arn = format!("arn:{partition}:sqs:{region}:{account_id}:{name}");
                provisioned.queue_urls.insert(id.clone(), url);
                provisioned.queue_arns.insert(id.clone(), arn);
            }
            Kind::Topic { name } => {
                let arn = format!("arn:{partition}:sns:{region}:{account_id}:{name}");
                provisioned.topic_arns.insert(id.clone(), arn);
            }
            Kind::Named { .. } | Kind::Other { .. } => {}
        }
    }
    provisioned
}

/// The logical id of the queue whose (predicted) ARN is `arn`.
pub(super) fn queue_by_arn(
    predicted: &Provisioned,
    arn: &str,
    resource: &str,
    path: &str,
) -> Result<String, TemplateError> {
    predicted
        .queue_arns
        .iter()
        .find(|(_, candidate)| candidate.as_str() == arn)
        .map(|(id, _)| id.clone())
        .ok_or_else(|| invalid(resource, path, &format!("{arn} is not a queue of this template")))
}

pub(super) fn table_spec(scope: &Scope<'_>, resource: &Resource<'_>) -> Result<TableSpec, TemplateError> {
    let id = resource.logical_id;
    let properties = scope.properties(resource)?;
    check_properties(id, "", &properties, &TABLE_PROPERTIES)?;
    let ttl_attribute = match properties.get("TimeToLiveSpecification") {
        Some(ttl) if truthy(ttl.get("Enabled")) => Some(
            ttl.get("AttributeName")
                .and_then(Json::as_str)
                .ok_or_else(|| invalid(id, "Properties.TimeToLiveSpecification", "needs an AttributeName"))?
                .to_owned(),
        ),
        _ => None,
    };
    let Some(Kind::Table { name }) = scope.symbols.resources.get(id) else {
        return Err(invalid(id, "", "is not a table"));
    };
    Ok(TableSpec {
        logical_id: id.to_owned(),
        name: name.clone(),
        attributes: list(&properties, "AttributeDefinitions", id)?,
        key_schema: list(&properties, "KeySchema", id)?,
        global_secondary_indexes: list(&properties, "GlobalSecondaryIndexes", id)?,
        ttl_attribute,
    })
}

/// A list property of a table, typed (none is an empty list).
fn list<T: serde::de::DeserializeOwned>(
    properties: &Map<String, Json>,
    name: &str,
    resource: &str,
) -> Result<Vec<T>, TemplateError> {
    let value = properties.get(name).cloned().unwrap_or(Json::Array(Vec::new()));
    serde_json::from_value(value)
        .map_err(|error| invalid(resource, &format!("Properties.{name}"), &error.to_string()))
}

pub(super) fn queue_spec(
    scope: &Scope<'_>,
    resource: &Resource<'_>,
    predicted: &Provisioned,
) -> Result<QueueSpec, TemplateError> {
    let id = resource.logical_id;
    let properties = scope.properties(resource)?;
    check_properties(id, "", &properties, &QUEUE_PROPERTIES)?;
    let number = |name: &str| {
        properties
            .get(name)
            .map(|value| integer(value, id, &format!("Properties.{name}")))
            .transpose()
    };
    let redrive = match properties.get("RedrivePolicy") {
        Some(policy) => Some(redrive(policy, id, predicted)?),
        None => None,
    };
    let Some(Kind::Queue { name }) = scope.symbols.resources.get(id) else {
        return Err(invalid(id, "", "is not a queue"));
    };
    Ok(QueueSpec {
        logical_id: id.to_owned(),
        name: name.clone(),
        visibility_timeout: number("VisibilityTimeout")?,
        message_retention_period: number("MessageRetentionPeriod")?,
        redrive,
    })
}

/// An evaluated `RedrivePolicy` (a mapping, or the same as a JSON string).
fn redrive(policy: &Json, id: &str, predicted: &Provisioned) -> Result<Redrive, TemplateError> {
    let path = "Properties.RedrivePolicy";
    let policy = match policy {
        Json::String(text) => {
            serde_json::from_str(text).map_err(|error| invalid(id, path, &error.to_string()))?
        }
        other => other.clone(),
    };
    let target = policy
        .get("deadLetterTargetArn")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(id, path, "needs a deadLetterTargetArn"))?;
    let count = policy
        .get("maxReceiveCount")
        .ok_or_else(|| invalid(id, path, "needs a maxReceiveCount"))?;
    let count_path = format!("{path}.maxReceiveCount");
    let max_receive_count = u32::try_from(integer(count, id, &count_path)?)
        .ok()
        .filter(|count| *count >= 1)
        .ok_or_else(|| invalid(id, &count_path, "must be at least 1"))?;
    Ok(Redrive {
        dead_letter_queue: queue_by_arn(predicted, target, id, &format!("{path}.deadLetterTargetArn"))?,
        max_receive_count,
    })
}

/// Orders queues so each dead-letter queue comes before the queues that redrive to it.
pub(super) fn creation_order(queues: Vec<QueueSpec>) -> Result<Vec<QueueSpec>, TemplateError> {
    let mut pending = queues;
    let mut ordered: Vec<QueueSpec> = Vec::new();
    let mut created = BTreeSet::new();
    while !pending.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|queue| {
            queue
                .redrive
                .as_ref()
                .is_none_or(|redrive| created.contains(&redrive.dead_letter_queue))
        });
        if ready.is_empty() {
            let stuck = rest
                .iter()
                .map(|queue| queue.logical_id.as_str())
                .collect::<Vec<_>>();
            return Err(invalid(
                &stuck.join(", "),
                "Properties.RedrivePolicy",
                "these queues redrive to each other in a cycle",
            ));
        }
        created.extend(ready.iter().map(|queue| queue.logical_id.clone()));
        ordered.extend(ready);
        pending = rest;
    }
    Ok(ordered)
}

/// Fails on any property not in `known`.
pub(super) fn check_properties(
    resource: &str,
    path: &str,
    properties: &Map<String, Json>,
    known: &[&str],
) -> Result<(), TemplateError> {
    match properties.keys().find(|key| !known.contains(&key.as_str())) {
        Some(property) => Err(TemplateError::UnsupportedProperty {
            resource: resource.to_owned(),
            property: if path.is_empty() {
                property.clone()
            } else {
                format!("{path}.{property}")
            },
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{STACK, parse, real};
    use super::*;

    #[test]
    fn the_real_template_has_a_queue_and_a_dlq_per_channel_and_for_feedback_each_redriving_to_its_own() {
        let queues = real().queues();
        assert_eq!(queues.len(), 12);
        for channel in ["Email", "Sms", "Slack", "Webhook", "Push", "Feedback"] {
            let lower = channel.to_lowercase();
            let queue = queues
                .iter()
                .find(|q| q.logical_id == format!("{channel}Queue"))
                .unwrap();
            let dlq_id = format!("{channel}DeadLetterQueue");
            let dlq = queues.iter().find(|q| q.logical_id == dlq_id).unwrap();
            assert_eq!(queue.name, format!("{STACK}-{lower}"));
            assert_eq!(dlq.name, format!("{STACK}-{lower}-dlq"));
            let visibility = if channel == "Feedback" { 60 } else { 180 };
            assert_eq!(queue.visibility_timeout, Some(visibility));
            assert_eq!(dlq.message_retention_period, Some(1_209_600));
            assert_eq!(dlq.redrive, None);
            let redrive = queue.redrive.as_ref().unwrap();
            assert_eq!(redrive.dead_letter_queue, dlq_id);
            assert!(redrive.max_receive_count >= 5);
            assert_eq!(redrive.max_receive_count, 8);
            let position = |id: &str| queues.iter().position(|q| q.logical_id == id).unwrap();
            assert!(
                position(&dlq_id) < position(&queue.logical_id),
                "the DLQ is created first"
            );
        }
    }

    #[test]
    fn the_real_template_has_two_tables_with_their_indexes() {
        let tables = real().tables();
        assert_eq!(tables.len(), 2);
        let config = tables.iter().find(|t| t.logical_id == "ConfigTable").unwrap();
        assert_eq!(config.name, format!("{STACK}-ConfigTable"));
        assert_eq!(config.attributes.len(), 4);
        assert_eq!(
            config.key_schema,
            [
                KeySpec {
                    attribute_name: "pk".into(),
                    key_type: "HASH".into()
                },
                KeySpec {
                    attribute_name: "sk".into(),
                    key_type: "RANGE".into()
                },
            ]
        );
        assert_eq!(config.global_secondary_indexes.len(), 1);
        assert_eq!(config.ttl_attribute, None);
        let activity = tables.iter().find(|t| t.logical_id == "ActivityTable").unwrap();
        assert_eq!(activity.name, format!("{STACK}-ActivityTable"));
        assert_eq!(activity.global_secondary_indexes.len(), 4);
        for name in ["fanout_pending", "unsettled", "log_by_tenant", "log_by_user"] {
            let index = activity
                .global_secondary_indexes
                .iter()
                .find(|index| index.index_name == name)
                .unwrap();
            assert_eq!(index.projection.projection_type, "KEYS_ONLY", "{name}");
        }
        assert_eq!(activity.ttl_attribute.as_deref(), Some("expires_at"));
    }

    #[test]
    fn unknown_resource_types_and_properties_fail_but_log_groups_apis_and_operations_resources_are_skipped() {
        let bucket = "Resources:\n  Files: { Type: AWS::S3::Bucket }\n";
        assert!(matches!(
            parse(bucket, &[]),
            Err(TemplateError::UnsupportedResourceType { resource, .. }) if resource == "Files"
        ));
        let fifo = "Resources:\n  Jobs: { Type: AWS::SQS::Queue, Properties: { FifoQueue: true } }\n";
        assert!(matches!(
            parse(fifo, &[]),
            Err(TemplateError::UnsupportedProperty { property, .. }) if property == "FifoQueue"
        ));
        let skipped = "
Resources:
  Api: { Type: AWS::Serverless::HttpApi, Properties: { StageName: !Join ['', [a]] } }
  Logs: { Type: AWS::Logs::LogGroup, Properties: { LogGroupName: !Sub '/aws/${AWS::StackName}' } }
  Query: { Type: AWS::Logs::QueryDefinition, Properties: { Name: q, QueryString: 'fields @message' } }
  Alarms: { Type: AWS::SNS::Topic }
  Mail: { Type: AWS::SNS::Subscription, Properties: { TopicArn: !Ref Alarms, Protocol: email } }
  Errors: { Type: AWS::CloudWatch::Alarm, Properties: { AlarmActions: [!Ref Alarms] } }
  Board: { Type: AWS::CloudWatch::Dashboard, Properties: { DashboardBody: !Sub '{}' } }
";
        let template = parse(skipped, &[]).unwrap();
        assert!(
            template.tables().is_empty() && template.queues().is_empty() && template.functions().is_empty()
        );
    }

    #[test]
    fn a_redrive_cycle_or_a_foreign_dead_letter_queue_fails() {
        let cycle = "
Resources:
  A: { Type: AWS::SQS::Queue, Properties: { RedrivePolicy: { deadLetterTargetArn: !GetAtt B.Arn, maxReceiveCount: 5 } } }
  B: { Type: AWS::SQS::Queue, Properties: { RedrivePolicy: { deadLetterTargetArn: !GetAtt A.Arn, maxReceiveCount: 5 } } }
";
        assert!(parse(cycle, &[]).unwrap_err().to_string().contains("cycle"));
        let foreign = "
Resources:
  A:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: '{\"deadLetterTargetArn\": \"arn:aws:sqs:eu-west-1:1:elsewhere\", \"maxReceiveCount\": 5}'
";
        assert!(parse(foreign, &[]).unwrap_err().to_string().contains("elsewhere"));
    }
}
