//! `herald invoke FUNCTION --event FILE`: one invocation of one function binary through the local
//! Runtime API, printing the response and the function's logs — the no-Docker twin of `sam local invoke`.
//!
//! It uses the local stack's emulator when one is running (so the invocation sees the stack's data), and
//! otherwise starts a private one with the template's resources and the demo data for the invocation.

use super::LocalError;
use super::emulator;
use super::runtime::{FunctionHost, InvokeError};
use super::seed;
use super::up::{Build, Ports, SENDER, build_functions, local_template, start_functions};
use herald::adapters::dynamodb::DynamoConfigStore;

pub async fn run(args: &[&str]) -> Result<(), LocalError> {
    let (function, event_file) = match args {
        [function, "--event", file] => (*function, *file),
        _ => return Err(LocalError::InvokeUsage),
    };
    let event = std::fs::read_to_string(event_file).map_err(|source| LocalError::EventFile {
        path: event_file.to_owned(),
        source,
    })?;
    let payload: serde_json::Value =
        serde_json::from_str(&event).map_err(|source| LocalError::EventNotJson {
            path: event_file.to_owned(),
            source,
        })?;
    let root = emulator::project_root()?;
    let ports = Ports::from_env()?;
    let (endpoints, _private_emulator) =
        if emulator::is_running(ports.emulator).await && emulator::is_running(ports.dynamodb).await {
            (ports.endpoints(), None)
        } else {
            let port = free_port().await?;
            let moto = emulator::ensure(&root).await?;
            eprintln!(
                "herald: no local stack on port {}; starting a private AWS emulator",
                ports.emulator
            );
            let log = std::env::temp_dir().join(format!("herald-invoke-emulator-{port}.log"));
            let private = emulator::start(&moto, port, &log).await?;
            (emulator::Endpoints::single(port), Some(private))
        };
    let aws = emulator::sdk_config(&endpoints).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    // The local stack's parameters (and `HERALD_PARAMETERS`), so the invocation runs as it would there.
    let template = local_template(&root)?;
    let provisioned = template
        .provision(
            &dynamodb,
            &aws_sdk_sqs::Client::new(&aws),
            &aws_sdk_sns::Client::new(&aws),
        )
        .await?;
    let _ = aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity(SENDER)
        .send()
        .await;
    if let Some(config_table) = provisioned.table_names.get("ConfigTable") {
        seed::seed(&DynamoConfigStore::new(dynamodb, config_table)).await?;
    }
    let known: Vec<String> = template.functions().into_iter().map(|spec| spec.binary).collect();
    if !known.iter().any(|name| name == function) {
        return Err(LocalError::UnknownFunction {
            function: function.to_owned(),
            known,
        });
    }
    let binaries = build_functions(&root, &template, Build::Debug).await?;
    let hosts = start_functions(&template, &provisioned, &binaries, &endpoints, 1).await?;
    let host = template
        .functions()
        .iter()
        .zip(&hosts)
        .find(|(spec, _)| spec.binary == function)
        .map(|(_, host)| host.clone())
        .ok_or_else(|| LocalError::FunctionNotStarted(function.to_owned()))?;
    let outcome = invoke(&host, payload).await;
    for host in &hosts {
        host.stop().await;
    }
    outcome
}

async fn invoke(host: &FunctionHost, payload: serde_json::Value) -> Result<(), LocalError> {
    let (outcome, logs) = host.invoke_with_logs(payload).await;
    eprintln!("--- logs ---");
    for line in logs {
        eprintln!("{line}");
    }
    eprintln!("--- response ---");
    match outcome {
        Ok(response) => {
            println!("{}", serde_json::to_string_pretty(&response).unwrap_or_default());
            Ok(())
        }
        Err(error @ InvokeError::Function { .. }) => Err(LocalError::FunctionFailed(error)),
        Err(error) => Err(LocalError::InvocationFailed(error)),
    }
}

async fn free_port() -> Result<u16, LocalError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(LocalError::NoFreePort)?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(LocalError::NoFreePort)
}
