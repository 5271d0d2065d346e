//! AWS implementations of the [ports](crate::ports).

pub mod dynamodb;
pub mod sqs;

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
