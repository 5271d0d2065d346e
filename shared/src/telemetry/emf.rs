//! Metrics as CloudWatch Embedded Metric Format: a `metrics_cloudwatch_embedded` collector is the process's
//! recorder, and every invocation ends by writing what it gathered to stdout, where Lambda's log agent
//! turns each `_aws` line into metric data points
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).

use super::catalogue::{self, Unit};
use futures::FutureExt;
use futures::future::Map;
use lambda_runtime::Service;
use metrics_cloudwatch_embedded::{Builder, Collector};
use std::io::Write;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// The process's collector, once [`install`]ed.
static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Makes a collector for `namespace` the process's metrics recorder, and gives it every metric's unit.
pub fn install(namespace: &str) -> Result<(), String> {
    let collector = Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .init()
        .map_err(|error| error.to_string())?;
    COLLECTOR
        .set(collector)
        .map_err(|_| "a metrics collector was installed already".to_owned())?;
    for spec in catalogue::all() {
        let unit = spec.unit.to_metrics();
        match spec.unit {
            Unit::Count => {
                metrics::describe_counter!(spec.name, unit, spec.meaning);
            }
            Unit::Milliseconds => {
                metrics::describe_histogram!(spec.name, unit, spec.meaning);
            }
        }
    }
    Ok(())
}

/// Writes every metric gathered since the last flush to stdout, one EMF document a line. Does nothing
/// before [`install`].
pub fn flush() {
    let mut lines = Vec::new();
    if let Err(error) = flush_into(&mut lines) {
        tracing::warn!(%error, "could not write the metrics");
        return;
    }
    // One write under the lock: a log line written meanwhile by another task cannot split a metrics line.
    let written = {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&lines).and_then(|()| stdout.flush())
    };
    if let Err(error) = written {
        tracing::warn!(%error, "could not write the metrics to stdout");
    }
}

/// Writes every metric gathered since the last flush into `lines`, one EMF document a line.
pub fn flush_into(lines: &mut Vec<u8>) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(collector) => collector.flush(lines),
        None => Ok(()),
    }
}

/// A Lambda handler that writes the metrics its invocation gathered before the invocation is answered
/// (so they are in its log, and written before Lambda may freeze the process).
#[derive(Debug, Clone)]
pub struct Flushed<S>(S);

/// `handler`, flushing the metrics after each invocation.
pub fn flushing<S>(handler: S) -> Flushed<S> {
    Flushed(handler)
}

type Flush<T> = fn(T) -> T;

impl<S, Request> Service<Request> for Flushed<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Map<S::Future, Flush<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.0.call(request).map(flushed as Flush<_>)
    }
}

fn flushed<T>(outcome: T) -> T {
    flush();
    outcome
}
