//! Helpers for Herald's integration tests, which run against the AWS emulator (moto server) started by
//! `scripts/test`. Every test creates the tables and queues of `template.yaml` under a stack name of its
//! own (with the same code as `herald local up`, so they cannot drift from the template) and a tenant of
//! its own, so tests run in parallel and beside a running local stack.

// Test support: a failed expectation here is a failed test, with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod audit;
pub mod channels;
pub mod delivery_fixture;
pub mod fault_proxy;
pub mod poller;
pub mod recovery;
pub mod table_fixture;
pub mod template_file;
pub mod webhook_verifier;

use base64::Engine;
use herald::adapters::dynamodb::{DynamoActivityStore, DynamoConfigStore};
use herald::adapters::sns_push::PushApplications;
use herald::adapters::sqs::SqsNotificationQueue;
use herald::api::Api;
use herald::config::{AwsSettings, Env, HttpSettings, QueueUrls, Tables};
use herald::domain::api_key::{KeyScope, NewApiKey};
use herald::domain::notification::Envelope;
use herald::domain::{Channel, TenantId, Timestamp};
use herald::ingest::Ingest;
use herald::ports::ApiKeyStore;
use herald_cli::local::template::{Provisioned, StackTemplate};
use lambda_http::Request;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

pub type TestIngest = Ingest<DynamoConfigStore, DynamoConfigStore, DynamoActivityStore, SqsNotificationQueue>;
pub type TestApi = Api<DynamoConfigStore, DynamoConfigStore, PushApplications>;

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{prefix}-{}", &id[id.len() - 12..])
}

/// The AWS configuration pointing at the emulator. Fails, never skips, when it is not running.
pub async fn emulator_config() -> aws_config::SdkConfig {
    // Herald's logs go to the test's captured output, shown when the test fails.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| !url.is_empty()),
        "AWS_ENDPOINT_URL is not set: run the tests with ./scripts/test, which starts the AWS emulator"
    );
    let settings = AwsSettings::from_env(&Env::process()).expect("AWS settings");
    herald::adapters::load_aws_config(&settings).await
}

/// One test's own piece of AWS: the template's two tables and three channel queues (each with its DLQ),
/// a tenant with an API key.
#[derive(Debug, Clone)]
pub struct Stack {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    /// This stack's own SNS platform applications, APNs and FCM, as `ApnsPlatformApplicationArn` and
    /// `FcmPlatformApplicationArn` name them in a deployment.
    pub push_applications: [String; 2],
    pub tables: Tables,
    pub queues: QueueUrls,
    pub dead_letter_queues: QueueUrls,
    /// The template as this stack was made from it, and what its resources are called here (by logical id);
    /// shared, so a stack stays small enough to move between futures.
    pub template: Arc<StackTemplate>,
    pub provisioned: Arc<Provisioned>,
    pub tenant: TenantId,
    pub api_key: String,
    /// Whether Slack webhooks may point at loopback (where wiremock listens), as in the local stack.
    pub loopback_webhooks: bool,
    /// Notifications a minute per recipient and channel; 0 (no limit) unless a test asks for one, so the
    /// tests of other features may send one recipient as many as they need.
    pub rate_limit_per_minute: u32,
}

/// A platform application of `platform` (`APNS`, `GCM`) of a name no other test uses; its ARN.
pub async fn platform_application(sns: &aws_sdk_sns::Client, platform: &str) -> String {
    sns.create_platform_application()
        .name(unique("herald"))
        .platform(platform)
        .attributes("PlatformCredential", "test-credential")
        .attributes("PlatformPrincipal", "test-principal")
        .send()
        .await
        .expect("create the platform application")
        .platform_application_arn
        .expect("the application's ARN")
}

/// The template `herald local up` and `sam deploy` use.
const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

/// Deliveries of one message before SQS moves it to the DLQ, in tests: the template's `MaxReceiveCount`
/// parameter, set to the fewest it allows (its default is larger), so unclaimable messages move soon.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// The channels `seed_order_created` has a rule for, each making one notification of an order: the ones
/// whose address the recipient carries (a webhook goes to a tenant's registered endpoints instead).
pub const ORDER_CHANNELS: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Slack];

/// The retry schedule in tests: four one-second steps, so a notification is dead-lettered within a test.
pub const RETRY_SCHEDULE: &str = "1s,1s,1s,1s";

/// The providers' circuit breakers in tests: an hour's outage compressed to seconds. Five failures in a row
/// open a circuit for two seconds; the state is read afresh each time, as a test changes it between calls.
pub const BREAKER: herald::delivery::breaker::BreakerSettings = herald::delivery::breaker::BreakerSettings {
    threshold: 5,
    cooldown: std::time::Duration::from_secs(2),
    cache_for: std::time::Duration::ZERO,
    probe_lease: std::time::Duration::from_secs(5),
};

impl Stack {
    /// Creates the tables and queues of `template.yaml` under a stack name of the test's own, as
    /// `herald local up` does, and a tenant with an API key.
    pub async fn new() -> Self {
        let aws = emulator_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let sns = aws_sdk_sns::Client::new(&aws);
        let parameters = BTreeMap::from([("MaxReceiveCount".to_owned(), MAX_RECEIVE_COUNT.to_string())]);
        let template = StackTemplate::load(Path::new(TEMPLATE), &unique("herald-test"), &parameters)
            .expect("template.yaml loads");
        let provisioned = template
            .provision(&dynamodb, &sqs, &sns)
            .await
            .expect("the tables, queues and topics of template.yaml are created");
        // The tables and queues the template gives the ingest function.
        let ingest = template
            .functions()
            .into_iter()
            .find(|function| function.binary == "ingest")
            .expect("template.yaml has the ingest function");
        let environment = template
            .environment(&ingest, &provisioned)
            .expect("ingest's environment resolves");
        let env = Env::from_fn(|name| environment.get(name).cloned());
        let tables = Tables::from_env(&env).expect("ingest's tables");
        let queues = QueueUrls::from_env(&env).expect("ingest's queues");
        let dead_letter_queues = QueueUrls::new(Channel::ALL.map(|channel| {
            let queue = queues.get(channel).expect("a queue per channel");
            (channel, dead_letter_queue(&template, &provisioned, queue))
        }));
        let push_applications = [
            platform_application(&sns, "APNS").await,
            platform_application(&sns, "GCM").await,
        ];
        let stack = Self {
            dynamodb,
            sqs,
            sns,
            push_applications,
            tables,
            queues,
            dead_letter_queues,
            template: Arc::new(template),
            provisioned: Arc::new(provisioned),
            loopback_webhooks: false,
            rate_limit_per_minute: 0,
            tenant: TenantId::new(unique("tenant")),
            api_key: unique("key"),
        };
        stack.add_tenant(&stack.tenant, &stack.api_key).await;
        stack
    }

    /// Another tenant in the same tables, with its own key.
    pub async fn add_tenant(&self, tenant: &TenantId, api_key: &str) {
        self.add_key(tenant, api_key, KeyScope::Full).await;
    }

    /// A key of `scope` for `tenant`; its id, to revoke it by.
    pub async fn add_key(&self, tenant: &TenantId, api_key: &str, scope: KeyScope) -> String {
        let key = NewApiKey::new(tenant, api_key, None, scope, Timestamp::now());
        self.config_store()
            .create_api_key(&key)
            .await
            .expect("create api key");
        key.record.id
    }

    pub fn config_store(&self) -> DynamoConfigStore {
        DynamoConfigStore::new(self.dynamodb.clone(), &self.tables.config)
    }

    pub fn activity_store(&self) -> DynamoActivityStore {
        DynamoActivityStore::new(self.dynamodb.clone(), &self.tables.activity)
    }

    pub fn settings(&self) -> HttpSettings {
        HttpSettings::from_env(&self.env()).expect("default settings")
    }

    /// The function environment the template would give, less the AWS parts.
    pub fn env(&self) -> Env<impl Fn(&str) -> Option<String> + use<>> {
        let loopback = self.loopback_webhooks;
        let rate_limit = self.rate_limit_per_minute;
        Env::from_fn(move |name| match name {
            // No config cache; no ingest budget, as no rate limit: a test of another feature may send many
            // events with one key. Tests of the budget set a tenant's own (`herald tenant ingest-budget`).
            "HERALD_CONFIG_CACHE_SECONDS" | "HERALD_INGEST_BUDGET_PER_MINUTE" => Some("0".to_owned()),
            "HERALD_ALLOW_LOOPBACK_WEBHOOKS" => Some(loopback.to_string()),
            "HERALD_RATE_LIMIT_PER_MINUTE" => Some(rate_limit.to_string()),
            _ => None,
        })
    }

    /// The same stack, limiting each recipient to `per_minute` notifications a minute per channel.
    #[must_use]
    pub fn with_rate_limit(mut self, per_minute: u32) -> Self {
        self.rate_limit_per_minute = per_minute;
        self
    }

    /// The same stack, with Slack webhooks allowed on loopback.
    #[must_use]
    pub fn with_loopback_webhooks(mut self) -> Self {
        self.loopback_webhooks = true;
        self
    }

    pub fn ingest(&self) -> TestIngest {
        self.ingest_with_queues(self.queues.clone())
    }

    /// An ingest whose channel queues are `queues` (e.g. ones that do not exist, to make SQS fail).
    pub fn ingest_with_queues(&self, queues: QueueUrls) -> TestIngest {
        Ingest::new(
            self.config_store(),
            self.config_store(),
            self.activity_store(),
            SqsNotificationQueue::new(self.sqs.clone(), queues),
            self.settings(),
        )
    }

    /// The management API, registering devices in this stack's platform applications.
    pub fn api(&self) -> TestApi {
        let [apns, fcm] = self.push_applications.clone();
        let push = PushApplications::new(self.sns.clone(), Some(apns), Some(fcm));
        Api::new(self.config_store(), self.config_store(), self.settings()).with_push(push)
    }

    /// Every item in the activity table.
    pub async fn activity_items(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let output = self
            .dynamodb
            .scan()
            .table_name(&self.tables.activity)
            .send()
            .await
            .expect("scan");
        output.items.unwrap_or_default()
    }

    /// Receives (and deletes) every message now on a channel's queue.
    pub async fn drain(&self, channel: Channel) -> Vec<Envelope> {
        let url = self.queues.get(channel).expect("queue url");
        let mut envelopes = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return envelopes;
            }
            for message in messages {
                envelopes.push(serde_json::from_str(message.body().unwrap_or_default()).expect("envelope"));
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

/// The URL of the dead-letter queue the template's queue at `queue_url` redrives to.
fn dead_letter_queue(template: &StackTemplate, provisioned: &Provisioned, queue_url: &str) -> String {
    let queue = template
        .queues()
        .into_iter()
        .find(|queue| provisioned.queue_urls.get(&queue.logical_id).map(String::as_str) == Some(queue_url))
        .expect("a queue of the template");
    let redrive = queue.redrive.expect("each channel queue redrives to a DLQ");
    provisioned.queue_urls[&redrive.dead_letter_queue].clone()
}

/// An HTTP request as API Gateway (HTTP API, payload v2) hands it to a Lambda, converted by lambda_http
/// exactly as in production.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: String,
    path: String,
    query: String,
    headers: serde_json::Map<String, Value>,
    body: Option<Vec<u8>>,
}

impl ApiRequest {
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        Self {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: serde_json::Map::new(),
            body: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), json!(value));
        self
    }

    #[must_use]
    pub fn key(self, api_key: &str) -> Self {
        self.header("authorization", &format!("Bearer {api_key}"))
    }

    /// A JSON body with its content type.
    #[must_use]
    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .raw(body.to_string().into_bytes())
    }

    #[must_use]
    pub fn raw(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    pub fn build(&self) -> Request {
        let (body, encoded) = match &self.body {
            None => (Value::Null, false),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => (json!(text), false),
                Err(_) => (
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    true,
                ),
            },
        };
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": self.headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
                "http": {"method": self.method, "path": self.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
                "requestId": unique("req"), "routeKey": "$default", "stage": "$default",
                "time": "22/Nov/2026:04:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64
            },
            "body": body,
            "isBase64Encoded": encoded
        });
        lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
    }
}

/// What a handler answered, with the body parsed as JSON (or `Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The problem code at the end of a problem's `type`.
    pub fn problem_code(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
    }
}

pub fn answer(response: &lambda_http::Response<lambda_http::Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes: &[u8] = response.body().as_ref();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).expect("JSON answer")
    };
    Answer {
        status,
        headers,
        body,
    }
}

impl Stack {
    pub async fn call_ingest(&self, ingest: &TestIngest, request: &ApiRequest) -> Answer {
        answer(&ingest.handle(request.build()).await.expect("handler never errs"))
    }

    /// `method path` on the management API with this stack's key, the body (if any) as JSON.
    pub async fn api_call(&self, api: &TestApi, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = ApiRequest::new(method, path).key(&self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.call_api(api, &request).await
    }

    pub async fn call_api(&self, api: &TestApi, request: &ApiRequest) -> Answer {
        answer(&api.handle(request.build()).await.expect("handler never errs"))
    }

    /// Sets up the contract's example: event type `order_created` with a schema, a template and a rule per
    /// channel.
    /// `POST /v1/events/batch` with `batch` through this stack's ingest; the answer and each result's status.
    pub async fn post_batch(&self, batch: &Value) -> (Answer, Vec<u64>) {
        let request = ApiRequest::new("POST", "/v1/events/batch")
            .key(&self.api_key)
            .json(batch);
        let answer = self.call_ingest(&self.ingest(), &request).await;
        assert_eq!(answer.status, 207, "{answer:?}");
        let statuses = answer.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|result| result["status"].as_u64().expect("a status"))
            .collect();
        (answer, statuses)
    }

    /// Seeds `order_created` with one template and rule per channel of [`ORDER_CHANNELS`].
    pub async fn seed_order_created(&self) {
        let api = self.api();
        let put = |path: &str, body: Value| ApiRequest::new("PUT", path).key(&self.api_key).json(&body);
        let calls = [
            put(
                "/v1/event-types/order_created",
                json!({"description": "An order was placed", "category": "orders", "schema": {
                    "type": "object", "required": ["order_id"],
                    "properties": {"order_id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}}}}),
            ),
            put(
                "/v1/templates/order-email",
                json!({"channel": "email", "locale": "en", "subject": "Order #{{ payload.order_id }}",
                       "text": "Total {{ payload.total }}", "html": "<p>Total {{ payload.total }}</p>"}),
            ),
            put(
                "/v1/templates/order-sms",
                json!({"channel": "sms", "text": "Order {{ payload.order_id }} placed"}),
            ),
            put(
                "/v1/templates/order-slack",
                json!({"channel": "slack", "text": "New order {{ payload.order_id }}"}),
            ),
            put(
                "/v1/rules/order-email",
                json!({"event": "order_created", "channel": "email", "template": "order-email"}),
            ),
            put(
                "/v1/rules/order-sms",
                json!({"event": "order_created", "channel": "sms", "template": "order-sms"}),
            ),
            put(
                "/v1/rules/order-slack",
                json!({"event": "order_created", "channel": "slack", "template": "order-slack"}),
            ),
        ];
        for call in calls {
            let answer = self.call_api(&api, &call).await;
            assert!(matches!(answer.status, 200 | 201), "seeding failed: {answer:?}");
        }
    }
}

/// The contract's example event, for a recipient unique to the test.
pub fn order_created(order_id: u64) -> Value {
    json!({
        "event": "order_created",
        "recipient": {"user_id": "u-42", "email": format!("{}@example.com", unique("ada")), "phone": "+15555550100",
                      "slack_webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX", "locale": "en-GB"},
        "payload": {"order_id": order_id, "total": 99.99}
    })
}
