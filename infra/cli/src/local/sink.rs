//! The capture sink: stands in for Slack's incoming webhooks and for a tenant's webhook endpoint in the local
//! stack. Every POST is appended to a JSON Lines file (the full record) and the latest ones are kept in
//! memory, so a person or a test can see what Herald sent without the sink growing over a long day of use.
//! A signed webhook POST is kept with its Standard Webhooks headers and its body exactly as received, so
//! its signature can be checked with any Standard Webhooks library.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// How the sink answers: `ok` like Slack, or a failure status to exercise retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkBehaviour {
    pub status: u16,
}

/// Messages `GET /messages` answers with: the latest, enough for a person or a test to look at.
pub const WINDOW: usize = 1_000;

/// The latest messages and how many there were in all.
#[derive(Debug, Default)]
struct Captured {
    latest: VecDeque<Value>,
    total: u64,
}

#[derive(Debug, Clone)]
pub struct SlackSink {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub log_file: PathBuf,
    captured: Arc<Mutex<Captured>>,
    behaviour: Arc<Mutex<SinkBehaviour>>,
    /// One writer at a time, so concurrent messages never interleave within a line of the record.
    record: Arc<tokio::sync::Mutex<()>>,
}

impl SlackSink {
    /// Serves on `listener`, appending each captured message to `log_file`.
    pub fn start(listener: TcpListener, log_file: PathBuf) -> std::io::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let sink = Self {
            url,
            log_file,
            captured: Arc::default(),
            behaviour: Arc::new(Mutex::new(SinkBehaviour { status: 200 })),
            record: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let sink = sink.clone();
                        async move { Ok::<_, hyper::Error>(sink.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(sink)
    }

    /// The webhook URL the demo recipient uses.
    pub fn webhook_url(&self) -> String {
        format!("{}/services/T000/B000/XXXX", self.url)
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        match (parts.method, path.as_str()) {
            // What the sink is and where its full record is: for people and for `herald bench`.
            (Method::GET, "/") => {
                let total = self.captured.lock().map_or(0, |c| c.total);
                let info = json!({"captured": total, "window": WINDOW, "log_file": self.log_file});
                respond(200, "application/json", info.to_string())
            }
            (Method::GET, "/messages") => {
                let messages = self
                    .captured
                    .lock()
                    .map(|c| Value::Array(c.latest.iter().cloned().collect()))
                    .unwrap_or_default();
                respond(200, "application/json", messages.to_string())
            }
            // `PUT /behaviour {"status": 500}` makes the sink fail like a broken Slack, until set back to 200.
            (Method::PUT, "/behaviour") => {
                let bytes = body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .unwrap_or_default();
                let status = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v["status"].as_u64());
                match status
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| (200..600).contains(s))
                {
                    Some(status) => {
                        if let Ok(mut behaviour) = self.behaviour.lock() {
                            behaviour.status = status;
                        }
                        respond(200, "application/json", json!({"status": status}).to_string())
                    }
                    None => respond(400, "text/plain", "send {\"status\": 200..599}".into()),
                }
            }
            (Method::POST, _) => {
                let signature = signature_headers(&parts.headers);
                let bytes = body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .unwrap_or_default();
                let status = self.behaviour.lock().map_or(200, |b| b.status);
                if status != 200 {
                    return respond(status, "text/plain", "sink_failing".into());
                }
                let body = serde_json::from_slice::<Value>(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                let mut message = json!({"path": path, "body": body});
                if let Some(mut headers) = signature {
                    headers["raw_body"] = json!(String::from_utf8_lossy(&bytes));
                    message["webhook"] = headers;
                }
                self.append(&message).await;
                if let Ok(mut captured) = self.captured.lock() {
                    if captured.latest.len() == WINDOW {
                        captured.latest.pop_front();
                    }
                    captured.latest.push_back(message);
                    captured.total += 1;
                }
                respond(200, "text/plain", "ok".into())
            }
            _ => respond(404, "text/plain", "not_found".into()),
        }
    }

    async fn append(&self, message: &Value) {
        let line = format!("{message}\n");
        let _one_writer = self.record.lock().await;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .await;
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes()).await;
        }
    }
}

/// The Standard Webhooks headers of a signed POST (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`); `None` for an unsigned one, as Slack's are.
fn signature_headers(headers: &hyper::HeaderMap) -> Option<Value> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let signature = header("webhook-signature")?;
    Some(json!({
        "id": header("webhook-id"),
        "timestamp": header("webhook-timestamp"),
        "signature": signature,
    }))
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
