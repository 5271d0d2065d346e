//! For the senders that POST to a URL (Slack, webhooks): their HTTP client, and what a refusal or a
//! transport failure means (the detail kept on the notification, `Retry-After`, the kind of failure).

use crate::domain::delivery::{FailureKind, SendError};
use reqwest::header::RETRY_AFTER;
use reqwest::{ClientBuilder, StatusCode, redirect};
use std::error::Error as _;
use std::time::Duration;

/// rustls, the given timeouts, and no redirects followed: a URL that redirects could otherwise steer the
/// request at an address the sender's policy refuses.
pub(crate) fn client_builder(connect_timeout: Duration, timeout: Duration) -> ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .redirect(redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(timeout)
}

/// How much of a refusal's body goes into the error's detail.
pub(crate) const DETAIL_BODY_CHARS: usize = 200;

pub(crate) fn error_detail(status: StatusCode, body: &str) -> String {
    let body = body.trim();
    let mut detail = format!("HTTP {status}");
    if !body.is_empty() {
        detail.push_str(": ");
        detail.extend(body.chars().take(DETAIL_BODY_CHARS));
        if body.chars().nth(DETAIL_BODY_CHARS).is_some() {
            detail.push('…');
        }
    }
    detail
}

/// `Retry-After` in seconds (Slack sends seconds; an HTTP date is ignored).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// A transport failure: its kind and its chain of causes, without the URL (whose path is the secret).
pub(crate) fn transport_error(error: reqwest::Error) -> SendError {
    // A connect timeout is both: nothing was sent. Any other timeout came after the request went out.
    let (kind, code) = if error.is_connect() {
        (FailureKind::Transient, "connect")
    } else if error.is_timeout() {
        (FailureKind::Ambiguous, "timeout")
    } else if error.is_builder() {
        (FailureKind::Configuration, "invalid_request")
    } else {
        (FailureKind::Transient, "request")
    };
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::new(kind, code, detail)
}
