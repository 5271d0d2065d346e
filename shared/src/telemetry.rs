//! Logging set-up shared by every function.

/// Installs the Lambda runtime's tracing subscriber.
///
/// It writes JSON when the function's `LoggingConfig.LogFormat` is `JSON` (the template sets it), so
/// CloudWatch Logs Insights can query the fields, and honours `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
