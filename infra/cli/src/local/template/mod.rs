//! The SAM template, read and evaluated for the local stack: the tables, queues and functions it declares,
//! and the environment each function gets, with the template's intrinsics resolved against what
//! [`StackTemplate::provision`] created on the emulator.
//!
//! Only what the template uses is evaluated: `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`, `Fn::Not` and
//! `Fn::Equals` (short `!Tag` or long form), String and Number parameters, and the pseudo parameters
//! `AWS::Region`, `AWS::AccountId`, `AWS::StackName`, `AWS::Partition`, `AWS::URLSuffix` and
//! `AWS::NoValue`. Any other intrinsic in a resource the local stack uses fails the load, naming the
//! intrinsic and the resource, rather than being half-evaluated.
//!
//! The pieces: [`yaml`] reads the document (short-form tags into long form), [`parameters`] resolves the
//! Parameters and Conditions, [`intrinsics`] evaluates expressions, [`resources`], [`topics`] and
//! [`functions`] turn the resources into specs, and [`provision`] creates the tables, queues, topics and
//! subscriptions on the emulator.

mod functions;
mod intrinsics;
mod parameters;
mod provision;
mod resources;
#[cfg(test)]
mod testing;
mod topics;
mod yaml;

pub use functions::{FunctionSpec, HttpRoute, SqsEventSpec};
pub use resources::{AttributeSpec, IndexSpec, KeySpec, ProjectionSpec, QueueSpec, Redrive, TableSpec};
pub use topics::{SubscriptionSpec, TopicSpec};

use functions::function_spec;
use intrinsics::{Scope, check_intrinsics, scalar_string};
use parameters::{evaluate_conditions, resolve_parameters};
use resources::{
    FUNCTION, QUEUE, TABLE, creation_order, name_resources, predict, queue_spec, table_spec, used_resources,
};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use topics::{SUBSCRIPTION, TOPIC, subscription_spec, topic_spec};

/// The account moto answers for: the value of `AWS::AccountId`.
pub const ACCOUNT_ID: &str = "123456789012";

/// An SQS event's concurrency when the template sets no `ScalingConfig.MaximumConcurrency`: Lambda's
/// default account concurrency, the only bound on AWS then.
pub const DEFAULT_MAXIMUM_CONCURRENCY: u32 = 1000;

/// The region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
const DEFAULT_REGION: &str = "us-east-1";

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

/// What [`StackTemplate::provision`] created, keyed by logical id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub table_names: BTreeMap<String, String>,
    pub queue_urls: BTreeMap<String, String>,
    pub queue_arns: BTreeMap<String, String>,
    pub topic_arns: BTreeMap<String, String>,
}

/// The template, parsed and evaluated as far as it can be before anything exists.
#[derive(Debug, Clone)]
pub struct StackTemplate {
    symbols: Symbols,
    tables: Vec<TableSpec>,
    /// In creation order: every dead-letter queue before the queues that redrive to it.
    queues: Vec<QueueSpec>,
    topics: Vec<TopicSpec>,
    /// Those that deliver to a queue of the template; the others have nowhere to go locally.
    subscriptions: Vec<SubscriptionSpec>,
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

/// What a logical id of a used resource names.
#[derive(Debug, Clone)]
enum Kind {
    Table {
        name: String,
    },
    Queue {
        name: String,
    },
    /// An SNS topic: its `Ref` is its ARN.
    Topic {
        name: String,
    },
    /// A resource the local stack does not create whose `Ref` is its name (an SES configuration set).
    Named {
        name: String,
    },
    Other {
        resource_type: String,
    },
}

/// The values of the pseudo parameters.
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
        Self::from_source(&source, &path.display().to_string(), stack_name, parameters)
    }

    /// As [`load`](Self::load), from the template's text; `origin` names it in errors.
    pub fn from_source(
        source: &str,
        origin: &str,
        stack_name: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        Self::parse(source, origin, stack_name, parameters, &region())
    }

    /// The `AWS::DynamoDB::Table` resources.
    pub fn tables(&self) -> Vec<TableSpec> {
        self.tables.clone()
    }

    /// The `AWS::SQS::Queue` resources, dead-letter queues first.
    pub fn queues(&self) -> Vec<QueueSpec> {
        self.queues.clone()
    }

    /// The `AWS::SNS::Topic` resources.
    pub fn topics(&self) -> Vec<TopicSpec> {
        self.topics.clone()
    }

    /// The `AWS::SNS::Subscription` resources that deliver to a queue of the template.
    pub fn subscriptions(&self) -> Vec<SubscriptionSpec> {
        self.subscriptions.clone()
    }

    /// The `AWS::Serverless::Function` resources.
    pub fn functions(&self) -> Vec<FunctionSpec> {
        self.functions.clone()
    }

    /// What [`provision`](Self::provision) would answer, without creating anything: each table by its name,
    /// each queue at `{queue_endpoint}/{account}/{name}`, each topic at its ARN in us-east-1 (for runs that
    /// must not reach a real stack).
    pub fn unprovisioned(&self, queue_endpoint: &str) -> Provisioned {
        let mut provisioned = Provisioned::default();
        for table in self.tables() {
            provisioned.table_names.insert(table.logical_id, table.name);
        }
        for queue in self.queues() {
            let url = format!("{queue_endpoint}/{ACCOUNT_ID}/{}", queue.name);
            let arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{}", queue.name);
            provisioned.queue_urls.insert(queue.logical_id.clone(), url);
            provisioned.queue_arns.insert(queue.logical_id, arn);
        }
        for topic in self.topics() {
            let arn = format!("arn:aws:sns:us-east-1:{ACCOUNT_ID}:{}", topic.name);
            provisioned.topic_arns.insert(topic.logical_id, arn);
        }
        provisioned
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
        let template = yaml::read(source, origin)?;
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
            topics: Vec::new(),
            subscriptions: Vec::new(),
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
                TOPIC => template.topics.push(topic_spec(&scope, resource)?),
                SUBSCRIPTION => template
                    .subscriptions
                    .extend(subscription_spec(&scope, resource, &predicted)?),
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

/// The region of the pseudo parameters: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1.
fn region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// A [`TemplateError::Invalid`]: what is wrong at `path` of `resource`.
fn invalid(resource: &str, path: &str, reason: &str) -> TemplateError {
    TemplateError::Invalid {
        resource: resource.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{STACK, fake_provisioned, function, real};
    use super::*;

    #[test]
    fn load_reads_the_real_template_from_disk() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));
        let template = StackTemplate::load(path, STACK, &BTreeMap::new()).unwrap();
        assert_eq!(template.functions().len(), herald::telemetry::Function::ALL.len());
        let missing = StackTemplate::load(Path::new("/nonexistent/template.yaml"), STACK, &BTreeMap::new());
        assert!(matches!(missing, Err(TemplateError::Read { .. })));
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
        assert_eq!(
            environment["HERALD_DLQ_URL"],
            format!("http://localhost:5000/123456789012/{STACK}-email-dlq")
        );
        assert_eq!(environment["HERALD_RETRY_SCHEDULE"], "10s,1m,5m,15m,30m,1h,2h,4h");
        assert_eq!(environment["HERALD_CONFIG_TABLE"], format!("{STACK}-ConfigTable"));
        assert_eq!(
            environment["HERALD_ACTIVITY_TABLE"],
            format!("{STACK}-ActivityTable")
        );
        assert_eq!(environment["HERALD_DELIVERY_LEASE_SECONDS"], "60");
        assert_eq!(environment["HERALD_EMAIL_FROM"], "notifications@example.com");
        assert_eq!(environment["HERALD_RETENTION_DAYS"], "30");
        assert_eq!(environment["HERALD_SLACK_ALLOWED_HOSTS"], "hooks.slack.com");
        assert_eq!(environment["HERALD_METRICS_NAMESPACE"], format!("Herald/{STACK}"));
        assert_eq!(
            environment["HERALD_SES_CONFIGURATION_SET"],
            format!("{STACK}-EmailConfigurationSet"),
            "the stack's own, not created locally but named"
        );
        assert!(
            !environment.contains_key("HERALD_EMAIL_QUEUE_URL"),
            "ingest's own variables stay ingest's"
        );
    }
}
