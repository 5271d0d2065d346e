//! The SMS channel, on SNS.

use crate::adapters::send_error;
use crate::domain::Channel;
use crate::domain::address::check_phone;
use crate::domain::delivery::{FailureKind, Outgoing, SendError, SendReceipt};
use crate::ports::Sender;
use crate::telemetry::record::provider_call;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

const SMS_TYPE: &str = "AWS.SNS.SMS.SMSType";
const SENDER_ID: &str = "AWS.SNS.SMS.SenderID";

#[derive(Debug, Clone)]
pub struct SnsSender {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSender {
    /// Sends as `sender_id` (the alphanumeric sender ID, where the destination country supports one).
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        Self { client, sender_id }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|error| SendError::new(FailureKind::Configuration, "invalid_request", error.to_string()))
}

/// SNS's own error codes (as it sends them, and as the SDK names them); throttling, 5xx and unknown codes
/// are left to [`send_error`].
pub(crate) fn classify(code: &str) -> Option<FailureKind> {
    match code {
        // The number, or the message for it: sending it again will not change SNS's mind.
        "InvalidParameter"
        | "InvalidParameterException"
        | "InvalidParameterValue"
        | "InvalidParameterValueException"
        | "ParameterValueInvalid"
        | "EndpointDisabled"
        | "EndpointDisabledException" => Some(FailureKind::Recipient),
        code if code.contains("OptedOut") => Some(FailureKind::Recipient),
        // Herald's permissions, or the KMS key SNS encrypts with: a person must fix them.
        "AuthorizationError"
        | "AuthorizationErrorException"
        | "InvalidSecurity"
        | "InvalidSecurityException" => Some(FailureKind::Configuration),
        code if code.starts_with("KMS") || code.starts_with("Kms") => Some(FailureKind::Configuration),
        "Throttled" | "ThrottledException" | "Throttling" => Some(FailureKind::Throttled),
        "InternalError" | "InternalErrorException" => Some(FailureKind::Transient),
        _ => None,
    }
}

impl Sender for SnsSender {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<SendReceipt, SendError> {
        let Outgoing { to, message, .. } = *outgoing;
        check_phone(to).map_err(|why| SendError::new(FailureKind::Recipient, "invalid_address", why))?;
        let Some(text) = message.text.as_deref().filter(|text| !text.trim().is_empty()) else {
            return Err(SendError::new(
                FailureKind::Recipient,
                "empty_message",
                "an SMS needs a text",
            ));
        };
        let mut request = self
            .client
            .publish()
            .phone_number(to)
            .message(text)
            .message_attributes(SMS_TYPE, string_attribute("Transactional")?);
        if let Some(sender_id) = self.sender_id.as_deref() {
            request = request.message_attributes(SENDER_ID, string_attribute(sender_id)?);
        }
        let output = provider_call(Channel::Sms, request.send())
            .await
            .map_err(|error| send_error(&error, classify))?;
        Ok(SendReceipt {
            provider_message_id: output.message_id().map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The sender against an SNS client mocked at the SDK boundary (`aws-smithy-mocks`).

    use super::*;
    use crate::domain::delivery::RenderedMessage;
    use crate::test_fixtures::SendTo;
    use aws_sdk_sns::config::retry::RetryConfig;
    use aws_sdk_sns::config::timeout::TimeoutConfig;
    use aws_sdk_sns::error::ErrorMetadata;
    use aws_sdk_sns::operation::publish::{PublishError, PublishInput, PublishOutput};
    use aws_sdk_sns::types::error::{
        AuthorizationErrorException, EndpointDisabledException, InternalErrorException,
        InvalidParameterException, InvalidParameterValueException, KmsAccessDeniedException,
        KmsDisabledException, KmsThrottlingException,
    };
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use std::time::Duration;

    const TO: &str = "+15555550100";
    const TEXT: &str = "Your code is 123456";

    /// A sender on a client whose every call must meet `rules` in order. The SDK's own retries are off,
    /// so the number of calls a rule sees is the number the sender made.
    fn sender(rules: &[&Rule], sender_id: Option<&str>) -> SnsSender {
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, rules, |config| {
            config.retry_config(RetryConfig::disabled())
        });
        SnsSender::new(client, sender_id.map(str::to_owned))
    }

    fn message() -> RenderedMessage {
        RenderedMessage {
            text: Some(TEXT.into()),
            ..RenderedMessage::default()
        }
    }

    fn accepted() -> PublishOutput {
        PublishOutput::builder().message_id("sns-message-id").build()
    }

    /// The attribute's value, if it is there and a String.
    fn attribute<'a>(request: &'a PublishInput, name: &str) -> Option<&'a str> {
        request
            .message_attributes()?
            .get(name)
            .filter(|value| value.data_type() == "String")
            .and_then(MessageAttributeValue::string_value)
    }

    fn has_expected_shape(request: &PublishInput, sender_id: Option<&str>) -> bool {
        let attributes = request
            .message_attributes()
            .map_or(0, std::collections::HashMap::len);
        request.phone_number() == Some(TO)
            && request.message() == Some(TEXT)
            && request.topic_arn().is_none()
            && request.target_arn().is_none()
            && attribute(request, SMS_TYPE) == Some("Transactional")
            && attribute(request, SENDER_ID) == sender_id
            && attributes == 1 + usize::from(sender_id.is_some())
    }

    /// SNS's modeled error for `code` (the code SNS sends), carrying the code in its metadata as the
    /// SDK's deserializer sets it.
    fn modeled(code: &str) -> PublishError {
        let meta = ErrorMetadata::builder().code(code).message("test").build();
        match code {
            "InvalidParameter" => PublishError::InvalidParameterException(
                InvalidParameterException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            "ParameterValueInvalid" => PublishError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            "EndpointDisabled" => PublishError::EndpointDisabledException(
                EndpointDisabledException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            "AuthorizationError" => PublishError::AuthorizationErrorException(
                AuthorizationErrorException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            "KMSAccessDenied" => PublishError::KmsAccessDeniedException(
                KmsAccessDeniedException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            "KMSDisabled" => PublishError::KmsDisabledException(
                KmsDisabledException::builder().message("test").meta(meta).build(),
            ),
            "KMSThrottling" => PublishError::KmsThrottlingException(
                KmsThrottlingException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            "InternalError" => PublishError::InternalErrorException(
                InternalErrorException::builder()
                    .message("test")
                    .meta(meta)
                    .build(),
            ),
            _ => PublishError::generic(meta),
        }
    }

    /// An awsQuery error response, as SNS sends it.
    fn error_body(code: &str) -> String {
        format!(
            r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
                 <Error><Type>Sender</Type><Code>{code}</Code><Message>{code} (test)</Message></Error>
                 <RequestId>8d2f5c7e-0000-0000-0000-000000000000</RequestId>
               </ErrorResponse>"#
        )
    }

    #[tokio::test]
    async fn send_returns_the_sns_message_id_and_publishes_a_transactional_sms() {
        let publish = mock!(Client::publish)
            .match_requests(|request| has_expected_shape(request, None))
            .then_output(accepted);

        let receipt = sender(&[&publish], None).send_to(TO, &message()).await.unwrap();

        assert_eq!(receipt.provider_message_id.as_deref(), Some("sns-message-id"));
        assert_eq!(publish.num_calls(), 1);
    }

    #[tokio::test]
    async fn send_names_the_sender_id_when_one_is_configured() {
        let publish = mock!(Client::publish)
            .match_requests(|request| has_expected_shape(request, Some("HERALD")))
            .then_output(accepted);

        sender(&[&publish], Some("HERALD"))
            .send_to(TO, &message())
            .await
            .unwrap();

        assert_eq!(publish.num_calls(), 1);
    }

    #[tokio::test]
    async fn modeled_errors_are_classified() {
        let cases = [
            ("InvalidParameter", FailureKind::Recipient),
            ("ParameterValueInvalid", FailureKind::Recipient),
            ("EndpointDisabled", FailureKind::Recipient),
            ("PhoneNumberOptedOut", FailureKind::Recipient),
            ("AuthorizationError", FailureKind::Configuration),
            ("KMSAccessDenied", FailureKind::Configuration),
            ("KMSDisabled", FailureKind::Configuration),
            ("AccessDenied", FailureKind::Configuration),
            ("KMSThrottling", FailureKind::Throttled),
            ("Throttled", FailureKind::Throttled),
            ("Throttling", FailureKind::Throttled),
            ("InternalError", FailureKind::Transient),
        ];
        for (code, kind) in cases {
            let failing = mock!(Client::publish).then_error(move || modeled(code));

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
        // Raw responses, read by the SDK's own (awsQuery XML) error deserializer.
        let cases = [
            (400, "InvalidParameter", FailureKind::Recipient),
            (400, "ParameterValueInvalid", FailureKind::Recipient),
            (400, "EndpointDisabled", FailureKind::Recipient),
            (400, "OptedOut", FailureKind::Recipient),
            (403, "AuthorizationError", FailureKind::Configuration),
            (403, "InvalidClientTokenId", FailureKind::Configuration),
            (400, "KMSAccessDenied", FailureKind::Configuration),
            (400, "KMSOptInRequired", FailureKind::Configuration),
            (400, "KMSThrottling", FailureKind::Throttled),
            (400, "Throttling", FailureKind::Throttled),
            (429, "Throttled", FailureKind::Throttled),
            (500, "InternalError", FailureKind::Transient),
            (503, "ServiceUnavailable", FailureKind::Transient),
        ];
        for (status, code, kind) in cases {
            let failing = mock!(Client::publish)
                .sequence()
                .http_status(status, Some(error_body(code)))
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

    #[tokio::test]
    async fn a_timeout_after_sending_is_ambiguous_and_a_transport_failure_transient() {
        for (hang, kind, code) in [
            (true, FailureKind::Ambiguous, "timeout"),
            (false, FailureKind::Transient, "dispatch_failure"),
        ] {
            // The rule only lets the request through to the broken connector; its response is never read.
            let through = mock!(Client::publish).sequence().http_status(200, None).build();
            let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&through], |config| {
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

            let error = SnsSender::new(client, None)
                .send_to(TO, &message())
                .await
                .unwrap_err();

            assert_eq!((error.kind, error.code.as_str()), (kind, code), "{error}");
            assert_eq!(through.num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn a_bad_number_never_reaches_sns() {
        let unused = mock!(Client::publish).then_output(accepted);
        let sender = sender(&[&unused], None);

        for bad in ["15555550100", "+1 555 555 0100", "+0123", "ada@example.com"] {
            let error = sender.send_to(bad, &message()).await.unwrap_err();

            assert_eq!(
                (error.kind, error.code.as_str()),
                (FailureKind::Recipient, "invalid_address")
            );
        }
        assert_eq!(unused.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_message_without_text_is_never_sent() {
        let unused = mock!(Client::publish).then_output(accepted);
        let sender = sender(&[&unused], None);

        for empty in [None, Some(String::new()), Some("  \n".to_owned())] {
            let message = RenderedMessage {
                text: empty,
                subject: Some("ignored".into()),
                ..RenderedMessage::default()
            };
            let error = sender.send_to(TO, &message).await.unwrap_err();

            assert_eq!(
                (error.kind, error.code.as_str()),
                (FailureKind::Recipient, "empty_message")
            );
        }
        assert_eq!(unused.num_calls(), 0);
    }

    #[test]
    fn the_sender_is_the_sms_channel() {
        assert_eq!(sender(&[], None).channel(), Channel::Sms);
    }
}
