//! The HTTP side of a webhook delivery: one POST per attempt, signed to the Standard Webhooks specification,
//! to an endpoint a tenant registered. A tenant chooses the URL, so the request must not be steerable at
//! Herald's own network: the URL must be https to a public host, redirects are never followed, and the
//! addresses a name resolves to are checked when connecting (a name that resolves to a private address, or
//! is re-pointed at one after it was registered, is refused then, not only when it was saved).

use super::http_errors::{client_builder, error_detail, retry_after, transport_error};

mod delivery;
use crate::domain::Timestamp;
use crate::domain::address::{WebhookPolicy, is_internal};
use crate::domain::delivery::{FailureKind, SendError};
use crate::domain::webhook::{WebhookEndpoint, sign};
pub use delivery::WebhookDelivery;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, StatusCode};
use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

const USER_AGENT: &str = concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Refuses, at connection time, a name that resolves to an internal address.
#[derive(Debug, Clone, Copy)]
struct PublicAddressesOnly {
    allow_loopback: bool,
}

/// Why a connection was not made: the name resolved to an address webhooks may not reach.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, an internal address")]
struct InternalAddress {
    host: String,
    ip: IpAddr,
}

fn reachable(ip: IpAddr, allow_loopback: bool) -> bool {
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    (allow_loopback && mapped.is_loopback()) || !is_internal(mapped)
}

impl Resolve for PublicAddressesOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Every address, not only the first: the connector may try any of them.
            if let Some(internal) = addresses
                .iter()
                .find(|address| !reachable(address.ip(), allow_loopback))
            {
                let refused: Box<dyn Error + Send + Sync> = Box::new(InternalAddress {
                    host,
                    ip: internal.ip(),
                });
                return Err(refused);
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// Why a delivery was not taken, and what it says about the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub error: SendError,
    pub said_by: RefusedBy,
}

/// Who refused a delivery: what the endpoint's record learns from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// Herald, before any request: the body is not JSON, or the URL (or where its name points) is not
    /// allowed. Nothing is learnt about the endpoint's health.
    Herald,
    /// The endpoint failed to answer 2xx (or to answer at all): part of a run of failures.
    Endpoint,
    /// The endpoint answered 410 Gone: it asked never to be sent to again.
    EndpointGone,
}

impl Refusal {
    fn by_herald(error: SendError) -> Self {
        Self {
            error,
            said_by: RefusedBy::Herald,
        }
    }
}

/// Posts signed deliveries; one HTTP client for every send.
#[derive(Debug, Clone)]
pub struct WebhookPoster {
    client: Client,
    policy: WebhookPolicy,
}

impl WebhookPoster {
    pub fn new(
        allow_loopback: bool,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = client_builder(connect_timeout, timeout)
            .dns_resolver(Arc::new(PublicAddressesOnly { allow_loopback }))
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self {
            client,
            policy: WebhookPolicy::any_public_host(allow_loopback),
        })
    }

    /// POSTs `body` (JSON) to `endpoint` as message `message_id` (the same for every attempt at one
    /// notification, so the receiver can drop a repeat), signed at `now` with every secret in use.
    pub async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        message_id: &str,
        body: &str,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let url = self.policy.check(&endpoint.spec.url).map_err(|why| {
            Refusal::by_herald(SendError::new(
                FailureKind::Recipient,
                "endpoint_not_allowed",
                why,
            ))
        })?;
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(body) {
            let detail = format!("the rendered body is not JSON: {error}");
            return Err(Refusal::by_herald(SendError::new(
                FailureKind::Recipient,
                "invalid_body",
                detail,
            )));
        }
        let signed = sign(&endpoint.signing_secrets(now), message_id, now, body.as_bytes());
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &signed.id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", &signed.signature)
            .body(body.to_owned());
        let response = request.send().await.map_err(refused_connection)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after(response.headers());
        // A body that cannot be read leaves the status to speak for itself.
        let answer = response.text().await.unwrap_or_default();
        let (kind, code) = status_meaning(status);
        Err(Refusal {
            error: SendError::new(kind, code, error_detail(status, &answer)).retry_after(wait),
            said_by: if status == StatusCode::GONE {
                RefusedBy::EndpointGone
            } else {
                RefusedBy::Endpoint
            },
        })
    }
}

/// What an endpoint's non-2xx answer means. The endpoint is the tenant's own system: whatever it answers
/// but 410 may be fixed on its side, so it is retried on the schedule, and an endpoint that keeps failing
/// is disabled after a while rather than each message given up at once.
fn status_meaning(status: StatusCode) -> (FailureKind, &'static str) {
    match status.as_u16() {
        410 => (FailureKind::Recipient, "endpoint_gone"),
        429 => (FailureKind::Throttled, "throttled"),
        300..=399 => (FailureKind::Transient, "redirect"),
        400..=499 => (FailureKind::Transient, "client_error"),
        _ => (FailureKind::Transient, "server_error"),
    }
}

/// A transport failure, or a refusal of the resolver's: an internal address is the endpoint's fault, and
/// trying again will not change where its name points.
fn refused_connection(error: reqwest::Error) -> Refusal {
    let mut cause = error.source();
    while let Some(inner) = cause {
        if let Some(internal) = inner.downcast_ref::<InternalAddress>() {
            return Refusal::by_herald(SendError::new(
                FailureKind::Recipient,
                "endpoint_not_allowed",
                internal.to_string(),
            ));
        }
        cause = inner.source();
    }
    Refusal {
        error: transport_error(error),
        said_by: RefusedBy::Endpoint,
    }
}

#[cfg(test)]
mod tests;
