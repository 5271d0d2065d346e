//! AWS implementations of the [ports](crate::ports), and in-memory ones (with failpoints) for tests.

pub mod country_limited;
pub mod dynamodb;
mod http_errors;
pub mod memory;
pub mod rate_limit;
pub mod ses;
pub mod slack;
pub mod sns;
pub mod sns_push;
pub mod sqs;
pub mod suppression_checked;
pub mod webhook;

use crate::domain::delivery::{FailureKind, SendError};
use crate::ports::BackendError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes that mean "try again later" on any AWS service.
const RETRYABLE_CODES: [&str; 10] = [
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestThrottled",
    "KmsThrottled",
    "KMS.ThrottlingException",
];

/// Classifies an SDK error: transport failures, timeouts, throttling and 5xx are retryable; anything
/// else (access denied, a missing table or queue) is configuration a person must fix.
pub(crate) fn backend_error<E>(
    service: &'static str,
    operation: &'static str,
    error: &SdkError<E, HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (retryable, message) = match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            let code = err.code().unwrap_or("Unknown");
            // A 5xx is the service failing, whatever its code says (`InternalFailure`, for one).
            let retryable = RETRYABLE_CODES.contains(&code)
                || code.ends_with("ServerError")
                || context.raw().status().is_server_error();
            (
                retryable,
                format!("{code}: {}", err.message().unwrap_or("no message")),
            )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => (
            true,
            aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
        ),
        _ => (
            false,
            aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
        ),
    };
    BackendError {
        service,
        operation,
        message,
        retryable,
    }
}

/// Whether an error code means "slow down": the provider is up and asks for fewer calls.
fn is_throttling_code(code: &str) -> bool {
    code.contains("Throttl")
        || matches!(
            code,
            "TooManyRequestsException" | "LimitExceededException" | "Throttled" | "ThrottledException"
        )
}

/// Whether an error code means "busy or broken right now" on any AWS service.
fn is_transient_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
        || code.ends_with("ServerError")
        || matches!(
            code,
            "InternalFailure" | "ServiceUnavailableException" | "RequestTimeout" | "RequestTimeoutException"
        )
}

/// Classifies an SDK error from a channel provider (SES, SNS) as a [`SendError`] whose code is the
/// provider's error code and whose detail is its message.
///
/// In order: a 429 or a throttling code is [`FailureKind::Throttled`] and a 5xx is
/// [`FailureKind::Transient`], whatever the service's own codes say; then `by_code`, the service's own table. Anything else (401 and 403, `AccessDenied` and the
/// other auth codes, and codes nobody listed) is [`FailureKind::Configuration`]: retried and finally
/// dead-lettered, so a person can look, rather than dropped. A failure to connect is Transient (nothing was
/// sent); a timeout after sending and an unreadable answer are Ambiguous (it may have been sent); a request
/// the SDK could not even build is Configuration.
pub(crate) fn send_error<E>(
    error: &SdkError<E, HttpResponse>,
    by_code: impl Fn(&str) -> Option<FailureKind>,
) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let described = || aws_smithy_types::error::display::DisplayErrorContext(error).to_string();
    match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            let status = context.raw().status();
            let code = err
                .code()
                .map_or_else(|| status.as_u16().to_string(), str::to_owned);
            let kind = if status.as_u16() == 429 || is_throttling_code(&code) {
                FailureKind::Throttled
            } else if status.is_server_error() || is_transient_code(&code) {
                FailureKind::Transient
            } else if let Some(kind) = by_code(&code) {
                kind
            } else {
                FailureKind::Configuration
            };
            let detail = err.message().map_or_else(described, str::to_owned);
            SendError::new(kind, code, detail)
        }
        // The attempt timed out after the request went out: the provider may have accepted it.
        SdkError::TimeoutError(_) => SendError::new(FailureKind::Ambiguous, "timeout", described()),
        SdkError::DispatchFailure(failure) => {
            let code = if failure.is_timeout() {
                "timeout"
            } else {
                "dispatch_failure"
            };
            SendError::new(FailureKind::Transient, code, described())
        }
        // The answer came but could not be read (or the connection dropped while reading it): the request
        // was processed, whatever its outcome.
        SdkError::ResponseError(_) => SendError::new(FailureKind::Ambiguous, "response_error", described()),
        _ => SendError::new(FailureKind::Configuration, "construction_failure", described()),
    }
}

/// The shared AWS configuration: region, credentials and `AWS_ENDPOINT_URL` from the environment, with
/// Herald's own timeouts and retry budget, so one slow call cannot eat a Lambda's whole deadline.
pub async fn load_aws_config(settings: &crate::config::AwsSettings) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;

    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_attempt_timeout(settings.attempt_timeout)
        .operation_timeout(settings.operation_timeout)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .load()
        .await
}
