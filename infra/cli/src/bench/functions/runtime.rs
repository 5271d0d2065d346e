//! One measured start of a binary under a minimal Lambda Runtime API of its own.
//!
//! Not the local stack's [`FunctionHost`](crate::local::runtime::FunctionHost): that one holds an answer
//! back until the process's log has been quiet for 5 ms (up to 50 ms), restarts processes and hides their
//! ids, each of which would blur or hide what is measured here. This one answers the first
//! `/invocation/next` with the event at once, notes when the answer comes back, reads the process's
//! peak RSS then, and never answers the second `/next`: the process is killed while it waits there.

use super::table::{Sample, peak_rss_bytes};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Lambda's own limit on init.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The last lines of a process's output kept for the error when it fails.
const KEPT_LINES: usize = 20;
const REQUEST_ID: &str = "bench-0000-0000-0000-000000000001";

/// What one start measured, with the first answer (`response: …` or `error: …`).
#[derive(Debug)]
pub struct Measured {
    pub sample: Sample,
    pub answer: String,
}

/// What the Runtime API saw, in order.
enum Seen {
    FirstPoll(Instant),
    Answered {
        at: Instant,
        answer: String,
        peak_rss: Option<u64>,
    },
}

struct Api {
    event: Bytes,
    pid: AtomicU32,
    polls: AtomicUsize,
    seen: mpsc::UnboundedSender<Seen>,
}

/// Starts `binary` with `environment` (and nothing else of ours), hands it `event`, measures.
pub async fn measure_once(
    binary: &Path,
    environment: &BTreeMap<String, String>,
    event: &Bytes,
) -> Result<Measured, String> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|error| format!("no port for the Runtime API: {error}"))?;
    let port = listener.local_addr().map_err(|error| error.to_string())?.port();
    let (seen, mut events) = mpsc::unbounded_channel();
    let api = Arc::new(Api {
        event: event.clone(),
        pid: AtomicU32::new(0),
        polls: AtomicUsize::new(0),
        seen,
    });
    let server = tokio::spawn(serve(listener, Arc::clone(&api)));
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(environment)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let exec = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|error| format!("could not start {}: {error}", binary.display()))?;
    api.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
    let output = Arc::new(Mutex::new(VecDeque::new()));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(keep_tail(out, Arc::clone(&output)))),
        child
            .stderr
            .take()
            .map(|err| tokio::spawn(keep_tail(err, Arc::clone(&output)))),
    ];

    let outcome = async {
        let polled = tokio::select! {
            seen = tokio::time::timeout(INIT_TIMEOUT, events.recv()) => match seen {
                Ok(Some(Seen::FirstPoll(at))) => at,
                Ok(_) => return Err("the Runtime API stopped".to_owned()),
                Err(_) => return Err(format!("no /invocation/next within {} s", INIT_TIMEOUT.as_secs())),
            },
            status = child.wait() => return Err(format!("exited during init ({})", describe(status))),
        };
        let (answered, answer, peak_rss) = tokio::select! {
            seen = tokio::time::timeout(INVOKE_TIMEOUT, events.recv()) => match seen {
                Ok(Some(Seen::Answered { at, answer, peak_rss })) => (at, answer, peak_rss),
                Ok(_) => return Err("the Runtime API stopped".to_owned()),
                Err(_) => return Err(format!("no answer within {} s", INVOKE_TIMEOUT.as_secs())),
            },
            status = child.wait() => return Err(format!("exited during the invocation ({})", describe(status))),
        };
        let peak_rss_bytes = peak_rss.ok_or("no VmHWM in /proc/<pid>/status")?;
        Ok(Measured {
            sample: Sample {
                init: polled.duration_since(exec),
                first_invoke: answered.duration_since(polled),
                peak_rss_bytes,
            },
            answer,
        })
    }
    .await;

    let _ = child.kill().await;
    server.abort();
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    outcome.map_err(|reason| {
        let tail = lock(&output).iter().cloned().collect::<Vec<_>>().join("\n  ");
        if tail.is_empty() {
            reason
        } else {
            format!("{reason}; its last output:\n  {tail}")
        }
    })
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    status.map_or_else(|error| error.to_string(), |status| status.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads a pipe to its end (a full pipe would stall the process), keeping its last lines.
async fn keep_tail(pipe: impl AsyncRead + Unpin, kept: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut kept = lock(&kept);
        if kept.len() == KEPT_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
}

/// Serves until aborted; aborting drops the connections too (one is parked in its second `/next`).
async fn serve(listener: TcpListener, api: Arc<Api>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let api = Arc::clone(&api);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let api = Arc::clone(&api);
                async move { Ok::<_, Infallible>(route(&api, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn route(api: &Api, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return answer(StatusCode::NOT_FOUND, Bytes::new());
    };
    match (request.method(), rest) {
        (&Method::GET, "invocation/next") => {
            if api.polls.fetch_add(1, Ordering::SeqCst) > 0 {
                // The second poll: the invocation is over, the process is killed while it waits.
                std::future::pending::<()>().await;
            }
            let _ = api.seen.send(Seen::FirstPoll(Instant::now()));
            next_invocation(&api.event)
        }
        (&Method::POST, rest) if rest.starts_with("invocation/") || rest == "init/error" => {
            let at = Instant::now();
            // Read before anything else: the figure is the peak up to the answer.
            let peak_rss =
                std::fs::read_to_string(format!("/proc/{}/status", api.pid.load(Ordering::SeqCst)))
                    .ok()
                    .and_then(|status| peak_rss_bytes(&status));
            let body = request
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let kind = if rest.ends_with("/response") {
                "response"
            } else {
                "error"
            };
            let answer = format!("{kind}: {}", shorten(&String::from_utf8_lossy(&body)));
            if rest == "init/error" {
                // Reported as a failed init by the process exiting or the timeout; say why meanwhile.
                eprintln!("herald: init error: {answer}");
            } else {
                let _ = api.seen.send(Seen::Answered { at, answer, peak_rss });
            }
            answer_accepted()
        }
        _ => answer(StatusCode::NOT_FOUND, Bytes::new()),
    }
}

fn next_invocation(event: &Bytes) -> Response<Full<Bytes>> {
    let mut response = answer(StatusCode::OK, event.clone());
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
        + INVOKE_TIMEOUT.as_millis();
    let headers = response.headers_mut();
    let values = [
        ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
        ),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn answer_accepted() -> Response<Full<Bytes>> {
    answer(StatusCode::ACCEPTED, Bytes::from_static(br#"{"status":"OK"}"#))
}

fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The first 120 characters of an answer, on one line.
fn shorten(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}
