//! `docs/openapi.yaml` and the routes Herald serves cannot drift apart. Each method and path is sent as
//! API Gateway would send it, to the function template.yaml routes it to (the ingest and API routers,
//! over in-memory stores): every operation of the document must be served, and every method and path a
//! router serves must be in the document. The paths probed are the document's, template.yaml's and those
//! docs/api.md names, so a route added to the code and the contract but not to the document fails here.
//! A documented path must answer any other method 405 with `Allow` naming exactly its documented methods.
//! Also: the document names every problem code the code has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald::adapters::memory::api_keys::MemoryApiKeyStore;
use herald::adapters::memory::config::MemoryConfigStore;
use herald::adapters::memory::{MemoryActivityStore, MemoryQueue};
use herald::api::Api;
use herald::config::{Env, HttpSettings};
use herald::domain::api_key::{KeyScope, NewApiKey};
use herald::domain::{ProblemCode, TenantId, Timestamp};
use herald::ingest::Ingest;
use herald::ports::ApiKeyStore;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

const KEY: &str = "probe-key";
/// Every method a route could be added under.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "PATCH"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn openapi() -> Value {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// The document's operations, as (METHOD, path template).
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.to_ascii_lowercase()).is_some() {
                operations.insert((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

/// The paths docs/api.md names in code spans (`GET|DELETE /v1/rules/{id}`, `GET /v1/rules?event=`).
fn contract_paths() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| span.split_whitespace().find(|word| word.starts_with("/v1/")))
        .map(|path| path.split('?').next().unwrap_or(path).to_owned())
        .collect()
}

/// template.yaml's HTTP routes: (method or ANY, path or `$default`, the function's binary).
fn gateway_routes() -> Vec<(String, String, String)> {
    let template = herald_cli::local::up::local_template(&root()).unwrap();
    template
        .functions()
        .into_iter()
        .flat_map(|function| {
            function
                .http_routes
                .into_iter()
                .map(move |route| (route.method, route.path, function.binary.clone()))
        })
        .collect()
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// Whether the path template (`/v1/rules/{id}`) matches the concrete path.
fn matches(template: &str, path: &str) -> bool {
    let (template, path) = (segments(template), segments(path));
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(expected, actual)| is_parameter(expected) || expected == actual)
}

/// The document's methods for a concrete path, matched as OpenAPI matches: a literal path before a
/// templated one (`/v1/events/batch` is not the event `batch`).
fn documented_methods(operations: &BTreeSet<(String, String)>, path: &str) -> Vec<&'static str> {
    let literal = operations.iter().any(|(_, template)| template == path);
    let methods: BTreeSet<&str> = operations
        .iter()
        .filter(|(_, template)| {
            if literal {
                template == path
            } else {
                matches(template, path)
            }
        })
        .map(|(method, _)| method.as_str())
        .collect();
    METHODS
        .into_iter()
        .filter(|method| methods.contains(method))
        .collect()
}

/// A concrete path for a template: every parameter a plain name.
fn concrete(template: &str) -> String {
    segments(template)
        .into_iter()
        .map(|segment| if is_parameter(segment) { "probe" } else { segment })
        .fold(String::new(), |path, segment| format!("{path}/{segment}"))
}

/// The function API Gateway sends the request to: the most specific matching route, else `$default`'s.
fn function_for(routes: &[(String, String, String)], method: &str, path: &str) -> String {
    let specificity = |route: &(String, String, String)| {
        let literals = segments(&route.1).iter().filter(|s| !is_parameter(s)).count();
        (literals, route.0 != "ANY")
    };
    routes
        .iter()
        .filter(|(m, p, _)| p != "$default" && (m == "ANY" || m == method) && matches(p, path))
        .max_by_key(|route| specificity(route))
        .or_else(|| routes.iter().find(|(_, p, _)| p == "$default"))
        .map(|(_, _, function)| function.clone())
        .expect("template.yaml has a $default route")
}

fn request(method: &str, path: &str) -> lambda_http::Request {
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {KEY}"), "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "tests"},
            "requestId": "probe", "routeKey": "$default", "stage": "$default",
            "time": "02/Dec/2026:00:00:00 +0000", "timeEpoch": 1_796_169_600_000_i64
        },
        "body": "{}",
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

struct Functions {
    ingest: Ingest<MemoryApiKeyStore, MemoryConfigStore, MemoryActivityStore, MemoryQueue>,
    api: Api<MemoryApiKeyStore, MemoryConfigStore>,
}

impl Functions {
    async fn new() -> Self {
        let keys = || async {
            let keys = MemoryApiKeyStore::default();
            let key = NewApiKey::new(
                &TenantId::new("probe"),
                KEY,
                None,
                KeyScope::Full,
                Timestamp::now(),
            );
            keys.create_api_key(&key).await.unwrap();
            keys
        };
        let settings = || HttpSettings::from_env(&Env::from_fn(|_| None)).unwrap();
        Self {
            ingest: Ingest::new(
                keys().await,
                MemoryConfigStore::default(),
                MemoryActivityStore::default(),
                MemoryQueue::default(),
                settings(),
            ),
            api: Api::new(keys().await, MemoryConfigStore::default(), settings()),
        }
    }

    /// How `function` answers the method and path.
    async fn answer(&self, function: &str, method: &str, path: &str) -> Routed {
        let response = match function {
            "ingest" => self.ingest.handle(request(method, path)).await,
            "api" => self.api.handle(request(method, path)).await,
            other => panic!("template.yaml routes HTTP to {other}, which this test does not know"),
        }
        .unwrap();
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        let no_route = response.status() == 404
            && body["detail"]
                .as_str()
                .is_some_and(|detail| detail.starts_with("no route for"));
        if no_route {
            Routed::NoRoute
        } else if response.status() == 405 {
            let allow = response
                .headers()
                .get("allow")
                .map(|value| value.to_str().unwrap().to_owned());
            Routed::NotAllowed(allow)
        } else {
            Routed::Served
        }
    }
}

#[derive(Debug, PartialEq)]
enum Routed {
    Served,
    /// A 405, with its `Allow` header.
    NotAllowed(Option<String>),
    /// A 404 for no route (not a resource's 404).
    NoRoute,
}

#[tokio::test]
async fn the_document_names_exactly_the_routes_the_functions_serve() {
    let document = openapi();
    let operations = documented(&document);
    let routes = gateway_routes();
    let functions = Functions::new().await;

    let mut paths: BTreeSet<String> = operations.iter().map(|(_, path)| path.clone()).collect();
    paths.extend(
        routes
            .iter()
            .map(|(_, path, _)| path.clone())
            .filter(|p| p != "$default"),
    );
    paths.extend(contract_paths());

    let mut undocumented = Vec::new();
    let mut unserved = Vec::new();
    let mut wrong_refusals = Vec::new();
    for template in &paths {
        let path = concrete(template);
        // What a 405 on this path must list: the document's methods for it, in METHODS' order.
        let allowed = documented_methods(&operations, &path);
        for method in METHODS {
            let function = function_for(&routes, method, &path);
            let answer = functions.answer(&function, method, &path).await;
            let in_document = allowed.contains(&method);
            if answer == Routed::Served && !in_document {
                undocumented.push(format!("{method} {path} (served by {function})"));
            }
            if answer != Routed::Served && operations.contains(&(method.to_owned(), template.clone())) {
                unserved.push(format!("{method} {template} (sent to {function})"));
            }
            let expected = Routed::NotAllowed(Some(allowed.join(", ")));
            if !in_document && !allowed.is_empty() && answer != expected {
                wrong_refusals.push(format!("{method} {path}: {answer:?}, not {expected:?}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "served but not in docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in docs/openapi.yaml but not served: {unserved:?}"
    );
    assert!(
        wrong_refusals.is_empty(),
        "a documented path must answer another method 405 with Allow naming its documented methods: {wrong_refusals:?}"
    );
    assert!(
        operations.len() >= 17,
        "the probe found the document's operations"
    );
}

#[test]
fn the_document_names_every_problem_code() {
    let document = openapi();
    let pattern = document["components"]["schemas"]["Problem"]["properties"]["type"]["pattern"]
        .as_str()
        .unwrap();
    let text = serde_json::to_string(&document).unwrap();
    for code in ProblemCode::ALL {
        let code = code.as_str();
        assert!(pattern.contains(code), "the Problem type's pattern lacks {code}");
        assert!(
            text.contains(&format!("/problems/{code}$")),
            "no problem schema for {code}"
        );
    }
}
