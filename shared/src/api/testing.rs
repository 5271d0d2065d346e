//! The management API as Lambda calls it, over the in-memory stores: requests as API Gateway (HTTP API,
//! payload v2) hands them to the function, converted by lambda_http as in production, and the answers
//! parsed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::Api;
use crate::adapters::memory::api_keys::MemoryApiKeyStore;
use crate::adapters::memory::config::MemoryConfigStore;
use crate::adapters::memory::push::MemoryPushEndpoints;
use crate::config::{Env, HttpSettings};
use crate::domain::api_key::{KeyScope, NewApiKey};
use crate::domain::webhook::SigningSecret;
use crate::domain::{TenantId, Timestamp};
use crate::ports::ApiKeyStore;
use lambda_http::http::HeaderMap;
use serde_json::{Value, json};

pub(super) type MemoryApi = Api<MemoryApiKeyStore, MemoryConfigStore, MemoryPushEndpoints>;

pub(super) const ACME_KEY: &str = "acme-key";
pub(super) const GLOBEX_KEY: &str = "globex-key";
pub(super) const INGEST_KEY: &str = "acme-ingest-key";

pub(super) fn acme() -> TenantId {
    TenantId::new("acme")
}

/// Tenants `acme` (a full key and an ingest key) and `globex`; loopback endpoints allowed only when
/// `allow_loopback`, as `HERALD_ALLOW_LOOPBACK_WEBHOOKS` allows them in the local stack.
pub(super) async fn api_with(allow_loopback: bool) -> MemoryApi {
    let keys = MemoryApiKeyStore::default();
    let now = Timestamp::now();
    for (tenant, key, scope) in [
        ("acme", ACME_KEY, KeyScope::Full),
        ("globex", GLOBEX_KEY, KeyScope::Full),
        ("acme", INGEST_KEY, KeyScope::Ingest),
    ] {
        let key = NewApiKey::new(&TenantId::new(tenant), key, None, scope, now);
        keys.create_api_key(&key).await.unwrap();
    }
    let env = Env::from_fn(move |name| match name {
        "HERALD_ALLOW_LOOPBACK_WEBHOOKS" => Some(allow_loopback.to_string()),
        _ => None,
    });
    Api::new(
        keys,
        MemoryConfigStore::default(),
        HttpSettings::from_env(&env).unwrap(),
    )
    .with_push(MemoryPushEndpoints::default())
}

pub(super) async fn new_api() -> MemoryApi {
    api_with(false).await
}

/// A request as API Gateway (HTTP API, payload v2) hands it to the function; `body` is sent as given,
/// with `Content-Type: application/json` when there is one.
pub(super) fn request(
    method: &str,
    path_and_query: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> lambda_http::Request {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut headers = json!({});
    if let Some(key) = key {
        headers["authorization"] = json!(format!("Bearer {key}"));
    }
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "tests"},
            "requestId": "req", "routeKey": "$default", "stage": "$default",
            "time": "02/Dec/2026:00:00:00 +0000", "timeEpoch": 1_796_169_600_000_i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    /// The body as sent, to look for a secret anywhere in it.
    pub(super) text: String,
    pub(super) body: Value,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub(super) fn problem_code(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
    }

    pub(super) fn pointers(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["pointer"].as_str()).collect())
            .unwrap_or_default()
    }

    pub(super) fn secret(&self) -> SigningSecret {
        SigningSecret::parse(self.body["secret"].as_str().expect("a secret in the answer")).unwrap()
    }
}

pub(super) async fn send(api: &MemoryApi, request: lambda_http::Request) -> Answer {
    let response = api
        .handle(request)
        .await
        .expect("the handler answers every outcome");
    let text = String::from_utf8(response.body().as_ref().to_vec()).unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// `method path` with `key`, the body (if any) as JSON.
pub(super) async fn call_as(
    api: &MemoryApi,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let text = body.map(|body| body.to_string());
    send(api, request(method, path, Some(key), text.as_deref())).await
}

pub(super) async fn call(api: &MemoryApi, method: &str, path: &str, body: Option<Value>) -> Answer {
    call_as(api, ACME_KEY, method, path, body).await
}
