//! The sender against an SES client mocked at the SDK boundary (`aws-smithy-mocks`).

use super::*;
use crate::test_fixtures::SendTo;
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::error::ErrorMetadata;
use aws_sdk_sesv2::operation::get_account::GetAccountOutput;
use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailInput, SendEmailOutput};
use aws_sdk_sesv2::types::error::{
    AccountSuspendedException, BadRequestException, LimitExceededException,
    MailFromDomainNotVerifiedException, MessageRejected, NotFoundException, SendingPausedException,
    TooManyRequestsException,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use std::time::Duration;

const FROM: &str = "notifications@herald.example.com";
const TO: &str = "ada@example.com";
const CONFIGURATION_SET: &str = "herald-events";

/// A sender on a client whose every call must meet `rules` in order. The SDK's own retries are off,
/// so the number of calls a rule sees is the number the sender made.
fn sender(rules: &[&Rule], configuration_set: Option<&str>) -> SesSender {
    let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, rules, |config| {
        config.retry_config(RetryConfig::disabled())
    });
    SesSender::new(client, FROM.to_owned(), configuration_set.map(str::to_owned))
}

fn message() -> RenderedMessage {
    RenderedMessage {
        subject: Some("Order #444 shipped".into()),
        text: Some("Your order is on its way.".into()),
        html: Some("<p>Your order is on its way.</p>".into()),
        ..RenderedMessage::default()
    }
}

fn accepted() -> SendEmailOutput {
    SendEmailOutput::builder()
        .message_id("0100018f-ses-message-id")
        .build()
}

/// The part's text, if it is there and declared UTF-8.
fn utf8(content: Option<&Content>) -> Option<&str> {
    content
        .filter(|content| content.charset() == Some("UTF-8"))
        .map(Content::data)
}

fn has_expected_shape(request: &SendEmailInput, configuration_set: Option<&str>) -> bool {
    let simple = request.content().and_then(EmailContent::simple);
    let body = simple.and_then(Message::body);
    request.from_email_address() == Some(FROM)
        && request.destination().map(Destination::to_addresses) == Some(&[TO.to_owned()][..])
        && request
            .destination()
            .is_some_and(|to| to.cc_addresses().is_empty() && to.bcc_addresses().is_empty())
        && utf8(simple.and_then(Message::subject)) == Some("Order #444 shipped")
        && utf8(body.and_then(Body::text)) == Some("Your order is on its way.")
        && utf8(body.and_then(Body::html)) == Some("<p>Your order is on its way.</p>")
        && request.configuration_set_name() == configuration_set
        && tagged_for_feedback(request)
}

/// Tagged with the tenant (`acme`, as `send_to` sends) and a notification id, for SES's events.
fn tagged_for_feedback(request: &SendEmailInput) -> bool {
    let tag = |name: &str| {
        request
            .email_tags()
            .iter()
            .find(|tag| tag.name() == name)
            .map(|tag| tag.value().to_owned())
    };
    tag(TENANT_TAG) == Some(tenant_tag_value(&crate::domain::TenantId::new("acme")))
        && tag(NOTIFICATION_TAG).is_some_and(|id| crate::domain::NotificationId::parse(&id).is_some())
        && request.email_tags().len() == 2
}

/// SES's modeled error for `code`, carrying the code in its metadata as the SDK's deserializer sets it.
fn modeled(code: &str) -> SendEmailError {
    let meta = ErrorMetadata::builder().code(code).message("test").build();
    match code {
        "MessageRejected" => {
            SendEmailError::MessageRejected(MessageRejected::builder().message("test").meta(meta).build())
        }
        "BadRequestException" => SendEmailError::BadRequestException(
            BadRequestException::builder().message("test").meta(meta).build(),
        ),
        "MailFromDomainNotVerifiedException" => SendEmailError::MailFromDomainNotVerifiedException(
            MailFromDomainNotVerifiedException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        "AccountSuspendedException" => SendEmailError::AccountSuspendedException(
            AccountSuspendedException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        "SendingPausedException" => SendEmailError::SendingPausedException(
            SendingPausedException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        "NotFoundException" => {
            SendEmailError::NotFoundException(NotFoundException::builder().message("test").meta(meta).build())
        }
        "TooManyRequestsException" => SendEmailError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        "LimitExceededException" => SendEmailError::LimitExceededException(
            LimitExceededException::builder()
                .message("test")
                .meta(meta)
                .build(),
        ),
        _ => SendEmailError::generic(meta),
    }
}

#[tokio::test]
async fn send_returns_the_ses_message_id_and_sends_the_whole_message() {
    let send = mock!(Client::send_email)
        .match_requests(|request| has_expected_shape(request, Some(CONFIGURATION_SET)))
        .then_output(accepted);

    let receipt = sender(&[&send], Some(CONFIGURATION_SET))
        .send_to(TO, &message())
        .await
        .unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("0100018f-ses-message-id")
    );
    assert_eq!(send.num_calls(), 1);
}

#[tokio::test]
async fn send_without_a_configuration_set_names_none() {
    let send = mock!(Client::send_email)
        .match_requests(|request| has_expected_shape(request, None))
        .then_output(accepted);

    sender(&[&send], None).send_to(TO, &message()).await.unwrap();

    assert_eq!(send.num_calls(), 1);
}

#[tokio::test]
async fn a_text_only_email_has_no_html_part() {
    let send = mock!(Client::send_email)
        .match_requests(|request| {
            let body = request
                .content()
                .and_then(EmailContent::simple)
                .and_then(Message::body);
            utf8(body.and_then(Body::text)) == Some("Your order is on its way.")
                && body.and_then(Body::html).is_none()
        })
        .then_output(accepted);
    let text_only = RenderedMessage {
        html: None,
        ..message()
    };

    sender(&[&send], None).send_to(TO, &text_only).await.unwrap();

    assert_eq!(send.num_calls(), 1);
}

#[tokio::test]
async fn modeled_errors_are_classified() {
    let cases = [
        ("MessageRejected", FailureKind::Recipient),
        ("BadRequestException", FailureKind::Recipient),
        ("MailFromDomainNotVerifiedException", FailureKind::Configuration),
        ("AccountSuspendedException", FailureKind::Configuration),
        ("SendingPausedException", FailureKind::Configuration),
        ("NotFoundException", FailureKind::Configuration),
        ("AccessDeniedException", FailureKind::Configuration),
        ("TooManyRequestsException", FailureKind::Throttled),
        ("LimitExceededException", FailureKind::Throttled),
        ("ThrottlingException", FailureKind::Throttled),
    ];
    for (code, kind) in cases {
        let failing = mock!(Client::send_email).then_error(move || modeled(code));

        let error = sender(&[&failing], None)
            .send_to(TO, &message())
            .await
            .unwrap_err();

        assert_eq!(error.kind, kind, "{code}: {error}");
        assert_eq!((error.code.as_str(), error.detail.as_str()), (code, "test"));
        assert_eq!(failing.num_calls(), 1);
    }
}

#[tokio::test]
async fn http_errors_are_classified_by_the_sdks_own_parser() {
    // Raw responses, read by the SDK's own (restJson1) error deserializer.
    let cases = [
        (400, "MessageRejected", FailureKind::Recipient),
        (400, "BadRequestException", FailureKind::Recipient),
        (
            400,
            "MailFromDomainNotVerifiedException",
            FailureKind::Configuration,
        ),
        (400, "AccountSuspendedException", FailureKind::Configuration),
        (400, "SendingPausedException", FailureKind::Configuration),
        (404, "NotFoundException", FailureKind::Configuration),
        (403, "AccessDeniedException", FailureKind::Configuration),
        (403, "UnrecognizedClientException", FailureKind::Configuration),
        (429, "TooManyRequestsException", FailureKind::Throttled),
        (400, "LimitExceededException", FailureKind::Throttled),
        (400, "ThrottlingException", FailureKind::Throttled),
        (500, "InternalFailure", FailureKind::Transient),
        (503, "ServiceUnavailable", FailureKind::Transient),
    ];
    for (status, code, kind) in cases {
        let body = serde_json::json!({ "__type": code, "message": format!("{code} (test)") });
        let failing = mock!(Client::send_email)
            .sequence()
            .http_status(status, Some(body.to_string()))
            .build();

        let error = sender(&[&failing], None)
            .send_to(TO, &message())
            .await
            .unwrap_err();

        assert_eq!(error.kind, kind, "{status} {code}: {error}");
        assert_eq!(error.code, code);
        assert_eq!(error.detail, format!("{code} (test)"));
    }
}

#[tokio::test]
async fn a_5xx_without_an_error_code_is_transient_and_named_by_its_status() {
    let failing = mock!(Client::send_email)
        .sequence()
        .http_status(502, Some("<html>Bad Gateway</html>".into()))
        .build();

    let error = sender(&[&failing], None)
        .send_to(TO, &message())
        .await
        .unwrap_err();

    assert_eq!(
        (error.kind, error.code.as_str()),
        (FailureKind::Transient, "502"),
        "{error}"
    );
}

/// A connector whose requests never end (`hang`) or fail at once, as a refused connection does.
#[derive(Debug)]
struct Broken {
    hang: bool,
}

impl HttpConnector for Broken {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        if self.hang {
            HttpConnectorFuture::new(std::future::pending())
        } else {
            HttpConnectorFuture::ready(Err(ConnectorError::io("connection refused".into())))
        }
    }
}

/// A sender whose requests go to a [`Broken`] connector, with a short attempt timeout.
fn broken_sender(rule: &Rule, hang: bool) -> SesSender {
    let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [rule], |config| {
        config
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(100))
                    .build(),
            )
            .http_client(http_client_fn(move |_, _| {
                SharedHttpConnector::new(Broken { hang })
            }))
    });
    SesSender::new(client, FROM.to_owned(), None)
}

#[tokio::test]
async fn a_timeout_after_sending_is_ambiguous_and_a_transport_failure_transient() {
    for (hang, kind, code) in [
        (true, FailureKind::Ambiguous, "timeout"),
        (false, FailureKind::Transient, "dispatch_failure"),
    ] {
        // The rule only lets the request through to the broken connector; its response is never read.
        let through = mock!(Client::send_email)
            .sequence()
            .http_status(200, None)
            .build();

        let error = broken_sender(&through, hang)
            .send_to(TO, &message())
            .await
            .unwrap_err();

        assert_eq!((error.kind, error.code.as_str()), (kind, code), "{error}");
        assert_eq!(through.num_calls(), 1);
    }
}

#[tokio::test]
async fn a_bad_address_never_reaches_ses() {
    let unused = mock!(Client::send_email).then_output(accepted);
    let sender = sender(&[&unused], None);

    for bad in [
        "ada",
        "Ada <ada@example.com>",
        "ada@example.com\r\nBcc: eve@example.com",
    ] {
        let error = sender.send_to(bad, &message()).await.unwrap_err();

        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Recipient, "invalid_address")
        );
    }
    assert_eq!(unused.num_calls(), 0);
}

#[tokio::test]
async fn an_email_without_a_subject_or_a_body_is_never_sent() {
    let unused = mock!(Client::send_email).then_output(accepted);
    let sender = sender(&[&unused], None);
    let no_subject = RenderedMessage {
        subject: None,
        ..message()
    };
    let no_body = RenderedMessage {
        text: None,
        html: None,
        ..message()
    };

    for empty in [no_subject, no_body] {
        let error = sender.send_to(TO, &empty).await.unwrap_err();

        assert_eq!(
            (error.kind, error.code.as_str()),
            (FailureKind::Recipient, "empty_message")
        );
    }
    assert_eq!(unused.num_calls(), 0);
}

fn account(max_send_rate: Option<f64>) -> GetAccountOutput {
    let quota = max_send_rate.map(|rate| {
        SendQuota::builder()
            .max_send_rate(rate)
            .max24_hour_send(50_000.0)
            .sent_last24_hours(12.0)
            .build()
    });
    GetAccountOutput::builder()
        .set_send_quota(quota)
        .production_access_enabled(true)
        .build()
}

fn rate_client(rule: &Rule) -> Client {
    mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [rule], |config| {
        config.retry_config(RetryConfig::disabled())
    })
}

#[tokio::test]
async fn the_send_rate_is_ses_s_max_send_rate_in_whole_sends() {
    for (max_send_rate, expected) in [(14.0, 14), (1.0, 1), (200.7, 200), (0.5, 1)] {
        let get = mock!(Client::get_account).then_output(move || account(Some(max_send_rate)));

        let rate = account_send_rate_or_fallback(&rate_client(&get)).await;

        assert_eq!(rate.get(), expected, "MaxSendRate {max_send_rate}");
        assert_eq!(get.num_calls(), 1);
    }
}

#[tokio::test]
async fn without_an_answer_from_ses_the_send_rate_falls_back_to_one_a_second() {
    // A rule answers once, so each call gets its own.
    let failures: [fn() -> Rule; 4] = [
        || {
            let denied = r#"{"__type": "AccessDeniedException", "message": "no"}"#;
            mock!(Client::get_account)
                .sequence()
                .http_status(403, Some(denied.into()))
                .build()
        },
        || {
            mock!(Client::get_account)
                .sequence()
                .http_status(503, None)
                .build()
        },
        || mock!(Client::get_account).then_output(|| account(None)),
        || mock!(Client::get_account).then_output(|| account(Some(0.0))),
    ];

    for failure in failures {
        assert!(account_send_rate(&rate_client(&failure())).await.is_err());
        assert_eq!(
            account_send_rate_or_fallback(&rate_client(&failure())).await,
            FALLBACK_SEND_RATE
        );
    }
    assert_eq!(FALLBACK_SEND_RATE.get(), 1);
}

#[test]
fn the_sender_is_the_email_channel() {
    assert_eq!(sender(&[], None).channel(), Channel::Email);
}
