//! The Lambda Runtime API each process talks to: `/invocation/next` hands it the next invocation,
//! `/invocation/{id}/response` and `/invocation/{id}/error` answer it, `/init/error` reports a failed init.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::decode::{ERROR_TYPE_HEADER, function_error, success_outcome};
use super::{InFlight, Inner, InvokeError, SlotEvent};

/// An invocation's answer waits until its process has printed nothing for this long (its last log
/// lines may still be in the pipe when the answer arrives)…
const LOG_QUIET: Duration = Duration::from_millis(5);
/// …but no longer than this.
const LOG_GRACE_MAX: Duration = Duration::from_millis(50);

type ApiResponse = Response<Full<Bytes>>;

/// Serves one slot's Runtime API until aborted (which also closes its connections).
pub(super) async fn serve(listener: TcpListener, inner: Arc<Inner>, index: usize) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                inner.say(&format!("Runtime API accept failed: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let inner = Arc::clone(&inner);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let inner = Arc::clone(&inner);
                async move { Ok::<_, Infallible>(route(inner, index, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn route(inner: Arc<Inner>, index: usize, request: Request<Incoming>) -> ApiResponse {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return not_found(&path);
    };
    match (request.method(), rest) {
        (&Method::GET, "invocation/next") => next_invocation(&inner, index).await,
        (&Method::POST, "init/error") => init_error(&inner, index, request).await,
        (&Method::POST, rest) => {
            let Some(invocation) = rest.strip_prefix("invocation/") else {
                return not_found(&path);
            };
            if let Some(request_id) = invocation.strip_suffix("/response") {
                let outcome = match read_body(request).await {
                    Ok((headers, trailers, body)) => success_outcome(&headers, trailers.as_ref(), &body),
                    Err(response) => return response,
                };
                complete(&inner, index, request_id, outcome)
            } else if let Some(request_id) = invocation.strip_suffix("/error") {
                let outcome = match read_body(request).await {
                    Ok((headers, _, body)) => Err(function_error(headers.get(ERROR_TYPE_HEADER), &body)),
                    Err(response) => return response,
                };
                complete(&inner, index, request_id, outcome)
            } else {
                not_found(&path)
            }
        }
        _ => not_found(&path),
    }
}

/// `GET /runtime/invocation/next`: waits for an invocation and hands it to the slot's process.
async fn next_invocation(inner: &Inner, index: usize) -> ApiResponse {
    let slot = &inner.slots[index];
    let mut epoch = slot.epoch.subscribe();
    let generation = {
        let mut state = slot.lock();
        if !state.alive {
            return gone();
        }
        state.asked_for_work = true;
        state.generation
    };
    // The previous invocation is over once its answer (and its last log lines) are delivered.
    loop {
        let idle = slot.idle.notified();
        if slot.lock().current.is_none() {
            break;
        }
        tokio::select! {
            () = idle => {}
            _ = epoch.changed() => return gone(),
        }
    }
    let pending = tokio::select! {
        pending = inner.take_next() => pending,
        _ = epoch.changed() => return gone(),
    };

    let timeout = inner.config.timeout;
    let deadline_ms = epoch_ms().saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    {
        let mut state = slot.lock();
        if !state.alive || state.generation != generation {
            drop(state);
            inner.requeue(pending);
            return gone();
        }
        state.current = Some(InFlight {
            request_id: pending.request_id.clone(),
            reply: pending.reply,
            deadline: Instant::now() + timeout,
            logs: Vec::new(),
            outcome: None,
        });
    }
    let _ = slot.events.send(SlotEvent::Started);

    let mut response = Response::new(Full::new(pending.payload));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let values = [
        ("lambda-runtime-aws-request-id", pending.request_id),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", inner.arn.clone()),
        ("lambda-runtime-trace-id", trace_id()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// Records a process's answer; it is sent to the caller once the process's output has settled.
fn complete(
    inner: &Arc<Inner>,
    index: usize,
    request_id: &str,
    outcome: Result<Value, InvokeError>,
) -> ApiResponse {
    let slot = &inner.slots[index];
    {
        let mut state = slot.lock();
        match state.current.as_mut() {
            Some(current) if current.request_id == request_id && current.outcome.is_none() => {
                current.outcome = Some(outcome);
            }
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({
                        "errorType": "InvalidRequestID",
                        "errorMessage": format!("no invocation {request_id} is waiting for an answer"),
                    }),
                );
            }
        }
        state.served += 1;
    }
    tokio::spawn(deliver_when_quiet(
        Arc::clone(inner),
        index,
        request_id.to_owned(),
    ));
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

/// Sends an answered invocation's outcome once its process has printed nothing for a moment (the
/// log lines it printed before answering may still be in the pipe).
async fn deliver_when_quiet(inner: Arc<Inner>, index: usize, request_id: String) {
    let slot = &inner.slots[index];
    let begun = Instant::now();
    loop {
        let last_line = slot.lock().last_line;
        let now = Instant::now();
        let quiet_for = now.saturating_duration_since(last_line.max(begun));
        if quiet_for >= LOG_QUIET || now.duration_since(begun) >= LOG_GRACE_MAX {
            break;
        }
        tokio::time::sleep(LOG_QUIET.saturating_sub(quiet_for)).await;
    }
    let done = {
        let mut state = slot.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|current| current.request_id == request_id)
        {
            state.current.take()
        } else {
            None
        }
    };
    if let Some(mut done) = done {
        let outcome = done.outcome.take().unwrap_or(Err(InvokeError::Crashed));
        done.send(outcome);
    }
    slot.idle.notify_one();
}

/// `POST /runtime/init/error`: the process could not initialise; its supervisor replaces it.
async fn init_error(inner: &Inner, index: usize, request: Request<Incoming>) -> ApiResponse {
    let (headers, _, body) = match read_body(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let message = match function_error(headers.get(ERROR_TYPE_HEADER), &body) {
        InvokeError::Function {
            error_type,
            error_message,
        } => format!("{error_type}: {error_message}"),
        other => other.to_string(),
    };
    let slot = &inner.slots[index];
    let generation = {
        let mut state = slot.lock();
        state.init_error = Some(message);
        state.generation
    };
    let _ = slot.events.send(SlotEvent::InitError(generation));
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

async fn read_body(request: Request<Incoming>) -> Result<(HeaderMap, Option<HeaderMap>, Bytes), ApiResponse> {
    let (parts, body) = request.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            Ok((parts.headers, trailers, collected.to_bytes()))
        }
        Err(error) => Err(json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "errorType": "InvalidRequest", "errorMessage": error.to_string() }),
        )),
    }
}

fn json_response(status: StatusCode, body: &Value) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn not_found(path: &str) -> ApiResponse {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "errorType": "NotFound", "errorMessage": format!("no Runtime API endpoint at {path}") }),
    )
}

/// The process asking is gone (or going): nothing for it.
fn gone() -> ApiResponse {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "errorType": "Runtime.ProcessGone", "errorMessage": "this execution environment is shutting down" }),
    )
}

pub(super) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// An X-Ray trace header like Lambda's (`Root=1-{epoch hex}-{96 bits};Parent={64 bits};Sampled=0`).
fn trace_id() -> String {
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_ms() / 1000,
        &root[..24],
        &parent[..16]
    )
}
