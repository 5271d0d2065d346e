//! The host end to end, with a real function binary (`examples/echo_lambda.rs`): invocations, concurrency,
//! errors, timeouts, crashes, failed inits and stopping.

use super::api::epoch_ms;
use super::*;
use serde_json::json;
use std::path::Path;
use std::sync::OnceLock;

/// The test function (`examples/echo_lambda.rs`), built if `cargo test` has not built it.
fn echo_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
                PathBuf::from,
            );
            let binary = target
                .join("debug/examples")
                .join(format!("echo_lambda{}", std::env::consts::EXE_SUFFIX));
            if !binary.is_file() {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let status = std::process::Command::new(cargo)
                    .args(["build", "-p", "herald-cli", "--example", "echo_lambda"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .expect("run cargo build");
                assert!(status.success(), "building echo_lambda failed");
            }
            binary
        })
        .clone()
}

fn config(processes: usize, timeout: Duration, environment: &[(&str, &str)]) -> FunctionConfig {
    FunctionConfig {
        name: "echo".to_owned(),
        binary: echo_binary(),
        environment: environment
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        timeout,
        memory_mb: 256,
        processes,
    }
}

async fn start(processes: usize, timeout: Duration, environment: &[(&str, &str)]) -> FunctionHost {
    FunctionHost::start(config(processes, timeout, environment))
        .await
        .expect("start the echo function")
}

/// An invocation, bounded so that a bug fails the test instead of hanging it.
async fn call(host: &FunctionHost, payload: Value) -> (Result<Value, InvokeError>, Vec<String>) {
    tokio::time::timeout(Duration::from_secs(10), host.invoke_with_logs(payload))
        .await
        .expect("the invocation was answered within 10 s")
}

fn pid(answer: &Value) -> u64 {
    answer["pid"].as_u64().expect("the echo answer has the pid")
}

#[tokio::test]
async fn echoes_with_lambdas_context_environment_and_logs() {
    let host = start(1, Duration::from_secs(5), &[("ECHO_CUSTOM", "from the template")]).await;
    let before = epoch_ms();
    let (outcome, logs) = call(&host, json!({ "hello": "world", "n": [1, 2] })).await;
    let answer = outcome.expect("echo answers");
    assert_eq!(answer["echo"], json!({ "hello": "world", "n": [1, 2] }));
    assert_eq!(answer["function_name"], "echo");
    assert_eq!(answer["memory"], "256");
    assert_eq!(answer["custom_env"], "from the template");
    let arn = answer["function_arn"].as_str().expect("an ARN");
    assert!(
        arn.starts_with("arn:aws:lambda:") && arn.ends_with(":123456789012:function:echo"),
        "{arn}"
    );
    let deadline = answer["deadline_ms"].as_u64().expect("a deadline");
    assert!(
        deadline >= before + 4_000 && deadline <= epoch_ms() + 5_000,
        "deadline {deadline}"
    );
    // Only the template's and the runtime's environment, not the test runner's.
    let env_keys: Vec<&str> = answer["env_keys"]
        .as_array()
        .expect("env keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env_keys.contains(&"AWS_LAMBDA_RUNTIME_API"), "{env_keys:?}");
    assert!(!env_keys.contains(&"CARGO_MANIFEST_DIR"), "{env_keys:?}");

    let first_request = answer["request_id"].as_str().expect("a request id").to_owned();
    assert_eq!(logs, vec![format!("echo_lambda handling {first_request}")]);

    // The same (warm) process answers the next one, with only its own log lines.
    let (outcome, logs) = call(&host, json!({ "again": true })).await;
    let again = outcome.expect("echo answers again");
    assert_eq!(pid(&again), pid(&answer));
    let second_request = again["request_id"].as_str().expect("a request id");
    assert_ne!(second_request, first_request);
    assert_eq!(logs, vec![format!("echo_lambda handling {second_request}")]);

    // An answer for an invocation nobody is waiting for is refused.
    let port = host.inner.slots[0].port;
    let refused = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/2018-06-01/runtime/invocation/{first_request}/response"
        ))
        .body("{}")
        .send()
        .await
        .expect("the Runtime API answers");
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    host.stop().await;
}

#[tokio::test]
async fn two_processes_run_two_invocations_at_once() {
    let host = start(2, Duration::from_secs(5), &[]).await;
    host.wait_until_ready().await;
    let begun = Instant::now();
    let ((first, _), (second, _)) = tokio::join!(
        call(&host, json!({ "sleep_ms": 400, "which": 1 })),
        call(&host, json!({ "sleep_ms": 400, "which": 2 })),
    );
    eprintln!(
        "two invocations of 400 ms took {} ms together",
        begun.elapsed().as_millis()
    );
    let (first, second) = (first.expect("first answered"), second.expect("second answered"));
    assert_eq!(first["echo"]["which"], 1);
    assert_eq!(second["echo"]["which"], 2);
    assert_ne!(pid(&first), pid(&second), "each process took one");
    // The two handlers were running at the same time.
    let span = |answer: &Value| {
        (
            answer["started_ms"].as_u64().unwrap_or(0),
            answer["finished_ms"].as_u64().unwrap_or(0),
        )
    };
    let ((start_1, end_1), (start_2, end_2)) = (span(&first), span(&second));
    assert!(
        start_1 < end_2 && start_2 < end_1,
        "{start_1}..{end_1} and {start_2}..{end_2} overlap"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_function_error_comes_back_with_its_message() {
    let host = start(1, Duration::from_secs(5), &[]).await;
    let (outcome, logs) = call(&host, json!({ "fail": "boom" })).await;
    match outcome {
        Err(InvokeError::Function {
            error_type,
            error_message,
        }) => {
            assert!(!error_type.is_empty());
            assert_eq!(error_message, "asked to fail: \"boom\"");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    assert!(logs.iter().any(|line| line == "echo_lambda failing"), "{logs:?}");
    // A handled error does not cost the process.
    let (first, _) = call(&host, json!({})).await;
    let (second, _) = call(&host, json!({})).await;
    assert_eq!(pid(&first.expect("answered")), pid(&second.expect("answered")));
    host.stop().await;
}

#[tokio::test]
async fn an_overrun_times_out_and_the_process_is_replaced() {
    let host = start(1, Duration::from_millis(300), &[]).await;
    let (warm, _) = call(&host, json!({})).await;
    let old_pid = pid(&warm.expect("answered"));
    let begun = Instant::now();
    let (outcome, logs) = call(&host, json!({ "sleep_ms": 2_000 })).await;
    let took = begun.elapsed();
    eprintln!("the timeout came after {} ms", took.as_millis());
    assert_eq!(outcome, Err(InvokeError::Timeout));
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    assert_eq!(logs.len(), 1, "{logs:?}");
    let (next, _) = call(&host, json!({ "after": "timeout" })).await;
    let next = next.expect("the host still answers");
    assert_eq!(next["echo"]["after"], "timeout");
    assert_ne!(pid(&next), old_pid, "the process that overran was replaced");
    host.stop().await;
}

#[tokio::test]
async fn a_crash_is_reported_and_the_process_restarted() {
    let host = start(1, Duration::from_secs(5), &[]).await;
    let (warm, _) = call(&host, json!({})).await;
    let old_pid = pid(&warm.expect("answered"));
    let (outcome, logs) = call(&host, json!({ "exit": true })).await;
    assert_eq!(outcome, Err(InvokeError::Crashed));
    assert!(
        logs.iter()
            .any(|line| line == "echo_lambda exiting with status 3"),
        "{logs:?}"
    );
    let (next, _) = call(&host, json!({ "after": "crash" })).await;
    let next = next.expect("the restarted process answers");
    assert_eq!(next["echo"]["after"], "crash");
    assert_ne!(pid(&next), old_pid);
    host.stop().await;
}

#[tokio::test]
async fn a_failed_init_fails_the_invocation() {
    let host = start(1, Duration::from_secs(5), &[("ECHO_FAIL_INIT", "1")]).await;
    let (outcome, logs) = call(&host, json!({})).await;
    match outcome {
        Err(InvokeError::InitFailed(message)) => {
            assert!(message.contains("before asking for work"), "{message}");
        }
        other => panic!("expected an init failure, got {other:?}"),
    }
    assert_eq!(logs, vec!["echo_lambda init failed on purpose".to_owned()]);
    host.stop().await;
}

#[tokio::test]
async fn stop_kills_the_processes_and_refuses_work() {
    let host = start(2, Duration::from_secs(5), &[]).await;
    let (answer, _) = call(&host, json!({})).await;
    let pid = pid(&answer.expect("answered"));
    host.stop().await;
    assert_eq!(host.invoke(json!({})).await, Err(InvokeError::Stopped));
    if cfg!(target_os = "linux") {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is gone"
        );
    }
}

#[tokio::test]
async fn a_missing_binary_is_refused() {
    let mut config = config(1, Duration::from_secs(1), &[]);
    config.binary = PathBuf::from("/nonexistent/echo");
    assert!(matches!(
        FunctionHost::start(config).await,
        Err(RuntimeError::BinaryNotFound(_))
    ));
}
