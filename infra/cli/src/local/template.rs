//! The SAM template, read and evaluated for the local stack: the tables, queues and functions it declares,
//! and the environment each function gets, with the template's intrinsics resolved against what
//! [`StackTemplate::provision`] created on the emulator.
//!
//! Only what the template uses is evaluated: `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`, `Fn::Not` and
//! `Fn::Equals` (short `!Tag` or long form), String and Number parameters, and the pseudo parameters
//! `AWS::Region`, `AWS::AccountId`, `AWS::StackName`, `AWS::Partition`, `AWS::URLSuffix` and
//! `AWS::NoValue`. Any other intrinsic in a resource the local stack uses fails the load, naming the
//! intrinsic and the resource, rather than being half-evaluated.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The account moto answers for: the value of `AWS::AccountId`.
pub const ACCOUNT_ID: &str = "123456789012";

/// An SQS event's concurrency when the template sets no `ScalingConfig.MaximumConcurrency`: Lambda's
/// default account concurrency, the only bound on AWS then.
pub const DEFAULT_MAXIMUM_CONCURRENCY: u32 = 1000;

/// The region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
const DEFAULT_REGION: &str = "us-east-1";

const SUPPORTED_INTRINSICS: [&str; 6] = ["Ref", "Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::Not", "Fn::Equals"];

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const FUNCTION: &str = "AWS::Serverless::Function";

/// Resource types with nothing to create or run locally (the local stack routes HTTP itself). Any type
/// neither here nor above fails the load.
const SKIPPED_TYPES: [&str; 10] = [
    "AWS::Logs::LogGroup",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Api",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::Lambda::Permission",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::SQS::QueuePolicy",
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

/// Why the template cannot be read, evaluated or provisioned.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the template {origin} is not valid YAML: {source}")]
    Yaml {
        origin: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error(
        "unsupported intrinsic function {intrinsic} in {resource} at {path}: the local stack evaluates only \
         Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Not and Fn::Equals"
    )]
    UnsupportedIntrinsic {
        intrinsic: String,
        resource: String,
        path: String,
    },
    #[error("resource {resource} is of type {resource_type}, which the local stack does not support")]
    UnsupportedResourceType { resource: String, resource_type: String },
    #[error("resource {resource}: property {property} is not supported by the local stack")]
    UnsupportedProperty { resource: String, property: String },
    #[error("parameter {name}: {reason}")]
    Parameter { name: String, reason: String },
    #[error("{resource} at {path}: {reason}")]
    Invalid {
        resource: String,
        path: String,
        reason: String,
    },
    #[error("{operation} for {resource} failed on the emulator: {message}")]
    Emulator {
        operation: &'static str,
        resource: String,
        message: String,
    },
}

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
}

/// What [`StackTemplate::provision`] created, keyed by logical id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub table_names: BTreeMap<String, String>,
    pub queue_urls: BTreeMap<String, String>,
    pub queue_arns: BTreeMap<String, String>,
}

/// The template, parsed and evaluated as far as it can be before anything exists.
#[derive(Debug, Clone)]
pub struct StackTemplate {
    symbols: Symbols,
    tables: Vec<TableSpec>,
    /// In creation order: every dead-letter queue before the queues that redrive to it.
    queues: Vec<QueueSpec>,
    functions: Vec<FunctionSpec>,
    /// Each function's `Environment.Variables`, Globals merged under its own, unevaluated.
    environments: BTreeMap<String, BTreeMap<String, Json>>,
}

/// What names resolve to.
#[derive(Debug, Clone)]
struct Symbols {
    stack_name: String,
    pseudo: Pseudo,
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
    resources: BTreeMap<String, Kind>,
}

#[derive(Debug, Clone)]
enum Kind {
    Table { name: String },
    Queue { name: String },
    Other { resource_type: String },
}

#[derive(Debug, Clone)]
struct Pseudo {
    region: String,
    account_id: String,
    partition: &'static str,
    url_suffix: &'static str,
}

impl Pseudo {
    fn for_region(region: &str) -> Self {
        let (partition, url_suffix) = if region.starts_with("cn-") {
            ("aws-cn", "amazonaws.com.cn")
        } else if region.starts_with("us-gov-") {
            ("aws-us-gov", "amazonaws.com")
        } else {
            ("aws", "amazonaws.com")
        };
        Self {
            region: region.to_owned(),
            account_id: ACCOUNT_ID.to_owned(),
            partition,
            url_suffix,
        }
    }
}

impl StackTemplate {
    /// Parses template.yaml (SAM short-form tags `!Ref`, `!Sub`, `!GetAtt`, `!If`, `!Not`, `!Equals`, and
    /// their long forms) for the stack `stack_name`; `parameters` override the Parameters' defaults. The
    /// region of the pseudo parameters is `AWS_REGION` (else `AWS_DEFAULT_REGION`, else us-east-1).
    pub fn load(
        path: &Path,
        stack_name: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        Self::parse(
            &source,
            &path.display().to_string(),
            stack_name,
            parameters,
            &region,
        )
    }

    /// The `AWS::DynamoDB::Table` resources.
    pub fn tables(&self) -> Vec<TableSpec> {
        self.tables.clone()
    }

    /// The `AWS::SQS::Queue` resources, dead-letter queues first.
    pub fn queues(&self) -> Vec<QueueSpec> {
        self.queues.clone()
    }

    /// The `AWS::Serverless::Function` resources.
    pub fn functions(&self) -> Vec<FunctionSpec> {
        self.functions.clone()
    }

    /// Creates every table and queue on the emulator, dead-letter queues before the queues that redrive
    /// to them. Existing ones are reused (a queue's attributes are set to the template's).
    pub async fn provision(
        &self,
        dynamodb: &aws_sdk_dynamodb::Client,
        sqs: &aws_sdk_sqs::Client,
    ) -> Result<Provisioned, TemplateError> {
        let mut provisioned = Provisioned::default();
        for table in &self.tables {
            create_table(dynamodb, table).await?;
            provisioned
                .table_names
                .insert(table.logical_id.clone(), table.name.clone());
        }
        for queue in &self.queues {
            let (url, arn) = create_queue(sqs, queue, &provisioned).await?;
            provisioned.queue_urls.insert(queue.logical_id.clone(), url);
            provisioned.queue_arns.insert(queue.logical_id.clone(), arn);
        }
        Ok(provisioned)
    }

    /// The function's environment variables, every intrinsic resolved against `provisioned`: a `Ref` of
    /// a queue is its URL, of a table its name; `Fn::GetAtt Queue.Arn` the queue's ARN; a variable that
    /// comes to `AWS::NoValue` is left out.
    pub fn environment(
        &self,
        function: &FunctionSpec,
        provisioned: &Provisioned,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let id = function.logical_id.as_str();
        let variables = self
            .environments
            .get(id)
            .ok_or_else(|| invalid(id, "", "is not a function of the template"))?;
        let scope = Scope {
            symbols: &self.symbols,
            provisioned,
            resource: id,
        };
        let mut environment = BTreeMap::new();
        for (name, expression) in variables {
            let path = format!("Properties.Environment.Variables.{name}");
            if let Some(value) = scope.eval(expression, &path)? {
                let value = scalar_string(&value).ok_or_else(|| {
                    invalid(id, &path, "an environment variable must be a string or number")
                })?;
                environment.insert(name.clone(), value);
            }
        }
        Ok(environment)
    }

    fn parse(
        source: &str,
        origin: &str,
        stack_name: &str,
        overrides: &BTreeMap<String, String>,
        region: &str,
    ) -> Result<Self, TemplateError> {
        let yaml: serde_norway::Value =
            serde_norway::from_str(source).map_err(|source| TemplateError::Yaml {
                origin: origin.to_owned(),
                source,
            })?;
        let template = to_json(yaml).map_err(|reason| invalid("the template", "", &reason))?;
        let section = |name: &str| template.get(name).and_then(Json::as_object);
        let empty = Map::new();
        let resources = section("Resources").unwrap_or(&empty);
        let globals = section("Globals")
            .and_then(|globals| globals.get("Function"))
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let conditions = section("Conditions").unwrap_or(&empty);
        check_intrinsics(&Json::Object(conditions.clone()), "Conditions", "")?;
        check_intrinsics(&Json::Object(globals.clone()), "Globals.Function", "")?;

        let mut symbols = Symbols {
            stack_name: stack_name.to_owned(),
            pseudo: Pseudo::for_region(region),
            parameters: resolve_parameters(section("Parameters").unwrap_or(&empty), overrides)?,
            conditions: BTreeMap::new(),
            resources: BTreeMap::new(),
        };
        symbols.conditions = evaluate_conditions(&symbols, conditions)?;
        let used = used_resources(&symbols, resources)?;
        symbols.resources = name_resources(&symbols, &used)?;
        let predicted = predict(&symbols);

        let mut template = Self {
            symbols,
            tables: Vec::new(),
            queues: Vec::new(),
            functions: Vec::new(),
            environments: BTreeMap::new(),
        };
        let mut queues = Vec::new();
        for resource in &used {
            let scope = Scope {
                symbols: &template.symbols,
                provisioned: &predicted,
                resource: resource.logical_id,
            };
            match resource.type_name {
                TABLE => template.tables.push(table_spec(&scope, resource)?),
                QUEUE => queues.push(queue_spec(&scope, resource, &predicted)?),
                FUNCTION => {
                    let (spec, environment) = function_spec(&scope, resource, globals, &predicted)?;
                    template.functions.push(spec);
                    template
                        .environments
                        .insert(resource.logical_id.to_owned(), environment);
                }
                _ => {}
            }
        }
        template.queues = creation_order(queues)?;
        // Resolve every environment once now, so a bad reference fails the load, not a function's start.
        for function in &template.functions {
            template.environment(function, &predicted)?;
        }
        Ok(template)
    }
}

/// A resource the local stack creates or runs, after its `Condition`.
struct Resource<'a> {
    logical_id: &'a str,
    type_name: &'a str,
    body: &'a Map<String, Json>,
}

impl Resource<'_> {
    fn properties(&self) -> Option<&Json> {
        self.body.get("Properties")
    }
}

/// The resources whose `Condition` holds; those of a skipped type are kept only for references to them.
/// An unknown type fails, as does an unsupported intrinsic anywhere in a resource that is used.
fn used_resources<'a>(
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
        if [TABLE, QUEUE, FUNCTION].contains(&resource_type) {
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

/// The physical names of tables and queues, which may use parameters but no other resource.
fn name_resources(symbols: &Symbols, used: &[Resource<'_>]) -> Result<BTreeMap<String, Kind>, TemplateError> {
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
fn predict(symbols: &Symbols) -> Provisioned {
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
            Kind::Other { .. } => {}
        }
    }
    provisioned
}

/// The logical id of the queue whose (predicted) ARN is `arn`.
fn queue_by_arn(
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

fn table_spec(scope: &Scope<'_>, resource: &Resource<'_>) -> Result<TableSpec, TemplateError> {
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

fn queue_spec(
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
fn creation_order(queues: Vec<QueueSpec>) -> Result<Vec<QueueSpec>, TemplateError> {
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

fn function_spec(
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
    let (http_routes, sqs_events) = events(scope, properties, predicted)?;
    let spec = FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        timeout_seconds: setting("Timeout", 3)?,
        memory_mb: setting("MemorySize", 128)?,
        http_routes,
        sqs_events,
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

fn events(
    scope: &Scope<'_>,
    properties: &Map<String, Json>,
    predicted: &Provisioned,
) -> Result<(Vec<HttpRoute>, Vec<SqsEventSpec>), TemplateError> {
    let id = scope.resource;
    let mut routes = Vec::new();
    let mut queues = Vec::new();
    let Some(events) = properties.get("Events") else {
        return Ok((routes, queues));
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
            "HttpApi" => routes.push(http_route(scope, event_properties, &path)?),
            "SQS" => {
                if let Some(event) = sqs_event(scope, event_properties, &path, predicted)? {
                    queues.push(event);
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
    Ok((routes, queues))
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
    Ok(Some(SqsEventSpec {
        queue: queue_by_arn(predicted, queue, id, &queue_path)?,
        batch_size,
        maximum_concurrency,
        report_batch_item_failures,
    }))
}

/// Fails on any property not in `known`.
fn check_properties(
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

// ------------------------------------------------------------------------------------------ parameters

/// Each parameter's value: the override, else its Default; checked against AllowedValues, MinValue,
/// MaxValue, MinLength and MaxLength.
fn resolve_parameters(
    declared: &Map<String, Json>,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let fail = |name: &str, reason: String| TemplateError::Parameter {
        name: name.to_owned(),
        reason,
    };
    if let Some(unknown) = overrides.keys().find(|name| !declared.contains_key(*name)) {
        return Err(fail(
            unknown,
            "the template declares no such parameter".to_owned(),
        ));
    }
    let mut values = BTreeMap::new();
    for (name, declaration) in declared {
        let parameter_type = declaration.get("Type").and_then(Json::as_str).unwrap_or("String");
        if !matches!(parameter_type, "String" | "Number") {
            return Err(fail(
                name,
                format!("type {parameter_type} is not supported locally"),
            ));
        }
        let value = match overrides.get(name) {
            Some(value) => value.clone(),
            None => declaration
                .get("Default")
                .and_then(scalar_string)
                .ok_or_else(|| fail(name, "has no Default, so it needs a value".to_owned()))?,
        };
        if let Some(allowed) = declaration.get("AllowedValues").and_then(Json::as_array) {
            if !allowed
                .iter()
                .filter_map(scalar_string)
                .any(|candidate| candidate == value)
            {
                return Err(fail(name, format!("{value:?} is not one of its AllowedValues")));
            }
        }
        let bound = |key: &str| {
            declaration
                .get(key)
                .and_then(scalar_string)
                .and_then(|b| b.parse::<f64>().ok())
        };
        if parameter_type == "Number" {
            let number: f64 = value
                .trim()
                .parse()
                .map_err(|_| fail(name, format!("{value:?} is not a number")))?;
            if bound("MinValue").is_some_and(|min| number < min)
                || bound("MaxValue").is_some_and(|max| number > max)
            {
                return Err(fail(name, format!("{value} is outside its MinValue..MaxValue")));
            }
        } else {
            #[allow(clippy::cast_precision_loss)]
            let length = value.chars().count() as f64;
            if bound("MinLength").is_some_and(|min| length < min)
                || bound("MaxLength").is_some_and(|max| length > max)
            {
                return Err(fail(
                    name,
                    format!("{value:?} is outside its MinLength..MaxLength"),
                ));
            }
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

fn evaluate_conditions(
    symbols: &Symbols,
    conditions: &Map<String, Json>,
) -> Result<BTreeMap<String, bool>, TemplateError> {
    let nothing = Provisioned::default();
    let scope = Scope {
        symbols,
        provisioned: &nothing,
        resource: "Conditions",
    };
    conditions
        .iter()
        .map(|(name, expression)| match scope.eval(expression, name)? {
            Some(Json::Bool(holds)) => Ok((name.clone(), holds)),
            _ => Err(invalid(
                "Conditions",
                name,
                "a condition must come to true or false",
            )),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------ evaluation

/// Evaluates expressions of one resource.
struct Scope<'a> {
    symbols: &'a Symbols,
    provisioned: &'a Provisioned,
    resource: &'a str,
}

impl Scope<'_> {
    /// The value of `value`, or `None` for `AWS::NoValue` (dropped from mappings and lists).
    fn eval(&self, value: &Json, path: &str) -> Result<Option<Json>, TemplateError> {
        match value {
            Json::Object(map) => {
                if let Some((name, argument)) = as_intrinsic(map) {
                    return self.intrinsic(name, argument, path);
                }
                let mut evaluated = Map::new();
                for (key, value) in map {
                    if let Some(value) = self.eval(value, &join(path, key))? {
                        evaluated.insert(key.clone(), value);
                    }
                }
                Ok(Some(Json::Object(evaluated)))
            }
            Json::Array(items) => {
                let mut evaluated = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    evaluated.extend(self.eval(item, &format!("{path}[{index}]"))?);
                }
                Ok(Some(Json::Array(evaluated)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// The value of `value`, which must not be `AWS::NoValue`.
    fn required(&self, value: &Json, path: &str) -> Result<Json, TemplateError> {
        self.eval(value, path)?
            .ok_or_else(|| self.invalid(path, "AWS::NoValue is not allowed here"))
    }

    /// The value of `value` as a string (a number is written out).
    fn string(&self, value: &Json, path: &str) -> Result<String, TemplateError> {
        scalar_string(&self.required(value, path)?).ok_or_else(|| self.invalid(path, "must be a string"))
    }

    /// The resource's Properties, evaluated.
    fn properties(&self, resource: &Resource<'_>) -> Result<Map<String, Json>, TemplateError> {
        match resource.properties() {
            None => Ok(Map::new()),
            Some(properties) => match self.required(properties, "Properties")? {
                Json::Object(properties) => Ok(properties),
                _ => Err(self.invalid("Properties", "must be a mapping")),
            },
        }
    }

    fn invalid(&self, path: &str, reason: &str) -> TemplateError {
        invalid(self.resource, path, reason)
    }

    fn intrinsic(&self, name: &str, argument: &Json, path: &str) -> Result<Option<Json>, TemplateError> {
        let path = &join(path, name);
        match name {
            "Ref" => {
                let target = argument
                    .as_str()
                    .ok_or_else(|| self.invalid(path, "Ref takes the name of a parameter or resource"))?;
                self.reference(target, path)
            }
            "Fn::GetAtt" => {
                let (target, attribute) = match argument {
                    Json::Array(parts) => match parts.as_slice() {
                        [Json::String(target), Json::String(attribute)] => {
                            (target.as_str(), attribute.as_str())
                        }
                        _ => return Err(self.invalid(path, "Fn::GetAtt takes [resource, attribute]")),
                    },
                    Json::String(dotted) => dotted
                        .split_once('.')
                        .ok_or_else(|| self.invalid(path, "Fn::GetAtt takes resource.attribute"))?,
                    _ => return Err(self.invalid(path, "Fn::GetAtt takes [resource, attribute]")),
                };
                self.attribute(target, attribute, path)
                    .map(|value| Some(Json::String(value)))
            }
            "Fn::Sub" => self
                .substitute(argument, path)
                .map(|text| Some(Json::String(text))),
            "Fn::If" => {
                let Some([Json::String(condition), when_true, when_false]) =
                    argument.as_array().map(Vec::as_slice)
                else {
                    return Err(self.invalid(path, "Fn::If takes [condition, value if true, value if false]"));
                };
                let chosen = if self.condition(condition, path)? {
                    when_true
                } else {
                    when_false
                };
                self.eval(chosen, path)
            }
            "Fn::Not" => {
                let Some([operand]) = argument.as_array().map(Vec::as_slice) else {
                    return Err(self.invalid(path, "Fn::Not takes [condition]"));
                };
                match self.required(operand, path)? {
                    Json::Bool(holds) => Ok(Some(Json::Bool(!holds))),
                    _ => Err(self.invalid(path, "Fn::Not takes a condition (Fn::Equals or Fn::Not)")),
                }
            }
            "Fn::Equals" => {
                let Some([left, right]) = argument.as_array().map(Vec::as_slice) else {
                    return Err(self.invalid(path, "Fn::Equals takes [value, value]"));
                };
                let (left, right) = (self.required(left, path)?, self.required(right, path)?);
                let equal = match (scalar_string(&left), scalar_string(&right)) {
                    (Some(left), Some(right)) => left == right,
                    _ => left == right,
                };
                Ok(Some(Json::Bool(equal)))
            }
            other => Err(TemplateError::UnsupportedIntrinsic {
                intrinsic: other.to_owned(),
                resource: self.resource.to_owned(),
                path: path.clone(),
            }),
        }
    }

    fn condition(&self, name: &str, path: &str) -> Result<bool, TemplateError> {
        self.symbols
            .conditions
            .get(name)
            .copied()
            .ok_or_else(|| self.invalid(path, &format!("no condition named {name}")))
    }

    /// `Ref target`: a pseudo parameter, a parameter, a table's name or a queue's URL.
    fn reference(&self, target: &str, path: &str) -> Result<Option<Json>, TemplateError> {
        let symbols = self.symbols;
        let pseudo = &symbols.pseudo;
        let value = match target {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => pseudo.region.clone(),
            "AWS::AccountId" => pseudo.account_id.clone(),
            "AWS::StackName" => symbols.stack_name.clone(),
            "AWS::Partition" => pseudo.partition.to_owned(),
            "AWS::URLSuffix" => pseudo.url_suffix.to_owned(),
            _ if target.starts_with("AWS::") => {
                return Err(self.invalid(
                    path,
                    &format!("pseudo parameter {target} is not supported locally"),
                ));
            }
            _ => {
                if let Some(value) = symbols.parameters.get(target) {
                    value.clone()
                } else {
                    let provisioned = match symbols.resources.get(target) {
                        Some(Kind::Table { .. }) => self.provisioned.table_names.get(target),
                        Some(Kind::Queue { .. }) => self.provisioned.queue_urls.get(target),
                        Some(Kind::Other { resource_type }) => {
                            return Err(self.invalid(
                                path,
                                &format!("Ref of {target} ({resource_type}) has no value locally"),
                            ));
                        }
                        None => {
                            return Err(self.invalid(
                                path,
                                &format!("Ref names {target}, which is neither a parameter nor a resource"),
                            ));
                        }
                    };
                    provisioned
                        .cloned()
                        .ok_or_else(|| self.not_provisioned(target, path))?
                }
            }
        };
        Ok(Some(Json::String(value)))
    }

    /// `Fn::GetAtt target.attribute`: a queue's Arn, QueueUrl or QueueName, a table's Arn.
    fn attribute(&self, target: &str, attribute: &str, path: &str) -> Result<String, TemplateError> {
        let pseudo = &self.symbols.pseudo;
        let value = match (self.symbols.resources.get(target), attribute) {
            (Some(Kind::Queue { .. }), "Arn") => self.provisioned.queue_arns.get(target).cloned(),
            (Some(Kind::Queue { .. }), "QueueUrl") => self.provisioned.queue_urls.get(target).cloned(),
            (Some(Kind::Queue { name }), "QueueName") => Some(name.clone()),
            (Some(Kind::Table { .. }), "Arn") => self.provisioned.table_names.get(target).map(|name| {
                format!(
                    "arn:{}:dynamodb:{}:{}:table/{name}",
                    pseudo.partition, pseudo.region, pseudo.account_id
                )
            }),
            (Some(_), _) => {
                return Err(self.invalid(
                    path,
                    &format!("Fn::GetAtt {target}.{attribute} is not supported locally"),
                ));
            }
            (None, _) => {
                return Err(self.invalid(
                    path,
                    &format!("Fn::GetAtt names {target}, which is not a resource"),
                ));
            }
        };
        value.ok_or_else(|| self.not_provisioned(target, path))
    }

    /// `Fn::Sub text` or `Fn::Sub [text, {variables}]`: `${Name}`, `${Resource.Attribute}`, `${!Literal}`.
    fn substitute(&self, argument: &Json, path: &str) -> Result<String, TemplateError> {
        let (text, variables) = match argument {
            Json::String(text) => (text.as_str(), None),
            Json::Array(parts) => match parts.as_slice() {
                [Json::String(text), Json::Object(variables)] => (text.as_str(), Some(variables)),
                _ => return Err(self.invalid(path, "Fn::Sub takes a string or [string, {variables}]")),
            },
            _ => return Err(self.invalid(path, "Fn::Sub takes a string or [string, {variables}]")),
        };
        let mut result = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            result.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.invalid(path, "an unclosed ${ in Fn::Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                result.push_str("${");
                result.push_str(literal);
                result.push('}');
            } else {
                result.push_str(&self.variable(name.trim(), variables, path)?);
            }
            rest = &after[end + 1..];
        }
        result.push_str(rest);
        Ok(result)
    }

    fn variable(
        &self,
        name: &str,
        variables: Option<&Map<String, Json>>,
        path: &str,
    ) -> Result<String, TemplateError> {
        let value = if let Some(expression) = variables.and_then(|variables| variables.get(name)) {
            self.eval(expression, path)?
        } else if let (Some((target, attribute)), false) = (name.split_once('.'), name.starts_with("AWS::")) {
            Some(Json::String(self.attribute(target, attribute, path)?))
        } else {
            self.reference(name, path)?
        };
        value
            .as_ref()
            .and_then(scalar_string)
            .ok_or_else(|| self.invalid(path, &format!("${{{name}}} does not come to a string")))
    }

    fn not_provisioned(&self, target: &str, path: &str) -> TemplateError {
        self.invalid(path, &format!("{target} is used before it is created"))
    }
}

// -------------------------------------------------------------------------------------------- helpers

fn invalid(resource: &str, path: &str, reason: &str) -> TemplateError {
    TemplateError::Invalid {
        resource: resource.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `(name, argument)` when `map` is an intrinsic function: one key, `Ref` or `Fn::*`.
fn as_intrinsic(map: &Map<String, Json>) -> Option<(&str, &Json)> {
    if map.len() != 1 {
        return None;
    }
    let (name, argument) = map.iter().next()?;
    (name == "Ref" || name.starts_with("Fn::")).then_some((name.as_str(), argument))
}

/// Fails on the first intrinsic function that is not evaluated here.
fn check_intrinsics(value: &Json, resource: &str, path: &str) -> Result<(), TemplateError> {
    match value {
        Json::Object(map) => {
            if let Some((name, _)) = as_intrinsic(map) {
                if !SUPPORTED_INTRINSICS.contains(&name) {
                    return Err(TemplateError::UnsupportedIntrinsic {
                        intrinsic: name.to_owned(),
                        resource: resource.to_owned(),
                        path: path.to_owned(),
                    });
                }
            }
            map.iter()
                .try_for_each(|(key, value)| check_intrinsics(value, resource, &join(path, key)))
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| check_intrinsics(item, resource, &format!("{path}[{index}]"))),
        _ => Ok(()),
    }
}

/// A scalar written out as CloudFormation does (numbers and booleans as text).
fn scalar_string(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        Json::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn truthy(value: Option<&Json>) -> bool {
    match value {
        Some(Json::Bool(flag)) => *flag,
        Some(Json::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A whole number, written as a number or as text (a `Ref` of a Number parameter is text).
fn integer(value: &Json, resource: &str, path: &str) -> Result<i64, TemplateError> {
    match value {
        Json::Number(number) => number.as_i64(),
        Json::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(resource, path, "must be a whole number"))
}

/// The YAML document as JSON, short-form tags turned into their long forms: `!Ref X` into
/// `{"Ref": "X"}`, `!GetAtt A.B` into `{"Fn::GetAtt": ["A", "B"]}`, any other `!Name x` into
/// `{"Fn::Name": x}`.
fn to_json(value: serde_norway::Value) -> Result<Json, String> {
    use serde_norway::Value as Yaml;
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(flag) => Json::Bool(flag),
        Yaml::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Json::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Json::from(integer)
            } else {
                number
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .ok_or_else(|| format!("the number {number} cannot be used"))?
            }
        }
        Yaml::String(text) => Json::String(text),
        Yaml::Sequence(items) => Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(key) => key,
                    Yaml::Number(key) => key.to_string(),
                    Yaml::Bool(key) => key.to_string(),
                    other => return Err(format!("a mapping key must be a string, not {other:?}")),
                };
                map.insert(key, to_json(value)?);
            }
            Json::Object(map)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let argument = to_json(tagged.value)?;
            let (name, argument) = match tag.trim_start_matches('!') {
                "Ref" => ("Ref".to_owned(), argument),
                "GetAtt" => {
                    let argument = match argument {
                        Json::String(dotted) => match dotted.split_once('.') {
                            Some((target, attribute)) => Json::from(vec![target, attribute]),
                            None => Json::String(dotted),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), argument)
                }
                other => (format!("Fn::{other}"), argument),
            };
            Json::Object(Map::from_iter([(name, argument)]))
        }
    })
}

// ------------------------------------------------------------------------------------------ provisioning

fn emulator_error<E: std::error::Error>(operation: &'static str, resource: &str, error: E) -> TemplateError {
    TemplateError::Emulator {
        operation,
        resource: resource.to_owned(),
        message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    }
}

fn key_schema(keys: &[KeySpec], resource: &str) -> Result<Vec<KeySchemaElement>, TemplateError> {
    keys.iter()
        .map(|key| {
            KeySchemaElement::builder()
                .attribute_name(&key.attribute_name)
                .key_type(KeyType::from(key.key_type.as_str()))
                .build()
                .map_err(|error| emulator_error("CreateTable", resource, error))
        })
        .collect()
}

/// Creates the table on demand (or reuses one of that name), waits for it to be ACTIVE, and turns its
/// TTL on where the emulator allows.
async fn create_table(client: &aws_sdk_dynamodb::Client, table: &TableSpec) -> Result<(), TemplateError> {
    let id = table.logical_id.as_str();
    let attributes = table
        .attributes
        .iter()
        .map(|attribute| {
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(|error| emulator_error("CreateTable", id, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = table
        .global_secondary_indexes
        .iter()
        .map(|index| {
            let projection = Projection::builder()
                .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
                .set_non_key_attributes(
                    (!index.projection.non_key_attributes.is_empty())
                        .then(|| index.projection.non_key_attributes.clone()),
                )
                .build();
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema, id)?))
                .projection(projection)
                .build()
                .map_err(|error| emulator_error("CreateTable", id, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let created = client
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&table.key_schema, id)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
            ) => {}
        Err(error) => return Err(emulator_error("CreateTable", id, error)),
    }
    wait_until_active(client, table).await?;
    if let Some(attribute) = &table.ttl_attribute {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|error| emulator_error("UpdateTimeToLive", id, error))?;
        // TTL changes nothing the local stack relies on; an emulator that refuses it (or a table that
        // already has it) is fine.
        if let Err(error) = client
            .update_time_to_live()
            .table_name(&table.name)
            .time_to_live_specification(specification)
            .send()
            .await
        {
            tracing::debug!(table = %table.name, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&error), "TTL not enabled");
        }
    }
    Ok(())
}

async fn wait_until_active(
    client: &aws_sdk_dynamodb::Client,
    table: &TableSpec,
) -> Result<(), TemplateError> {
    for _ in 0..100 {
        let described = client
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|error| emulator_error("DescribeTable", &table.logical_id, error))?;
        let status = described.table().and_then(|table| table.table_status());
        if status.is_none_or(|status| *status == TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(TemplateError::Emulator {
        operation: "DescribeTable",
        resource: table.logical_id.clone(),
        message: format!("{} did not become ACTIVE within 10 s", table.name),
    })
}

/// Creates the queue (or reuses one of that name, setting its attributes to the template's) and
/// returns its URL and ARN. Its dead-letter queue must be in `provisioned` already.
async fn create_queue(
    client: &aws_sdk_sqs::Client,
    queue: &QueueSpec,
    provisioned: &Provisioned,
) -> Result<(String, String), TemplateError> {
    let id = queue.logical_id.as_str();
    let mut attributes = HashMap::new();
    if let Some(seconds) = queue.visibility_timeout {
        attributes.insert(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    if let Some(seconds) = queue.message_retention_period {
        attributes.insert(QueueAttributeName::MessageRetentionPeriod, seconds.to_string());
    }
    if let Some(redrive) = &queue.redrive {
        let target = provisioned
            .queue_arns
            .get(&redrive.dead_letter_queue)
            .ok_or_else(|| {
                invalid(
                    id,
                    "Properties.RedrivePolicy",
                    &format!("{} is not created yet", redrive.dead_letter_queue),
                )
            })?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": target,
            "maxReceiveCount": redrive.max_receive_count,
        });
        attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let existing = client.get_queue_url().queue_name(&queue.name).send().await;
    let url = match existing {
        Ok(output) => {
            let url = output.queue_url().unwrap_or_default().to_owned();
            if !attributes.is_empty() {
                client
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|error| emulator_error("SetQueueAttributes", id, error))?;
            }
            url
        }
        Err(error) if is_missing_queue(&error) => client
            .create_queue()
            .queue_name(&queue.name)
            .set_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(|error| emulator_error("CreateQueue", id, error))?
            .queue_url()
            .unwrap_or_default()
            .to_owned(),
        Err(error) => return Err(emulator_error("GetQueueUrl", id, error)),
    };
    if url.is_empty() {
        return Err(TemplateError::Emulator {
            operation: "CreateQueue",
            resource: id.to_owned(),
            message: "the emulator returned no queue URL".to_owned(),
        });
    }
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| emulator_error("GetQueueAttributes", id, error))?
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| TemplateError::Emulator {
            operation: "GetQueueAttributes",
            resource: id.to_owned(),
            message: "the emulator returned no QueueArn".to_owned(),
        })?;
    Ok((url, arn))
}

/// Whether GetQueueUrl failed because there is no such queue (the query-protocol code included).
fn is_missing_queue<R>(
    error: &aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError, R>,
) -> bool {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    error.as_service_error().is_some_and(|error| {
        error.is_queue_does_not_exist()
            || error
                .code()
                .is_some_and(|code| code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));
    const STACK: &str = "herald-test";

    fn parse(source: &str, parameters: &[(&str, &str)]) -> Result<StackTemplate, TemplateError> {
        let parameters = parameters
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        StackTemplate::parse(source, "test", STACK, &parameters, "eu-west-1")
    }

    fn real() -> StackTemplate {
        parse(TEMPLATE, &[]).unwrap()
    }

    fn function(template: &StackTemplate, binary: &str) -> FunctionSpec {
        template
            .functions()
            .into_iter()
            .find(|function| function.binary == binary)
            .unwrap()
    }

    /// What the emulator would answer, with URLs and ARNs unlike the predicted ones.
    fn fake_provisioned(template: &StackTemplate) -> Provisioned {
        let mut provisioned = Provisioned::default();
        for table in template.tables() {
            provisioned.table_names.insert(table.logical_id, table.name);
        }
        for queue in template.queues() {
            let url = format!("http://localhost:5000/123456789012/{}", queue.name);
            let arn = format!("arn:aws:sqs:us-east-1:123456789012:{}", queue.name);
            provisioned.queue_urls.insert(queue.logical_id.clone(), url);
            provisioned.queue_arns.insert(queue.logical_id, arn);
        }
        provisioned
    }

    #[test]
    fn load_reads_the_real_template_from_disk() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));
        let template = StackTemplate::load(path, STACK, &BTreeMap::new()).unwrap();
        assert_eq!(template.functions().len(), 5);
        let missing = StackTemplate::load(Path::new("/nonexistent/template.yaml"), STACK, &BTreeMap::new());
        assert!(matches!(missing, Err(TemplateError::Read { .. })));
    }

    #[test]
    fn the_real_template_has_three_queues_and_three_dlqs_each_redriving_to_its_own() {
        let queues = real().queues();
        assert_eq!(queues.len(), 6);
        for channel in ["Email", "Sms", "Slack"] {
            let lower = channel.to_lowercase();
            let queue = queues
                .iter()
                .find(|q| q.logical_id == format!("{channel}Queue"))
                .unwrap();
            let dlq_id = format!("{channel}DeadLetterQueue");
            let dlq = queues.iter().find(|q| q.logical_id == dlq_id).unwrap();
            assert_eq!(queue.name, format!("{STACK}-{lower}"));
            assert_eq!(dlq.name, format!("{STACK}-{lower}-dlq"));
            assert_eq!(queue.visibility_timeout, Some(180));
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
        let fanout = activity
            .global_secondary_indexes
            .iter()
            .find(|index| index.index_name == "fanout_pending")
            .unwrap();
        assert_eq!(fanout.projection.projection_type, "KEYS_ONLY");
        assert_eq!(activity.ttl_attribute.as_deref(), Some("expires_at"));
    }

    #[test]
    fn the_real_template_has_five_functions_with_globals_merged() {
        let template = real();
        let mut binaries = template
            .functions()
            .into_iter()
            .map(|f| f.binary)
            .collect::<Vec<_>>();
        binaries.sort();
        assert_eq!(binaries, ["api", "email", "ingest", "slack", "sms"]);
        let ingest = function(&template, "ingest");
        assert_eq!((ingest.timeout_seconds, ingest.memory_mb), (10, 256));
        assert!(ingest.http_routes.contains(&HttpRoute {
            method: "POST".into(),
            path: "/v1/events".into()
        }));
        assert!(ingest.http_routes.contains(&HttpRoute {
            method: "GET".into(),
            path: "/v1/events/{id}".into()
        }));
        assert!(ingest.sqs_events.is_empty());
        let email = function(&template, "email");
        assert_eq!((email.timeout_seconds, email.memory_mb), (30, 256));
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
        assert_eq!(api.http_routes.len(), 8);
    }

    #[test]
    fn each_channel_function_consumes_its_queue_in_batches_of_ten() {
        let template = real();
        for (binary, queue) in [
            ("email", "EmailQueue"),
            ("sms", "SmsQueue"),
            ("slack", "SlackQueue"),
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
                }]
            );
        }
    }

    #[test]
    fn the_email_environment_resolves_against_what_was_provisioned() {
        let template = real();
        let provisioned = fake_provisioned(&template);
        let environment = template
            .environment(&function(&template, "email"), &provisioned)
            .unwrap();
        assert_eq!(
            environment["HERALD_QUEUE_URL"],
            format!("http://localhost:5000/123456789012/{STACK}-email")
        );
        assert_eq!(environment["HERALD_MAX_RECEIVE_COUNT"], "8");
        assert_eq!(environment["HERALD_CONFIG_TABLE"], format!("{STACK}-ConfigTable"));
        assert_eq!(
            environment["HERALD_ACTIVITY_TABLE"],
            format!("{STACK}-ActivityTable")
        );
        assert_eq!(environment["HERALD_DELIVERY_LEASE_SECONDS"], "60");
        assert_eq!(environment["HERALD_EMAIL_FROM"], "notifications@example.com");
        assert_eq!(environment["HERALD_RETENTION_DAYS"], "30");
        assert_eq!(environment["HERALD_SLACK_ALLOWED_HOSTS"], "hooks.slack.com");
        assert!(
            !environment.contains_key("HERALD_SES_CONFIGURATION_SET"),
            "AWS::NoValue drops it"
        );
        assert!(
            !environment.contains_key("HERALD_EMAIL_QUEUE_URL"),
            "ingest's own variables stay ingest's"
        );
    }

    #[test]
    fn parameters_override_defaults_and_conditions_follow() {
        let template = parse(
            TEMPLATE,
            &[
                ("ConfigurationSetName", "herald-events"),
                ("MaxReceiveCount", "6"),
                ("SenderAddress", "me@example.org"),
            ],
        )
        .unwrap();
        let provisioned = fake_provisioned(&template);
        let environment = template
            .environment(&function(&template, "email"), &provisioned)
            .unwrap();
        assert_eq!(environment["HERALD_SES_CONFIGURATION_SET"], "herald-events");
        assert_eq!(environment["HERALD_MAX_RECEIVE_COUNT"], "6");
        assert_eq!(environment["HERALD_EMAIL_FROM"], "me@example.org");
        assert!(
            template
                .queues()
                .iter()
                .filter_map(|q| q.redrive.as_ref())
                .all(|r| r.max_receive_count == 6)
        );
        let ingest = template
            .environment(&function(&template, "ingest"), &provisioned)
            .unwrap();
        assert_eq!(ingest["HERALD_SMS_QUEUE_URL"], provisioned.queue_urls["SmsQueue"]);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (name, value) in [
            ("MaxReceiveCount", "2"),
            ("MaxReceiveCount", "many"),
            ("Architecture", "sparc"),
            ("NoSuchParameter", "x"),
        ] {
            let error = parse(TEMPLATE, &[(name, value)]).unwrap_err();
            assert!(
                matches!(&error, TemplateError::Parameter { name: n, .. } if n == name),
                "{error}"
            );
        }
    }

    #[test]
    fn an_unknown_intrinsic_fails_naming_the_intrinsic_and_the_resource() {
        let short = "
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Select [0, [a, b]]
";
        let long = "
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment:
        Variables:
          TABLE: { 'Fn::ImportValue': shared-table }
";
        for (source, intrinsic, resource) in
            [(short, "Fn::Select", "Jobs"), (long, "Fn::ImportValue", "Worker")]
        {
            let error = parse(source, &[]).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(&error, TemplateError::UnsupportedIntrinsic { intrinsic: i, resource: r, .. }
                    if i == intrinsic && r == resource),
                "{message}"
            );
            assert!(
                message.contains(intrinsic) && message.contains(resource),
                "{message}"
            );
        }
    }

    #[test]
    fn unknown_resource_types_and_properties_fail_but_log_groups_and_apis_are_skipped() {
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
";
        let template = parse(skipped, &[]).unwrap();
        assert!(
            template.tables().is_empty() && template.queues().is_empty() && template.functions().is_empty()
        );
    }

    #[test]
    fn sub_handles_variables_literals_attributes_and_pseudo_parameters() {
        let source = r"
Resources:
  Jobs: { Type: AWS::SQS::Queue }
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Timeout: 7
      Environment:
        Variables:
          WHERE: !Sub '${AWS::Region}/${AWS::AccountId}/${AWS::Partition}/${AWS::URLSuffix}/${AWS::StackName}'
          ARN: !Sub '${Jobs.Arn}|${!Literal}|${Name}'
          NAME: !GetAtt Jobs.QueueName
          LIST_FORM: { 'Fn::Sub': ['${Greeting}, ${Who}', { Greeting: hello, Who: !Ref Jobs }] }
          SAME: !Equals [a, a]
      Events:
        Work: { Type: SQS, Properties: { Queue: { 'Fn::GetAtt': [Jobs, Arn] } } }
        Root: { Type: HttpApi }
Parameters:
  Name: { Type: String, Default: x }
";
        let template = parse(source, &[]).unwrap();
        let worker = function(&template, "worker");
        assert_eq!((worker.timeout_seconds, worker.memory_mb), (7, 128));
        assert_eq!(
            worker.http_routes,
            [HttpRoute {
                method: "ANY".into(),
                path: "$default".into()
            }]
        );
        assert_eq!(worker.sqs_events[0].queue, "Jobs");
        assert_eq!(worker.sqs_events[0].batch_size, 10);
        assert_eq!(
            worker.sqs_events[0].maximum_concurrency,
            DEFAULT_MAXIMUM_CONCURRENCY
        );
        assert!(!worker.sqs_events[0].report_batch_item_failures);
        let queue = &template.queues()[0];
        assert_eq!(queue.name, format!("{STACK}-Jobs"));
        let environment = template
            .environment(&worker, &fake_provisioned(&template))
            .unwrap();
        assert_eq!(
            environment["WHERE"],
            format!("eu-west-1/{ACCOUNT_ID}/aws/amazonaws.com/{STACK}")
        );
        assert_eq!(
            environment["ARN"],
            format!("arn:aws:sqs:us-east-1:123456789012:{STACK}-Jobs|${{Literal}}|x")
        );
        assert_eq!(environment["NAME"], format!("{STACK}-Jobs"));
        assert_eq!(
            environment["LIST_FORM"],
            format!("hello, http://localhost:5000/123456789012/{STACK}-Jobs")
        );
        assert_eq!(environment["SAME"], "true");
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
    fn references_to_unknown_or_unprovisioned_resources_fail() {
        let source = "
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment: { Variables: { QUEUE: !Ref Missing } }
";
        let error = parse(source, &[]).unwrap_err();
        assert!(error.to_string().contains("Missing"), "{error}");
        let template = real();
        let error = template
            .environment(&function(&template, "email"), &Provisioned::default())
            .unwrap_err();
        assert!(error.to_string().contains("EmailFunction"), "{error}");
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
