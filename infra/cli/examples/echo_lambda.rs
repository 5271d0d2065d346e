//! A tiny Lambda function for the tests of `herald`'s local Runtime API (`src/local/runtime.rs`).
//!
//! Echoes the payload with a few facts about the invocation. Payload switches: `"sleep_ms": N`
//! sleeps first, `"exit": true` exits the process with status 3 (a crash mid-invocation), and
//! `"fail": "why"` returns an error. With `ECHO_FAIL_INIT` set, the process exits with status 1
//! before asking for work (a failed init).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let started_ms = epoch_ms();
    println!("echo_lambda handling {}", context.request_id);
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if payload.get("exit").is_some() {
        eprintln!("echo_lambda exiting with status 3");
        std::process::exit(3);
    }
    if let Some(why) = payload.get("fail") {
        eprintln!("echo_lambda failing");
        return Err(format!("asked to fail: {why}").into());
    }
    Ok(json!({
        "echo": payload,
        "pid": std::process::id(),
        "request_id": context.request_id,
        "deadline_ms": context.deadline,
        "function_arn": context.invoked_function_arn,
        "function_name": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
        "memory": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
        "custom_env": std::env::var("ECHO_CUSTOM").ok(),
        "env_keys": std::env::vars_os().map(|(key, _)| key.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "started_ms": u64::try_from(started_ms).unwrap_or(u64::MAX),
        "finished_ms": u64::try_from(epoch_ms()).unwrap_or(u64::MAX),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("ECHO_FAIL_INIT").is_some() {
        eprintln!("echo_lambda init failed on purpose");
        std::process::exit(1);
    }
    lambda_runtime::run(service_fn(handler)).await
}
