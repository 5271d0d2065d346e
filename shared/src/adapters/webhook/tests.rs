//! The poster and the delivery against a local HTTP server standing in for a tenant's endpoint (`wiremock`).

use super::*;
use crate::adapters::memory::Fault;
use crate::adapters::memory::webhooks::MemoryWebhookEndpoints;
use crate::domain::delivery::{Outgoing, RenderedMessage, SendReceipt};
use crate::domain::webhook::{DisabledBy, EndpointSpec, RetiringSecret, SigningSecret};
use crate::domain::{EventId, NotificationId, TenantId};
use crate::ports::WebhookEndpointStore;
use serde_json::json;
use wiremock::matchers::{body_string, header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BODY: &str = r#"{"type":"order_created","data":{"order":"A-1"}}"#;

fn poster(allow_loopback: bool) -> WebhookPoster {
    WebhookPoster::new(allow_loopback, Duration::from_secs(2), Duration::from_secs(5)).unwrap()
}

fn endpoint(url: &str) -> WebhookEndpoint {
    let now = Timestamp::now();
    WebhookEndpoint {
        id: "billing".into(),
        spec: EndpointSpec::parse(&json!({ "url": url }), |_| Ok(())).unwrap(),
        secret: SigningSecret::generate().unwrap(),
        previous_secret: None,
        disabled_by: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    }
}

async fn endpoint_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/herald"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// An endpoint the test expects no request at.
async fn endpoint_never_called() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn posts_the_body_signed_with_every_secret_in_use() {
    let server = MockServer::start().await;
    let now = Timestamp::now();
    let mut target = endpoint(&format!("{}/hooks/herald", server.uri()));
    let previous = SigningSecret::generate().unwrap();
    target.previous_secret = Some(RetiringSecret {
        secret: previous.clone(),
        until: now.plus_seconds(3600),
    });
    let expected = sign(&[&target.secret, &previous], "ntf_1", now, BODY.as_bytes());
    Mock::given(method("POST"))
        .and(path("/hooks/herald"))
        .and(header("content-type", "application/json"))
        .and(header("webhook-id", "ntf_1"))
        .and(header(
            "webhook-timestamp",
            expected.timestamp.to_string().as_str(),
        ))
        .and(header_exists("webhook-signature"))
        .and(header_exists("user-agent"))
        .and(body_string(BODY))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    poster(true).post(&target, "ntf_1", BODY, now).await.unwrap();
    server.verify().await;
    // Read whole: wiremock's header matcher splits values at commas, and a signature has one per entry.
    let received = server.received_requests().await.unwrap();
    let signature = received[0]
        .headers
        .get("webhook-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(signature, expected.signature);
    assert_eq!(signature.split(' ').count(), 2);
}

#[tokio::test]
async fn gone_disables_and_every_other_refusal_is_retried() {
    let cases = [
        (
            ResponseTemplate::new(410),
            FailureKind::Recipient,
            "endpoint_gone",
            true,
        ),
        (
            ResponseTemplate::new(500),
            FailureKind::Transient,
            "server_error",
            false,
        ),
        (
            ResponseTemplate::new(401),
            FailureKind::Transient,
            "client_error",
            false,
        ),
        (
            ResponseTemplate::new(307).insert_header("location", "http://169.254.169.254/"),
            FailureKind::Transient,
            "redirect",
            false,
        ),
    ];
    for (response, kind, code, gone) in cases {
        let server = endpoint_answering(response).await;
        let target = endpoint(&format!("{}/hooks/herald", server.uri()));
        let refusal = poster(true)
            .post(&target, "ntf_1", BODY, Timestamp::now())
            .await
            .unwrap_err();
        assert_eq!(
            (
                refusal.error.kind,
                refusal.error.code.as_str(),
                refusal.said_by == RefusedBy::EndpointGone
            ),
            (kind, code, gone)
        );
        server.verify().await;
    }
}

#[tokio::test]
async fn a_throttled_endpoint_says_when_to_come_back() {
    let server = endpoint_answering(ResponseTemplate::new(429).insert_header("retry-after", "30")).await;
    let target = endpoint(&format!("{}/hooks/herald", server.uri()));
    let refusal = poster(true)
        .post(&target, "ntf_1", BODY, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(refusal.error.kind, FailureKind::Throttled);
    assert_eq!(refusal.error.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_never_sent() {
    let server = endpoint_never_called().await;
    let target = endpoint(&format!("{}/hooks/herald", server.uri()));
    let refusal = poster(true)
        .post(&target, "ntf_1", "order A-1 <b>", Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(
        (refusal.error.kind, refusal.error.code.as_str()),
        (FailureKind::Recipient, "invalid_body")
    );
    server.verify().await;
}

/// A name `/etc/hosts` maps to a loopback address other than `localhost` (which the URL check refuses by
/// name): the machine's own name, on the machines Herald is tested on.
fn loopback_name_from_hosts_file() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts");
    hosts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address: std::net::IpAddr = fields.next()?.parse().ok()?;
            address.is_loopback().then_some(fields)
        })
        .flatten()
        .find(|name| !name.starts_with('#') && !name.to_ascii_lowercase().contains("localhost"))
        .map(str::to_owned)
        .expect("/etc/hosts maps some name besides localhost to loopback (this machine's own name)")
}

#[tokio::test]
async fn a_name_that_resolves_to_an_internal_address_is_refused_when_connecting() {
    let server = endpoint_never_called().await;
    let port = server.address().port();
    // A name that passes the URL check (not `localhost`) and resolves to loopback: refused at connection time.
    let name = loopback_name_from_hosts_file();
    let target = endpoint(&format!("https://{name}:{port}/hooks/herald"));
    let refusal = poster(false)
        .post(&target, "ntf_1", BODY, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(
        (refusal.error.kind, refusal.error.code.as_str()),
        (FailureKind::Recipient, "endpoint_not_allowed")
    );
    assert!(
        refusal.error.detail.contains("internal address"),
        "{}",
        refusal.error.detail
    );
    // An internal address written as such, or a name loopback by definition, is refused before any
    // connection.
    for url in [
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "http://example.com/hook",
    ] {
        let refusal = poster(false)
            .post(&endpoint(url), "ntf_1", BODY, Timestamp::now())
            .await
            .unwrap_err();
        assert_eq!(refusal.error.code, "endpoint_not_allowed", "{url}");
    }
    server.verify().await;
}

/// A delivery to endpoint `billing` of tenant `acme`, registered at `url`, failing for a day at most.
async fn delivery_to(url: &str) -> WebhookDelivery<MemoryWebhookEndpoints> {
    let endpoints = MemoryWebhookEndpoints::default();
    let spec = EndpointSpec::parse(&json!({ "url": url }), |_| Ok(())).unwrap();
    let secret = SigningSecret::generate().unwrap();
    endpoints
        .put_endpoint(
            &TenantId::new("acme"),
            "billing",
            &spec,
            &secret,
            Timestamp::now(),
        )
        .await
        .unwrap();
    WebhookDelivery::new(poster(true), endpoints, Duration::from_secs(86_400))
}

async fn deliver(
    delivery: &WebhookDelivery<MemoryWebhookEndpoints>,
    at: Timestamp,
) -> Result<SendReceipt, SendError> {
    let tenant = TenantId::new("acme");
    let notification_id = NotificationId::for_rule(&EventId::generate(at), "webhook");
    let message = RenderedMessage {
        text: Some(BODY.to_owned()),
        ..RenderedMessage::default()
    };
    let outgoing = Outgoing {
        tenant: &tenant,
        notification_id: &notification_id,
        user_id: None,
        to: "billing",
        message: &message,
    };
    delivery.deliver(&outgoing, at).await
}

async fn stored(delivery: &WebhookDelivery<MemoryWebhookEndpoints>) -> WebhookEndpoint {
    delivery
        .endpoints()
        .endpoint(&TenantId::new("acme"), "billing")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn failures_run_until_the_window_ends_then_the_endpoint_is_disabled() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;
    let delivery = delivery_to(&format!("{}/hooks/herald", server.uri())).await;
    let start = Timestamp::now();

    let first = deliver(&delivery, start).await.unwrap_err();
    assert_eq!(first.kind, FailureKind::Transient);
    assert_eq!(stored(&delivery).await.failing_since, Some(start));
    let later = deliver(&delivery, start.plus_seconds(3600)).await.unwrap_err();
    assert_eq!(later.kind, FailureKind::Transient);
    assert_eq!(
        stored(&delivery).await.failing_since,
        Some(start),
        "a run starts at its first failure"
    );

    let last = deliver(&delivery, start.plus_seconds(86_400)).await.unwrap_err();
    assert_eq!(
        (last.kind, last.code.as_str()),
        (FailureKind::Recipient, "endpoint_disabled")
    );
    assert_eq!(stored(&delivery).await.disabled_by, Some(DisabledBy::Failing));
    // Disabled: the next delivery is refused without a request (the mock expects three in all).
    let refused = deliver(&delivery, start.plus_seconds(86_401)).await.unwrap_err();
    assert_eq!(refused.code, "endpoint_disabled");
    server.verify().await;
}

#[tokio::test]
async fn a_success_ends_a_run_of_failures_and_410_disables() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    let delivery = delivery_to(&format!("{}/hooks/herald", server.uri())).await;
    let now = Timestamp::now();

    deliver(&delivery, now).await.unwrap_err();
    assert_eq!(stored(&delivery).await.failing_since, Some(now));
    let receipt = deliver(&delivery, now).await.unwrap();
    assert!(receipt.provider_message_id.is_some());
    assert_eq!(stored(&delivery).await.failing_since, None);
    let gone = deliver(&delivery, now).await.unwrap_err();
    assert_eq!(
        (gone.kind, gone.code.as_str()),
        (FailureKind::Recipient, "endpoint_gone")
    );
    assert_eq!(stored(&delivery).await.disabled_by, Some(DisabledBy::Gone));
}

#[tokio::test]
async fn an_unknown_endpoint_fails_and_an_unreadable_one_waits() {
    let delivery = delivery_to("https://example.com/never-called").await;
    assert!(
        delivery
            .endpoints()
            .delete_endpoint(&TenantId::new("acme"), "billing")
            .await
            .unwrap()
    );
    let missing = deliver(&delivery, Timestamp::now()).await.unwrap_err();
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (FailureKind::Recipient, "endpoint_not_found")
    );

    delivery.endpoints().failpoints.set("endpoint", Fault::Fail, 1);
    let unreadable = deliver(&delivery, Timestamp::now()).await.unwrap_err();
    assert!(unreadable.kind.retryable(), "{unreadable:?}");
}

#[test]
fn only_public_addresses_are_reachable() {
    for public in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] {
        assert!(reachable(public.parse().unwrap(), false), "{public}");
    }
    for internal in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ] {
        assert!(!reachable(internal.parse().unwrap(), false), "{internal}");
    }
    assert!(reachable("127.0.0.1".parse().unwrap(), true));
    assert!(!reachable("10.1.2.3".parse().unwrap(), true));
}
