//! The local HTTP front: what API Gateway (HTTP API, payload format 2.0) does in front of the functions.
//! It matches a request to the template's routes, builds the v2 event, invokes the function through its
//! local Runtime API and turns the function's answer back into HTTP.

use super::runtime::{FunctionHost, InvokeError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// One route of the template: `method` may be `ANY`; `path` may hold `{name}` segments, or be `$default`.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: FunctionHost,
}

impl Route {
    /// The path parameters when this route matches, `None` otherwise.
    fn matches(&self, method: &str, path: &str) -> Option<Map<String, Value>> {
        if self.path == "$default" {
            return Some(Map::new());
        }
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let pattern: Vec<&str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        let actual: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if pattern.len() != actual.len() {
            return None;
        }
        let mut parameters = Map::new();
        for (expected, segment) in pattern.iter().zip(&actual) {
            match expected.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')) {
                Some(name) => {
                    parameters.insert(name.to_owned(), json!(segment));
                }
                None if expected == segment => {}
                None => return None,
            }
        }
        Some(parameters)
    }

    /// API Gateway prefers the most specific route: literal segments over parameters, `$default` last.
    fn specificity(&self) -> (bool, usize, usize) {
        let segments = self.path.split('/').filter(|s| !s.is_empty());
        let literals = segments.clone().filter(|s| !s.starts_with('{')).count();
        (
            self.path != "$default",
            literals,
            usize::from(self.method != "ANY"),
        )
    }
}

/// Serves the routes on `listener` until the task is dropped.
pub fn serve(listener: TcpListener, mut routes: Vec<Route>) {
    routes.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let routes = Arc::clone(&routes);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let routes = Arc::clone(&routes);
                    async move { Ok::<_, hyper::Error>(handle(&routes, request, peer.ip().to_string()).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn handle(routes: &[Route], request: Request<Incoming>, source_ip: String) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let Some((route, parameters)) = routes
        .iter()
        .find_map(|route| route.matches(&method, &path).map(|p| (route, p)))
    else {
        return gateway_answer(404, "Not Found");
    };
    let bytes = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let event = api_gateway_event(&parts, &bytes, route, parameters, &source_ip);
    match route.function.invoke(event).await {
        Ok(answer) => function_answer(&answer),
        Err(InvokeError::Timeout) => gateway_answer(503, "Service Unavailable"),
        Err(error) => {
            eprintln!("[front] {method} {path}: {error}");
            gateway_answer(500, "Internal Server Error")
        }
    }
}

/// The API Gateway HTTP API payload v2.0 for this request.
fn api_gateway_event(
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    route: &Route,
    parameters: Map<String, Value>,
    source_ip: &str,
) -> Value {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let joined = match headers.get(name.as_str()).and_then(Value::as_str) {
            Some(previous) => format!("{previous},{value}"),
            None => value,
        };
        headers.insert(name.as_str().to_owned(), json!(joined));
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query = Map::new();
    for (name, value) in url_pairs(&raw_query) {
        let joined = match query.get(&name).and_then(Value::as_str) {
            Some(previous) => format!("{previous},{value}"),
            None => value,
        };
        query.insert(name, json!(joined));
    }
    let route_key = if route.path == "$default" {
        "$default".to_owned()
    } else {
        format!("{} {}", route.method, route.path)
    };
    let (body, encoded) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (json!(text), false),
        Err(_) => (json!(STANDARD.encode(body)), true),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": "",
            "timeEpoch": now,
        },
        "isBase64Encoded": encoded,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !parameters.is_empty() {
        event["pathParameters"] = Value::Object(parameters);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The function's v2 response (`statusCode`, `headers`, `body`, `isBase64Encoded`) as HTTP.
fn function_answer(answer: &Value) -> Response<Full<Bytes>> {
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    let body = match (
        answer["body"].as_str(),
        answer["isBase64Encoded"].as_bool().unwrap_or(false),
    ) {
        (Some(text), true) => STANDARD.decode(text).unwrap_or_default(),
        (Some(text), false) => text.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(str::parse),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

/// API Gateway's own answers (`{"message": ...}`) when no function answers.
fn gateway_answer(status: u16, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(json!({"message": message}).to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
