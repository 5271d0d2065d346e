//! `X-Correlation-Id`: the id that ties one request to every log line it causes, in every function. A caller
//! may send its own (its trace or request id); otherwise API Gateway's request id is used, so the access log
//! and Herald's logs share it. The answer always carries the id used, and ingest stores it on each
//! notification, so the delivery functions log it too.

use lambda_http::http::HeaderValue;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tracing::Span;

use super::HttpResponse;

pub const HEADER: &str = "x-correlation-id";
/// The longest correlation id kept; a longer or stranger one is replaced, not refused (it is only a label).
const MAX_LENGTH: usize = 128;

/// The request's correlation id: the caller's `X-Correlation-Id` when it is 1–128 characters of
/// `A–Z a–z 0–9 . _ ~ : / + = -`, else API Gateway's request id, else a new UUID.
pub fn correlation_id(request: &Request) -> String {
    let given = request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| is_acceptable(id));
    if let Some(id) = given {
        return id.to_owned();
    }
    let gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    gateway
        .filter(|id| is_acceptable(id))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn is_acceptable(id: &str) -> bool {
    (1..=MAX_LENGTH).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._~:/+=-".contains(&byte))
}

/// The span every log line of one request is written in: its correlation id, method and route, and the
/// tenant once the key is known ([`record_tenant`]).
pub fn request_span(request: &Request, correlation_id: &str) -> Span {
    tracing::info_span!(
        "request",
        correlation_id,
        method = %request.method(),
        path = request.uri().path(),
        tenant = tracing::field::Empty,
    )
}

/// Names the tenant on the current request's span.
pub fn record_tenant(tenant: &str) {
    Span::current().record("tenant", tenant);
}

/// The answer, telling the caller which correlation id its request was logged under.
pub fn answer_with(mut response: HttpResponse, correlation_id: &str) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(header: Option<&str>) -> Request {
        let mut builder = lambda_http::http::Request::builder().uri("/v1/events");
        if let Some(value) = header {
            builder = builder.header(HEADER, value);
        }
        builder.body(lambda_http::Body::Empty).unwrap()
    }

    #[test]
    fn the_callers_id_is_kept_when_it_is_a_plain_label() {
        assert_eq!(
            correlation_id(&request(Some("checkout-7f3a:2"))),
            "checkout-7f3a:2"
        );
        assert_eq!(
            correlation_id(&request(Some("  Root=1-5e1b4151  "))),
            "Root=1-5e1b4151"
        );
    }

    #[test]
    fn a_missing_or_unfit_id_is_replaced_by_a_new_one() {
        let too_long = "x".repeat(129);
        for given in [
            None,
            Some(""),
            Some("has space"),
            Some("tab\there"),
            Some(too_long.as_str()),
        ] {
            let id = correlation_id(&request(given));
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{given:?} gave {id}");
        }
        assert_ne!(correlation_id(&request(None)), correlation_id(&request(None)));
    }
}
