//! A small HTTP proxy in front of the emulator that answers chosen requests with an error instead of
//! forwarding them, so the AWS SDK's real error parsing runs on faults the emulator cannot make
//! (throttling, 5xx), or forwards them and answers too late: the request took effect, and the caller's
//! attempt timed out (the SDK retries it).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// An error answer for the next request whose path or body contains `matching`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub matching: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Forward the request, then answer only after this long (status, headers and body unused).
    pub late_by: Option<Duration>,
}

impl Fault {
    /// The request reaches the emulator and takes effect; its answer comes after `delay`.
    pub fn answered_late(matching: &str, delay: Duration) -> Self {
        Self {
            matching: matching.into(),
            status: 200,
            headers: Vec::new(),
            body: String::new(),
            late_by: Some(delay),
        }
    }

    /// SES v2 (REST-JSON) throttling: 429 `TooManyRequestsException`.
    pub fn ses_throttled() -> Self {
        Self {
            matching: "/v2/email/outbound-emails".into(),
            status: 429,
            headers: vec![("x-amzn-ErrorType".into(), "TooManyRequestsException".into())],
            body: r#"{"message": "Maximum sending rate exceeded."}"#.into(),
            late_by: None,
        }
    }

    /// SES v2 refusing the message for good: 400 `MessageRejected`.
    pub fn ses_rejected() -> Self {
        Self {
            matching: "/v2/email/outbound-emails".into(),
            status: 400,
            headers: vec![("x-amzn-ErrorType".into(), "MessageRejected".into())],
            body: r#"{"message": "Email address is not verified."}"#.into(),
            late_by: None,
        }
    }

    /// DynamoDB (JSON protocol) failing a request whose body contains `matching` (e.g. `TransactItems`): 500
    /// `InternalServerError`, which the SDK retries.
    pub fn dynamodb_unavailable(matching: &str) -> Self {
        Self {
            matching: matching.into(),
            status: 500,
            headers: vec![("content-type".into(), "application/x-amz-json-1.0".into())],
            body: r#"{"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal server error"}"#
                .into(),
            late_by: None,
        }
    }

    /// SNS (query protocol) throttling: 400 `Throttled`.
    pub fn sns_throttled() -> Self {
        Self {
            matching: "Action=Publish".into(),
            status: 400,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type>\
                   <Code>Throttled</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"
                .into(),
            late_by: None,
        }
    }
}

/// The proxy; it stops when dropped with the test's runtime.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    pub url: String,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. the emulator's `http://127.0.0.1:PORT`) on a free loopback port.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let faults: Arc<Mutex<VecDeque<Fault>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen_by_server = Arc::clone(&seen);
        let client = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let shared = Arc::clone(&faults);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (faults, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
                let seen = Arc::clone(&seen_by_server);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (faults, client, upstream) =
                            (Arc::clone(&faults), client.clone(), upstream.clone());
                        let seen = Arc::clone(&seen);
                        async move {
                            Ok::<_, hyper::Error>(answer(request, &faults, &seen, &client, &upstream).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, faults, seen }
    }

    /// Every request (URI, a line break, then the body) that passed through, faulted or not.
    pub fn requests(&self, containing: &str) -> Vec<String> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|request| request.contains(containing))
            .cloned()
            .collect()
    }

    /// Answers the next matching request with `fault` (faults are used in the order they were added).
    pub fn fail_next(&self, fault: Fault) {
        self.faults.lock().expect("faults").push_back(fault);
    }

    /// A DynamoDB client that reaches the emulator through this proxy, with the SDK's standard retries
    /// and `attempt_timeout` per attempt.
    pub async fn dynamodb_client(&self, attempt_timeout: Duration) -> aws_sdk_dynamodb::Client {
        let settings = herald::config::AwsSettings {
            attempt_timeout,
            operation_timeout: Duration::from_secs(10),
            ..herald::config::AwsSettings::from_env(&herald::config::Env::process()).expect("AWS settings")
        };
        let aws = herald::adapters::load_aws_config(&settings).await;
        let config = aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(&self.url)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Faults added but not yet used.
    pub fn pending(&self) -> usize {
        self.faults.lock().expect("faults").len()
    }
}

async fn answer(
    request: Request<Incoming>,
    faults: &Mutex<VecDeque<Fault>>,
    seen: &Mutex<Vec<String>>,
    client: &reqwest::Client,
    upstream: &str,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let target = format!("{}\n{}", parts.uri, String::from_utf8_lossy(&body));
    seen.lock().expect("seen").push(target.clone());
    let fault = {
        let mut faults = faults.lock().expect("faults");
        let position = faults.iter().position(|fault| target.contains(&fault.matching));
        position.and_then(|index| faults.remove(index))
    };
    let late_by = fault.as_ref().and_then(|fault| fault.late_by);
    if let Some(fault) = fault.filter(|fault| fault.late_by.is_none()) {
        let mut response = Response::builder().status(fault.status);
        for (name, value) in &fault.headers {
            response = response.header(name, value);
        }
        return response
            .body(Full::new(Bytes::from(fault.body)))
            .expect("fault response");
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forwarded = client
        .request(parts.method, format!("{upstream}{path}"))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forwarded = forwarded.header(name, value);
        }
    }
    let answer = forwarded.send().await;
    if let Some(delay) = late_by {
        tokio::time::sleep(delay).await;
    }
    match answer {
        Ok(upstream_response) => {
            let mut response = Response::builder().status(upstream_response.status());
            for (name, value) in upstream_response.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name, value);
                }
            }
            let bytes = upstream_response.bytes().await.unwrap_or_default();
            response.body(Full::new(bytes)).expect("proxied response")
        }
        Err(error) => Response::builder()
            .status(502)
            .body(Full::new(Bytes::from(error.to_string())))
            .expect("bad gateway"),
    }
}
