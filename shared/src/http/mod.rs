//! The HTTP plumbing both HTTP functions share: authentication, the body checks in the contract's order,
//! JSON and problem responses, list paging.

mod auth;
pub mod correlation;
mod paging;

pub use crate::domain::api_key::key_hash;
pub use auth::Authenticator;
pub use paging::{Cursor, Cursors};

use crate::domain::{Problem, ProblemCode};
use crate::ports::BackendError;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

/// The largest body of a single request (as received).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The largest body of a batch request.
pub const MAX_BATCH_BODY_BYTES: usize = 1024 * 1024;

/// The answer of every handler; problems are answers too, never Lambda errors, so API Gateway never turns
/// them into its own 500.
pub type HttpResponse = Response<Body>;

pub fn json_response(status: u16, body: &Value) -> HttpResponse {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn empty_response(status: u16) -> HttpResponse {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    response
}

pub fn problem_response(problem: &Problem, type_base: &str) -> HttpResponse {
    let mut response = json_response(problem.status(), &problem.to_json(type_base));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if problem.code == ProblemCode::Unauthorized {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(seconds) = problem.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(methods) = problem.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(methods));
    }
    response
}

/// A backing service failed. A transient failure (throttling, a 5xx, a timeout) is a 503 the client can
/// safely retry; a permanent one (access denied, a missing table, a request AWS refuses as invalid) is a 500,
/// because the same request would fail forever: the client is told not to retry, and the log line says a
/// person must look (alarm on it).
pub fn backend_failure(error: &BackendError) -> Problem {
    if error.retryable {
        tracing::error!(service = error.service, operation = error.operation, error = %error.message, "backing service failed");
        return Problem::unavailable(format!(
            "{} is unavailable; retry the same request",
            error.service
        ));
    }
    tracing::error!(service = error.service, operation = error.operation, error = %error.message, "backing service refused the request permanently; a person must look");
    Problem::new(
        ProblemCode::InternalError,
        format!(
            "{} refused the request ({}); this needs the operator, not a retry",
            error.service, error.operation
        ),
    )
}

/// Checks the content type, size and JSON of a body, in the contract's order (415, 413, 400).
pub fn json_body(request: &Request, max_bytes: usize) -> Result<Value, Problem> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    if !content_type.is_some_and(is_json_media_type) {
        return Err(Problem::new(
            ProblemCode::UnsupportedMediaType,
            format!(
                "send Content-Type: application/json, not {}",
                content_type.unwrap_or("nothing")
            ),
        ));
    }
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(Problem::new(
            ProblemCode::PayloadTooLarge,
            format!("the body is {} bytes; the limit is {max_bytes}", bytes.len()),
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| Problem::new(ProblemCode::MalformedJson, error.to_string()))
}

/// `application/json`, any case, with parameters; a charset other than UTF-8 is refused.
fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';').map(str::trim);
    let essence_ok = parts
        .next()
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"));
    essence_ok
        && parts.all(|parameter| match parameter.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                charset.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// The query string's parameters (read from the URI, where lambda_http puts API Gateway's raw query).
pub fn query_parameters(request: &Request) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub fn query_parameter(request: &Request, name: &str) -> Option<String> {
    query_parameters(request)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// The path's segments, without empty ones. They are not percent-decoded: every name and id Herald
/// accepts is plain `[a-z0-9_.-]`, so an encoded segment can only be one that does not exist.
pub fn path_segments(request: &Request) -> Vec<&str> {
    request
        .uri()
        .path()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect()
}

pub fn not_found_route(request: &Request) -> Problem {
    Problem::new(
        ProblemCode::NotFound,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// A 405 for a path that exists: `allow` lists the methods it does take (`GET, PUT, DELETE`).
pub fn method_not_allowed(request: &Request, allow: &'static str) -> Problem {
    Problem {
        allow: Some(allow),
        ..Problem::new(
            ProblemCode::MethodNotAllowed,
            format!(
                "{} is not allowed on {}; it allows {allow}",
                request.method(),
                request.uri().path()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json_media_type(good), "{good}");
        }
        for bad in [
            "text/plain",
            "application/json-patch+json",
            "application/json; charset=latin1",
            "",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }
}
