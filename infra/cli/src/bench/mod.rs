//! `herald bench load`: a load benchmark against a running local stack, ending with an audit of every
//! notification of the run. It measures the stack and the emulator under it in the same run, so the figures
//! can be compared with each other rather than with a machine nobody else has. `herald bench functions`:
//! each function's release binary on its own, against a hello-world Lambda (see [`functions`]).

mod audit;
mod cost;
pub mod functions;
mod load;
mod power;
mod probe;
mod report;

use crate::local::LocalError;
use crate::local::up::Ports;
use std::time::Duration;

const USAGE: &str = "usage: herald bench load [--events N] [--concurrency C] [--timeout SECONDS]
       herald bench functions [--runs N] [--no-build]";

/// Why a benchmark could not run, or why its audit failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("no local stack answers at {url} ({detail}): start one with `herald local up`")]
    NoStack { url: String, detail: String },
    #[error("{what} failed: {detail}")]
    Setup { what: String, detail: String },
    #[error("the emulator failed during the raw put measurement: {0}")]
    RawPuts(String),
    #[error("the audit failed: {0}")]
    AuditFailed(String),
}

/// What `herald bench load` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub events: usize,
    pub concurrency: usize,
    /// How long to wait for every notification to settle before calling the rest lost.
    pub settle_timeout: Duration,
}

impl LoadOptions {
    fn parse(args: &[&str]) -> Result<Self, BenchError> {
        let mut options = Self {
            events: 200,
            concurrency: 8,
            settle_timeout: Duration::from_secs(900),
        };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let value = rest
                .next()
                .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
            let number = value.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                BenchError::Usage(format!("{flag} {value}: expected a positive whole number"))
            })?;
            match *flag {
                "--events" => options.events = number,
                "--concurrency" => options.concurrency = number,
                "--timeout" => options.settle_timeout = Duration::from_secs(number as u64),
                other => return Err(BenchError::Usage(format!("unknown option {other}"))),
            }
        }
        Ok(options)
    }
}

/// `herald bench load …`: runs the benchmark, prints the report; fails when anything was lost or doubled.
pub async fn run(args: &[&str]) -> Result<(), BenchError> {
    let options = match args {
        ["load", rest @ ..] => LoadOptions::parse(rest)?,
        ["functions", rest @ ..] => return functions::run(functions::FunctionsOptions::parse(rest)?).await,
        _ => return Err(BenchError::Usage("unknown bench".into())),
    };
    let ports = Ports::from_env()?;
    let stack = probe::Stack::connect(ports).await?;
    let outcome = load::run(&stack, options).await?;
    let report = report::Report::new(&outcome);
    println!("{report}");
    match outcome.audit.verdict() {
        Ok(()) => Ok(()),
        Err(failure) => Err(BenchError::AuditFailed(failure)),
    }
}
