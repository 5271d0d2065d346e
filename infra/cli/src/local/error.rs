//! Why `herald local up`, `herald local feedback` or `herald invoke` failed.

use super::emulator::EmulatorError;
use super::feedback::FeedbackCommandError;
use super::runtime::{InvokeError, RuntimeError};
use super::seed::SeedError;
use super::template::TemplateError;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityError;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error(transparent)]
    Feedback(#[from] FeedbackCommandError),
    #[error("{variable}={value:?} is not a port number")]
    PortNotANumber { variable: &'static str, value: String },
    #[error("HERALD_SCHEDULE_SECONDS={0:?} is not a whole number of seconds, at least 1")]
    BadSchedulePeriod(String),
    #[error("port {port} is busy ({source}): stop what uses it, or set {variable} to a free port")]
    PortBusy {
        port: u16,
        variable: &'static str,
        source: io::Error,
    },
    #[error("could not find a free port: {0}")]
    NoFreePort(#[source] io::Error),
    #[error("{}: {source}", path.display())]
    StateDir { path: PathBuf, source: io::Error },
    #[error("could not verify {sender} in the emulator's SES: {}", DisplayErrorContext(.source))]
    VerifySender {
        sender: &'static str,
        source: Box<SdkError<CreateEmailIdentityError>>,
    },
    #[error("could not make the {platform} platform application in the emulator's SNS: {reason}")]
    PlatformApplication { platform: &'static str, reason: String },
    #[error("HERALD_PARAMETERS: {0:?} is not Name=Value")]
    BadParameterOverride(String),
    #[error("template.yaml has no {0}")]
    MissingResource(&'static str),
    #[error("no queue {0} was created")]
    MissingQueue(String),
    #[error("could not start the Slack sink: {0}")]
    Sink(#[source] io::Error),
    #[error("could not run cargo: {0}")]
    CargoNotRun(#[source] io::Error),
    #[error("building the function binaries failed")]
    BuildFailed,
    #[error("template.yaml names the function binary {0:?}, which no package of the workspace builds")]
    NoSuchBinary(String),
    #[error("{function}: {source}")]
    FunctionStart { function: String, source: RuntimeError },
    #[error("{url} did not answer within 20 s")]
    NotHealthy { url: String },
    #[error(
        "usage: herald invoke FUNCTION --event FILE   (FUNCTION: ingest, api, email, sms, slack, webhook, \
         push, sweeper, feedback)"
    )]
    InvokeUsage,
    #[error("{path}: {source}")]
    EventFile { path: String, source: io::Error },
    #[error("{path} is not JSON: {source}")]
    EventNotJson { path: String, source: serde_json::Error },
    #[error("no function {function} in template.yaml; known: {}", known.join(", "))]
    UnknownFunction { function: String, known: Vec<String> },
    #[error("the function {0} did not start")]
    FunctionNotStarted(String),
    /// A function failed to handle the invocation (it reported an error).
    #[error("the function failed: {0}")]
    FunctionFailed(#[source] InvokeError),
    /// The invocation never reached an answer (timeout, crash, failed init).
    #[error("the invocation failed: {0}")]
    InvocationFailed(#[source] InvokeError),
}
