//! The Slack channel: incoming webhooks, over HTTPS.

use super::http_errors::{client_builder, error_detail, retry_after, transport_error};
use crate::domain::Channel;
use crate::domain::address::WebhookPolicy;
use crate::domain::delivery::{FailureKind, Outgoing, SendError, SendReceipt};
use crate::ports::Sender;
use crate::telemetry::record::provider_call;
use reqwest::{Client, StatusCode};
use serde_json::{Map, Value};
use std::time::Duration;

/// Slack's refusals are short snake_case tokens (`no_service`, `invalid_payload`); longer bodies are not.
const MAX_TOKEN_LEN: usize = 64;

#[derive(Debug, Clone)]
pub struct SlackSender {
    client: Client,
    policy: WebhookPolicy,
}

impl SlackSender {
    /// One HTTP client for every send.
    pub fn new(
        policy: WebhookPolicy,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = client_builder(connect_timeout, timeout).build()?;
        Ok(Self { client, policy })
    }
}

/// `{"text": …, "blocks": …}`, blocks only when the template has them.
fn payload(text: &str, blocks: Option<&Value>) -> Value {
    let mut payload = Map::new();
    payload.insert("text".into(), Value::String(text.to_owned()));
    if let Some(blocks) = blocks {
        payload.insert("blocks".into(), blocks.clone());
    }
    Value::Object(payload)
}

/// Slack's body when it is one of its error tokens, else the status.
fn error_code(status: StatusCode, body: &str) -> String {
    let body = body.trim();
    let token = !body.is_empty()
        && body.len() <= MAX_TOKEN_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if token {
        body.to_owned()
    } else {
        status.as_u16().to_string()
    }
}

/// What a non-2xx answer means.
fn status_kind(status: StatusCode) -> FailureKind {
    match status.as_u16() {
        // Slack's rate limit: later, at its Retry-After, without using up a retry.
        429 => FailureKind::Throttled,
        // A timeout on Slack's side.
        408 => FailureKind::Transient,
        // The payload (400: `invalid_payload`, `invalid_blocks`, …), the token (403: `invalid_token`,
        // `action_prohibited`) or the hook itself (404, 410: `no_service`, `channel_not_found`,
        // `channel_is_archived`, `no_active_hooks`): the same request to the same URL will fail again.
        400..=499 => FailureKind::Recipient,
        // A redirect, never followed: Slack does not redirect webhooks, so the URL or a proxy is wrong.
        300..=399 => FailureKind::Configuration,
        _ => FailureKind::Transient,
    }
}

impl Sender for SlackSender {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let Outgoing { to, message, .. } = *outgoing;
        let url = self
            .policy
            .check(to)
            .map_err(|why| SendError::new(FailureKind::Recipient, "webhook_not_allowed", why))?;
        let Some(text) = message.text.as_deref().filter(|text| !text.trim().is_empty()) else {
            return Err(SendError::new(
                FailureKind::Recipient,
                "empty_message",
                "a Slack message needs a text",
            ));
        };
        let request = self
            .client
            .post(url)
            .json(&payload(text, message.blocks.as_ref()));
        let response = provider_call(Channel::Slack, request.send())
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(SendReceipt::default());
        }
        let kind = status_kind(status);
        if status.is_redirection() {
            let detail = format!("HTTP {status}: the webhook redirects, and redirects are not followed");
            return Err(SendError::new(kind, "redirect", detail));
        }
        let retry_after = retry_after(response.headers());
        // A body that cannot be read leaves the status to speak for itself.
        let body = response.text().await.unwrap_or_default();
        Err(
            SendError::new(kind, error_code(status, &body), error_detail(status, &body))
                .retry_after(retry_after),
        )
    }
}

#[cfg(test)]
mod tests {
    //! The sender against a local HTTP server standing in for Slack (`wiremock`).

    use super::*;
    use crate::adapters::http_errors::DETAIL_BODY_CHARS;
    use crate::domain::delivery::RenderedMessage;
    use crate::test_fixtures::SendTo;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const HOOK: &str = "/services/T000/B000/secret-token";

    /// A sender whose policy lets it reach the mock server on loopback.
    fn sender(timeout: Duration) -> SlackSender {
        SlackSender::new(WebhookPolicy::new(vec![], true), Duration::from_secs(2), timeout).unwrap()
    }

    fn blocks() -> Value {
        json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "*Deploy* of `api` finished" } }])
    }

    fn message() -> RenderedMessage {
        RenderedMessage {
            text: Some("Deploy of api finished".into()),
            blocks: Some(blocks()),
            ..RenderedMessage::default()
        }
    }

    /// The error the sender reports when the hook answers with `response`.
    async fn refusal(response: ResponseTemplate) -> SendError {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(HOOK))
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;

        let error = sender(Duration::from_secs(5))
            .send_to(&format!("{}{HOOK}", server.uri()), &message())
            .await
            .unwrap_err();
        server.verify().await;
        error
    }

    #[tokio::test]
    async fn send_posts_the_text_and_blocks_as_json() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(HOOK))
            .and(header("content-type", "application/json"))
            .and(body_json(
                json!({ "text": "Deploy of api finished", "blocks": blocks() }),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .expect(1)
            .mount(&server)
            .await;
        let metrics = crate::telemetry::record::testing::record();

        let receipt = sender(Duration::from_secs(5))
            .send_to(&format!("{}{HOOK}", server.uri()), &message())
            .await
            .unwrap();

        assert_eq!(
            receipt,
            SendReceipt {
                provider_message_id: None
            }
        );
        server.verify().await;
        assert_eq!(
            metrics.total("ProviderLatency", &[("Channel", "slack")]),
            1,
            "the webhook call was timed"
        );
    }

    #[tokio::test]
    async fn a_message_without_blocks_sends_only_its_text() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_json(json!({ "text": "Deploy of api finished" })))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .expect(1)
            .mount(&server)
            .await;
        let text_only = RenderedMessage {
            blocks: None,
            ..message()
        };

        sender(Duration::from_secs(5))
            .send_to(&format!("{}{HOOK}", server.uri()), &text_only)
            .await
            .unwrap();

        server.verify().await;
    }

    #[tokio::test]
    async fn an_invalid_payload_is_a_recipient_failure_named_by_slacks_token() {
        let error = refusal(ResponseTemplate::new(400).set_body_string("invalid_payload")).await;

        assert_eq!(error.kind, FailureKind::Recipient, "{error}");
        assert_eq!(error.code, "invalid_payload");
        assert_eq!(error.detail, "HTTP 400 Bad Request: invalid_payload");
        assert_eq!(error.retry_after, None);
    }

    #[tokio::test]
    async fn a_forbidden_missing_or_gone_hook_is_a_recipient_failure() {
        for (status, body) in [
            (403, "invalid_token"),
            (403, "action_prohibited"),
            (404, "no_service"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
            (410, "no_active_hooks"),
        ] {
            let error = refusal(ResponseTemplate::new(status).set_body_string(body)).await;

            assert_eq!(error.kind, FailureKind::Recipient, "{status} {body}: {error}");
            assert_eq!(error.code, body);
            assert!(error.detail.starts_with(&format!("HTTP {status}")), "{error}");
        }
    }

    #[tokio::test]
    async fn rate_limiting_is_throttling_and_carries_retry_after() {
        let error = refusal(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_string("rate_limited"),
        )
        .await;

        assert_eq!(error.kind, FailureKind::Throttled, "{error}");
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(error.code, "rate_limited");
    }

    #[tokio::test]
    async fn a_server_error_is_transient_named_by_its_status_with_its_body_truncated() {
        let page = format!(
            "<html><body>{}</body></html>",
            "Internal Server Error ".repeat(50)
        );

        let error = refusal(ResponseTemplate::new(500).set_body_string(page)).await;

        assert_eq!(error.kind, FailureKind::Transient, "{error}");
        assert_eq!(error.code, "500");
        assert!(
            error.detail.starts_with("HTTP 500 Internal Server Error: <html>"),
            "{error}"
        );
        let body_chars = error.detail.chars().count() - "HTTP 500 Internal Server Error: ".len();
        assert_eq!(
            body_chars,
            DETAIL_BODY_CHARS + 1,
            "200 characters and an ellipsis"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_is_a_configuration_failure() {
        let server = MockServer::start().await;
        Mock::given(path(HOOK))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", format!("{}/elsewhere", server.uri())),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(path("/elsewhere"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .expect(0)
            .mount(&server)
            .await;

        let error = sender(Duration::from_secs(5))
            .send_to(&format!("{}{HOOK}", server.uri()), &message())
            .await
            .unwrap_err();

        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Configuration, "redirect"),
            "{error}"
        );
        server.verify().await;
    }

    #[tokio::test]
    async fn a_response_slower_than_the_timeout_is_ambiguous() {
        let server = MockServer::start().await;
        Mock::given(path(HOOK))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;

        let error = sender(Duration::from_millis(200))
            .send_to(&format!("{}{HOOK}", server.uri()), &message())
            .await
            .unwrap_err();

        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Ambiguous, "timeout"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient_and_does_not_leak_the_url() {
        // A port nothing listens on: bound, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();

        let error = sender(Duration::from_secs(5))
            .send_to(&format!("http://127.0.0.1:{port}{HOOK}"), &message())
            .await
            .unwrap_err();

        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Transient, "connect"),
            "{error}"
        );
        assert!(!error.detail.contains("secret-token"), "{error}");
    }

    #[tokio::test]
    async fn a_url_the_policy_refuses_is_never_called() {
        let server = MockServer::start().await;
        Mock::given(path(HOOK))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let production = SlackSender::new(
            WebhookPolicy::new(vec!["hooks.slack.com".to_owned()], false),
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .unwrap();

        for refused in [
            "https://evil.example.com/x".to_owned(),
            format!("{}{HOOK}", server.uri()),
        ] {
            let error = production.send_to(&refused, &message()).await.unwrap_err();

            assert_eq!(
                (error.kind, error.code.as_str()),
                (FailureKind::Recipient, "webhook_not_allowed"),
                "{refused}: {error}"
            );
        }
        server.verify().await;
    }

    #[tokio::test]
    async fn a_message_without_text_is_never_sent() {
        let server = MockServer::start().await;
        Mock::given(path(HOOK))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let no_text = RenderedMessage {
            text: None,
            ..message()
        };

        let error = sender(Duration::from_secs(5))
            .send_to(&format!("{}{HOOK}", server.uri()), &no_text)
            .await
            .unwrap_err();

        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Recipient, "empty_message")
        );
        server.verify().await;
    }

    #[test]
    fn error_codes_are_slack_tokens_or_the_status() {
        assert_eq!(error_code(StatusCode::NOT_FOUND, "no_service\n"), "no_service");
        assert_eq!(
            error_code(StatusCode::BAD_REQUEST, "invalid blocks: see docs"),
            "400"
        );
        assert_eq!(error_code(StatusCode::BAD_GATEWAY, ""), "502");
        assert_eq!(error_code(StatusCode::BAD_REQUEST, &"a".repeat(65)), "400");
    }
}
