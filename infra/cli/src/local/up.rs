//! `herald local up`: the whole stack on this machine, with no AWS account and no Docker. The emulator
//! serves DynamoDB, SQS, SES and SNS; the resources come from `template.yaml` itself; the real function
//! binaries run under a local Lambda Runtime API behind an API Gateway-like front; pollers feed the channel
//! functions from their queues; a sink stands in for Slack.

use super::LocalError;
use super::emulator;
use super::front::{self, Route};
use super::poller::QueuePoller;
use super::runtime::{FunctionConfig, FunctionHost};
use super::schedule::{self, ScheduledInvoker};
use super::seed;
use super::sink::SlackSink;
use super::template::{Provisioned, StackTemplate};
use herald::adapters::dynamodb::DynamoConfigStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

/// The stack name the local resources are named after (`herald-local-email`, …).
pub const STACK_NAME: &str = "herald-local";
/// The sender identity the local stack verifies in the emulator's SES.
pub const SENDER: &str = "notifications@herald.local";
/// The platform applications the local stack makes in the emulator's SNS, one per push platform, named so
/// their ARNs are known before they exist (the emulator's ARN is `…:app/<platform>/<name>`), and given to
/// the template as `ApnsPlatformApplicationArn` and `FcmPlatformApplicationArn`.
const PLATFORM_APPLICATIONS: [(&str, &str); 2] = [
    ("ApnsPlatformApplicationArn", "APNS"),
    ("FcmPlatformApplicationArn", "GCM"),
];

/// The ARN of the local stack's platform application of `platform` (`APNS` or `GCM`).
pub fn local_platform_application(platform: &str) -> String {
    format!(
        "arn:aws:sns:{}:{}:app/{platform}/{STACK_NAME}",
        emulator::REGION,
        emulator::ACCOUNT
    )
}
/// Function processes per function, so concurrency is real: Lambda runs as many as there are concurrent
/// requests; four keep sixteen concurrent clients from queueing in front of two.
const PROCESSES: usize = 4;

/// Ports, from `HERALD_PORT`, `HERALD_EMULATOR_PORT`, `HERALD_DYNAMODB_PORT` (by default the emulator's
/// plus one) and `HERALD_SLACK_SINK_PORT`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub front: u16,
    /// The emulator of SQS, SES and SNS.
    pub emulator: u16,
    /// The emulator of DynamoDB, a process of its own.
    pub dynamodb: u16,
    pub sink: u16,
}

impl Ports {
    pub fn from_env() -> Result<Self, LocalError> {
        let port = |variable: &'static str, default: u16| -> Result<u16, LocalError> {
            match std::env::var(variable) {
                Ok(value) => value
                    .parse()
                    .map_err(|_| LocalError::PortNotANumber { variable, value }),
                Err(_) => Ok(default),
            }
        };
        let emulator = port("HERALD_EMULATOR_PORT", 4566)?;
        Ok(Self {
            front: port("HERALD_PORT", 3000)?,
            emulator,
            dynamodb: port("HERALD_DYNAMODB_PORT", emulator.saturating_add(1))?,
            sink: port("HERALD_SLACK_SINK_PORT", 3001)?,
        })
    }

    pub fn endpoints(&self) -> emulator::Endpoints {
        emulator::Endpoints::split(self.emulator, self.dynamodb)
    }
}

async fn bind(port: u16, variable: &'static str) -> Result<TcpListener, LocalError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| LocalError::PortBusy {
            port,
            variable,
            source,
        })
}

/// A running local stack; dropping it kills the emulator it started.
#[derive(Debug)]
pub struct LocalStack {
    pub sink: SlackSink,
    hosts: Vec<FunctionHost>,
    emulators: [tokio::process::Child; 2],
}

impl LocalStack {
    /// Stops the functions, then the emulator, and waits until they are gone, so their ports are free
    /// when this returns.
    pub async fn stop(mut self) {
        for host in &self.hosts {
            host.stop().await;
        }
        for emulator in &mut self.emulators {
            let _ = emulator.kill().await;
        }
    }
}

/// `template.yaml` as the local stack evaluates it: stack `herald-local`, the local sender identity.
pub fn local_template(root: &Path) -> Result<StackTemplate, LocalError> {
    let mut parameters = BTreeMap::from([
        ("SenderAddress".to_owned(), SENDER.to_owned()),
        // Two pollers per channel queue, the template's minimum: the emulator's DynamoDB is one Python
        // process a hundred times slower than AWS, and more concurrent deliveries only queue inside it until
        // calls pass their attempt timeout (seen as SMS sent twice under load); throughput is the same.
        ("DeliveryConcurrency".to_owned(), "2".to_owned()),
        // The emulator has no SES account to read a MaxSendRate from (no GetAccount) and no quota: without
        // a rate the email function would fall back to one email a second. This is far above what the
        // emulator itself can take.
        ("EmailSendRate".to_owned(), "100".to_owned()),
    ]);
    for (parameter, platform) in PLATFORM_APPLICATIONS {
        parameters.insert(parameter.to_owned(), local_platform_application(platform));
    }
    // `HERALD_PARAMETERS="DeliveryConcurrency=5 MaxReceiveCount=10"`: as `sam deploy --parameter-overrides`.
    let overrides = std::env::var("HERALD_PARAMETERS").unwrap_or_default();
    for pair in overrides.split_whitespace() {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| LocalError::BadParameterOverride(pair.to_owned()))?;
        parameters.insert(name.to_owned(), value.to_owned());
    }
    Ok(StackTemplate::load(
        &root.join("template.yaml"),
        STACK_NAME,
        &parameters,
    )?)
}

/// Which build of the functions the local stack runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Build {
    /// The workspace's debug build, shared with `cargo test` (quick to rebuild after a change).
    #[default]
    Debug,
    /// The release profile Lambda runs (`--release`): for measuring the functions themselves, at the price
    /// of a long first build (LTO, one codegen unit).
    Release,
    /// The release binaries already in the target directory, without asking cargo (`--release
    /// --no-build`): to measure a build made earlier while the sources have moved on.
    ReleaseAsBuilt,
}

/// Brings the stack up and returns once `/v1/health` answers through the front.
pub async fn start(ports: Ports, build: Build) -> Result<LocalStack, LocalError> {
    let root = emulator::project_root()?;
    // A second stack (the end-to-end tests) keeps its emulator log and Slack capture apart from yours.
    let state = std::env::var_os("HERALD_STATE_DIR").map_or_else(|| root.join(".herald"), PathBuf::from);
    std::fs::create_dir_all(&state).map_err(|source| LocalError::StateDir {
        path: state.clone(),
        source,
    })?;
    // Take the ports first, so a busy one is a clear error before anything starts.
    let front_listener = bind(ports.front, "HERALD_PORT").await?;
    let sink_listener = bind(ports.sink, "HERALD_SLACK_SINK_PORT").await?;
    drop(bind(ports.emulator, "HERALD_EMULATOR_PORT").await?);
    drop(bind(ports.dynamodb, "HERALD_DYNAMODB_PORT").await?);

    let moto = emulator::ensure(&root).await?;
    let endpoints = ports.endpoints();
    say(&format!(
        "starting the AWS emulator on {} (SQS, SES, SNS) and {} (DynamoDB)",
        endpoints.aws, endpoints.dynamodb
    ));
    let (others_log, dynamodb_log) = (state.join("emulator.log"), state.join("emulator-dynamodb.log"));
    let (others, dynamodb_process) = tokio::join!(
        emulator::start(&moto, ports.emulator, &others_log),
        emulator::start(&moto, ports.dynamodb, &dynamodb_log),
    );
    let emulators = [others?, dynamodb_process?];
    let aws = emulator::sdk_config(&endpoints).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);

    let template = local_template(&root)?;
    say("creating the tables, queues and topics of template.yaml");
    let provisioned = template
        .provision(&dynamodb, &sqs, &aws_sdk_sns::Client::new(&aws))
        .await?;
    let names = |names: Vec<String>| names.join(", ");
    say(&format!(
        "tables: {}",
        names(template.tables().into_iter().map(|table| table.name).collect())
    ));
    say(&format!(
        "queues: {}",
        names(template.queues().into_iter().map(|queue| queue.name).collect())
    ));
    say(&format!(
        "topics: {}",
        names(template.topics().into_iter().map(|topic| topic.name).collect())
    ));
    aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity(SENDER)
        .send()
        .await
        .map_err(|source| LocalError::VerifySender {
            sender: SENDER,
            source: Box::new(source),
        })?;
    create_platform_applications(&aws_sdk_sns::Client::new(&aws)).await?;
    let config_table = provisioned
        .table_names
        .get("ConfigTable")
        .ok_or(LocalError::MissingResource("ConfigTable"))?;
    seed::seed(&DynamoConfigStore::new(dynamodb.clone(), config_table)).await?;

    let sink = SlackSink::start(sink_listener, state.join("slack.jsonl")).map_err(LocalError::Sink)?;
    let binaries = build_functions(&root, &template, build).await?;
    let hosts = start_functions(&template, &provisioned, &binaries, &endpoints, PROCESSES).await?;

    let routes = start_triggers(&template, &provisioned, &hosts, &sqs)?;
    front::serve(front_listener, routes);
    wait_until_healthy(ports.front).await?;
    Ok(LocalStack {
        sink,
        hosts,
        emulators,
    })
}

/// The platform applications whose ARNs `local_template` gave the template. The emulator takes any
/// credential; on AWS a person makes them with the app's APNs key and FCM service account (README, Push).
async fn create_platform_applications(sns: &aws_sdk_sns::Client) -> Result<(), LocalError> {
    for (_, platform) in PLATFORM_APPLICATIONS {
        let expected = local_platform_application(platform);
        let created = sns
            .create_platform_application()
            .name(STACK_NAME)
            .platform(platform)
            .attributes("PlatformCredential", "local-credential")
            .attributes("PlatformPrincipal", "local-principal")
            .send()
            .await
            .map_err(|source| LocalError::PlatformApplication {
                platform,
                reason: aws_sdk_sns::error::DisplayErrorContext(source).to_string(),
            })?;
        if created.platform_application_arn.as_deref() != Some(expected.as_str()) {
            return Err(LocalError::PlatformApplication {
                platform,
                reason: format!(
                    "the emulator named it {:?}, not {expected}",
                    created.platform_application_arn
                ),
            });
        }
    }
    say(&format!(
        "push platform applications: {}",
        PLATFORM_APPLICATIONS
            .map(|(_, platform)| local_platform_application(platform))
            .join(", ")
    ));
    Ok(())
}

/// What invokes the functions besides a direct call: their HTTP routes (returned, for the front), a poller
/// per SQS event and a timer per schedule (started here).
fn start_triggers(
    template: &StackTemplate,
    provisioned: &Provisioned,
    hosts: &[FunctionHost],
    sqs: &aws_sdk_sqs::Client,
) -> Result<Vec<Route>, LocalError> {
    let period_override = schedule::period_override()?;
    let mut routes = Vec::new();
    for (spec, host) in template.functions().iter().zip(hosts) {
        for route in &spec.http_routes {
            routes.push(Route {
                method: route.method.clone(),
                path: route.path.clone(),
                function: host.clone(),
            });
        }
        for event in &spec.sqs_events {
            let queue_url = provisioned
                .queue_urls
                .get(&event.queue)
                .ok_or_else(|| LocalError::MissingQueue(event.queue.clone()))?;
            let queue_arn = provisioned
                .queue_arns
                .get(&event.queue)
                .cloned()
                .unwrap_or_default();
            let poller = QueuePoller {
                sqs: sqs.clone(),
                queue_url: queue_url.clone(),
                queue_arn,
                function: host.clone(),
                batch_size: i32::try_from(event.batch_size).unwrap_or(10),
                batching_window: Duration::from_secs(event.batching_window_seconds.into()),
                report_batch_item_failures: event.report_batch_item_failures,
                region: emulator::REGION.to_owned(),
            };
            poller.spawn(
                usize::try_from(event.maximum_concurrency)
                    .unwrap_or(2)
                    .min(PROCESSES * 2),
            );
        }
        for scheduled in &spec.schedules {
            ScheduledInvoker {
                function: host.clone(),
                rule: format!("{STACK_NAME}-{}-{}", spec.logical_id, scheduled.name),
                every: period_override.unwrap_or(scheduled.every),
                region: emulator::REGION.to_owned(),
            }
            .spawn();
        }
    }
    Ok(routes)
}

/// Builds the template's function binaries and returns where they are.
pub async fn build_functions(
    root: &Path,
    template: &StackTemplate,
    build: Build,
) -> Result<PathBuf, LocalError> {
    let mut cargo = cargo_command();
    let profile = match build {
        Build::Debug => {
            say("building the function binaries (cargo build)");
            // The whole workspace with its tests, not `-p` each function: cargo resolves dependency features
            // per build, and the tests' dev-dependencies (aws-smithy-mocks turns on the SDKs' `test-util`)
            // would otherwise give the AWS SDKs two builds, one for `cargo test` and one for the local stack
            // (about eight minutes each on two cores). This way `cargo test` and `herald local up` share one.
            cargo.args(["build", "--quiet", "--workspace", "--all-targets"]);
            "debug"
        }
        Build::Release => {
            say("building the function binaries (cargo build --release; long the first time)");
            // Exactly the functions, as `sam build` builds each: without the tests' dev-dependencies.
            cargo.args(["build", "--quiet", "--release"]);
            for function in template.functions() {
                cargo.args(["-p", &function.binary]);
            }
            "release"
        }
        Build::ReleaseAsBuilt => {
            say("--no-build: running the release binaries as they are");
            return present_binaries(&target_dir(root).join("release"), template);
        }
    };
    let status = cargo
        .current_dir(root)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(LocalError::CargoNotRun)?;
    if !status.success() {
        return Err(LocalError::BuildFailed);
    }
    present_binaries(&target_dir(root).join(profile), template)
}

/// `binaries`, once every function of the template is found in it.
fn present_binaries(binaries: &Path, template: &StackTemplate) -> Result<PathBuf, LocalError> {
    if let Some(missing) = template
        .functions()
        .into_iter()
        .find(|function| !binaries.join(&function.binary).is_file())
    {
        return Err(LocalError::NoSuchBinary(missing.binary));
    }
    Ok(binaries.to_path_buf())
}

/// Where cargo puts what it builds in the checkout at `root`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from)
}

/// `cargo`, without the variables cargo sets for herald itself when it runs it.
pub fn cargo_command() -> tokio::process::Command {
    let mut cargo = tokio::process::Command::new("cargo");
    // `cargo run` and `cargo test` set these for herald itself; a build script that watches one (ring
    // watches CARGO_MANIFEST_DIR) would rebuild half the dependency tree on every other start.
    let set_for_herald = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ];
    for (name, _) in std::env::vars_os() {
        if set_for_herald
            .iter()
            .any(|prefix| name.to_string_lossy().starts_with(prefix))
        {
            cargo.env_remove(name);
        }
    }
    cargo
}

/// Starts a host per function of the template, in the template's order, with its environment resolved
/// against the provisioned resources, plus the local stack's own settings.
pub async fn start_functions(
    template: &StackTemplate,
    provisioned: &Provisioned,
    binaries: &Path,
    endpoints: &emulator::Endpoints,
    processes: usize,
) -> Result<Vec<FunctionHost>, LocalError> {
    let mut hosts = Vec::new();
    for spec in template.functions() {
        let mut environment = template.environment(&spec, provisioned)?;
        environment.extend(emulator::environment(endpoints));
        // Only the local stack lets Slack webhooks point at loopback, where its sink listens.
        environment.insert("HERALD_ALLOW_LOOPBACK_WEBHOOKS".into(), "true".into());
        environment.insert("HERALD_CONFIG_CACHE_SECONDS".into(), "2".into());
        // The reconciler's stall window, shortened for tests and impatient developers as the schedules are.
        if let Ok(window) = std::env::var("HERALD_STALL_AFTER_SECONDS") {
            environment.insert("HERALD_STALL_AFTER_SECONDS".into(), window);
        }
        let config = FunctionConfig {
            name: spec.binary.clone(),
            binary: binaries.join(&spec.binary),
            environment,
            timeout: Duration::from_secs(spec.timeout_seconds),
            memory_mb: spec.memory_mb,
            processes,
        };
        hosts.push(
            FunctionHost::start(config)
                .await
                .map_err(|source| LocalError::FunctionStart {
                    function: spec.binary.clone(),
                    source,
                })?,
        );
    }
    Ok(hosts)
}

async fn wait_until_healthy(port: u16) -> Result<(), LocalError> {
    let url = format!("http://127.0.0.1:{port}/v1/health");
    for _ in 0..100 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(LocalError::NotHealthy { url })
}

fn say(line: &str) {
    eprintln!("herald: {line}");
}

/// `herald local up [--release]`: starts the stack, prints how to use it, runs until Ctrl-C or SIGTERM.
pub async fn run(build: Build) -> Result<(), LocalError> {
    let ports = Ports::from_env()?;
    // Listening from the start: a Ctrl-C during the first build must still stop the emulator (dropping
    // the unfinished start kills every child it spawned).
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let stack = tokio::select! {
        started = start(ports, build) => started?,
        () = &mut shutdown => {
            say("stopped before the stack was ready");
            return Ok(());
        }
    };
    let front = format!("http://127.0.0.1:{}", ports.front);
    println!(
        "\nHerald is running locally.\n\
         \n  API:          {front}   (API key: {key}, tenant {tenant})\
         \n  AWS emulator: {emulator}   sent email and SMS: curl -s {emulator}/moto-api/data.json\
         \n                (DynamoDB: {dynamodb})\
         \n  Slack sink:   {sink}   captured messages: curl -s {sink}/messages  (also {capture})\
         \n  Logs:         each function's JSON logs below, prefixed with its name\
         \n\nSend the demo event:\n\
         \n  curl -si {front}/v1/events -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\
         \n    -d '{{\"event\": \"order_created\", \"recipient\": {{\"email\": \"ada@example.com\", \"phone\": \"+15555550100\", \"slack_webhook_url\": \"{webhook}\"}}, \"payload\": {{\"order_id\": 444, \"total\": 99.99}}}}'\
         \n\nready",
        key = seed::API_KEY,
        tenant = seed::TENANT,
        emulator = emulator::endpoint(ports.emulator),
        dynamodb = emulator::endpoint(ports.dynamodb),
        sink = stack.sink.url,
        webhook = stack.sink.webhook_url(),
        capture = stack.sink.log_file.display(),
    );
    shutdown.await;
    say("stopping");
    stack.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
