//! `herald bench functions`: each function's release binary started again and again under a minimal Lambda
//! Runtime API, against a hello-world `lambda_runtime` binary built with the same profile in the same run,
//! so the figures are ratios that mean something on any machine: init (exec → first
//! `/invocation/next`), the first invocation, peak RSS, and the stripped binary's size.
//!
//! No call reaches AWS: the functions get the template's environment with made-up table and queue names,
//! dummy credentials and an endpoint nothing listens on; the events are ones they answer without AWS (the
//! sweeper's is the exception: its one DynamoDB call is refused, and it answers an error).

mod runtime;
mod table;

use super::BenchError;
use crate::local::emulator;
use crate::local::runtime::lambda_environment;
use crate::local::template::{FunctionSpec, StackTemplate};
use crate::local::up::{cargo_command, local_template, target_dir};
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use table::{Sample, Summary, Table};

/// The baseline binary (infra/hello-lambda).
const HELLO: &str = "hello-lambda";

/// What `herald bench functions` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionsOptions {
    /// Starts per binary (medians are taken over them).
    pub runs: usize,
    /// Take the binaries in target/release as they are, without asking cargo.
    pub no_build: bool,
}

impl FunctionsOptions {
    pub fn parse(args: &[&str]) -> Result<Self, BenchError> {
        let mut options = Self {
            runs: 20,
            no_build: false,
        };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            match *flag {
                "--no-build" => options.no_build = true,
                "--runs" => {
                    let value = rest
                        .next()
                        .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
                    options.runs = value.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        BenchError::Usage(format!("{flag} {value}: expected a positive whole number"))
                    })?;
                }
                other => return Err(BenchError::Usage(format!("unknown option {other}"))),
            }
        }
        Ok(options)
    }
}

/// A binary to measure: where it is, what it is started with, what it is handed.
#[derive(Debug)]
struct Subject {
    name: String,
    binary: PathBuf,
    environment: BTreeMap<String, String>,
    event: Bytes,
}

/// `herald bench functions …`: builds (unless `--no-build`), measures, prints the table.
pub async fn run(options: FunctionsOptions) -> Result<(), BenchError> {
    let root = emulator::project_root().map_err(crate::local::LocalError::from)?;
    let template = local_template(&root)?;
    let mut names: Vec<String> = template.functions().into_iter().map(|f| f.binary).collect();
    names.push(HELLO.to_owned());
    let binaries = target_dir(&root).join("release");
    if options.no_build {
        say(&format!(
            "--no-build: measuring the binaries in {} as they are",
            binaries.display()
        ));
    } else {
        build(&root, &names).await?;
    }
    let subjects = subjects(&root, &template, &binaries)?;

    // One start of each, not counted: every binary is then in the page cache alike.
    say("warming up (one start of each, not counted)");
    for subject in &subjects {
        measure(subject).await?;
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(options.runs); subjects.len()];
    let mut answers: Vec<String> = vec![String::new(); subjects.len()];
    // Round after round of one start each, so a change in the machine's load falls on all of them alike.
    for round in 1..=options.runs {
        say(&format!("round {round} of {}", options.runs));
        for (index, subject) in subjects.iter().enumerate() {
            let measured = measure(subject).await?;
            if round == 1 {
                answers[index] = measured.answer;
            }
            samples[index].push(measured.sample);
        }
    }
    let mut rows = Vec::with_capacity(subjects.len());
    for ((subject, samples), answer) in subjects.iter().zip(&samples).zip(answers) {
        let size = std::fs::metadata(&subject.binary)
            .map_err(|error| setup(&format!("reading {}", subject.binary.display()), error))?
            .len();
        rows.push(Summary::new(&subject.name, samples, size, answer));
    }
    println!(
        "{}",
        Table {
            rows: &rows,
            baseline: HELLO
        }
    );
    Ok(())
}

async fn measure(subject: &Subject) -> Result<runtime::Measured, BenchError> {
    runtime::measure_once(&subject.binary, &subject.environment, &subject.event)
        .await
        .map_err(|detail| BenchError::Setup {
            what: format!("starting {}", subject.name),
            detail,
        })
}

/// `cargo build --release` of exactly these packages (their binaries share the names): cargo rebuilds
/// only what changed, so a second run starts at once.
async fn build(root: &Path, packages: &[String]) -> Result<(), BenchError> {
    say("building the release binaries (cargo build --release; long the first time: LTO, one codegen unit)");
    let mut cargo = cargo_command();
    cargo.args(["build", "--release"]);
    for package in packages {
        cargo.args(["-p", package]);
    }
    let status = cargo
        .current_dir(root)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|error| setup("running cargo", error))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Setup {
            what: "cargo build --release".into(),
            detail: status.to_string(),
        })
    }
}

/// The functions of template.yaml, then the hello-world, each with its environment and event.
fn subjects(root: &Path, template: &StackTemplate, binaries: &Path) -> Result<Vec<Subject>, BenchError> {
    // An endpoint nothing listens on: a call to AWS is refused at once instead of leaving the machine.
    let closed = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|error| setup("finding a closed port", error))?
        .port();
    let provisioned = template.unprovisioned(&emulator::endpoint(closed));
    let dummy_aws = emulator::environment(&emulator::Endpoints::single(closed));
    let mut subjects = Vec::new();
    for spec in template.functions() {
        let mut environment = template
            .environment(&spec, &provisioned)
            .map_err(crate::local::LocalError::from)?;
        environment.extend(dummy_aws.iter().cloned());
        // The sweeper's refused call is answered after one attempt, not after the SDK's backoff.
        environment.insert("HERALD_AWS_MAX_ATTEMPTS".into(), "1".into());
        environment.extend(lambda_variables(&spec.binary, spec.memory_mb));
        subjects.push(Subject {
            event: event_for(root, &spec)?,
            binary: existing(binaries, &spec.binary)?,
            name: spec.binary,
            environment,
        });
    }
    let mut environment: BTreeMap<String, String> = dummy_aws.into_iter().collect();
    environment.extend(lambda_variables(HELLO, 128));
    subjects.push(Subject {
        name: HELLO.to_owned(),
        binary: existing(binaries, HELLO)?,
        environment,
        event: Bytes::from_static(b"{}"),
    });
    Ok(subjects)
}

fn lambda_variables(name: &str, memory_mb: u64) -> impl Iterator<Item = (String, String)> {
    std::iter::once(("TZ".to_owned(), ":UTC".to_owned())).chain(
        lambda_environment(name, memory_mb, "bench")
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value)),
    )
}

fn existing(binaries: &Path, name: &str) -> Result<PathBuf, BenchError> {
    let binary = binaries.join(name);
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(BenchError::Setup {
            what: format!("finding {name}"),
            detail: format!("no binary at {} (build it, or drop --no-build)", binary.display()),
        })
    }
}

/// A first invocation each function answers without AWS: an empty SQS batch to every function a queue
/// feeds (the channels', the feedback function); the API's health check; an event posted without an API key
/// to ingest (401 before any lookup); the sweeper its schedule's event.
fn event_for(root: &Path, function: &FunctionSpec) -> Result<Bytes, BenchError> {
    let sample = |file: &str| -> Result<Value, BenchError> {
        let path = root.join("events").join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|error| setup(&format!("reading {}", path.display()), error))?;
        serde_json::from_str(&text).map_err(|error| setup(&format!("parsing {}", path.display()), error))
    };
    let event = match function.binary.as_str() {
        _ if !function.sqs_events.is_empty() => json!({ "Records": [] }),
        "api" => sample("api-health.json")?,
        "ingest" => unauthenticated(sample("ingest-post-event.json")?),
        "sweeper" => sample("sweeper-schedule.json")?,
        other => {
            return Err(BenchError::Setup {
                what: format!("choosing an event for {other}"),
                detail: "a function bench/functions does not know: give it an event in event_for".into(),
            });
        }
    };
    Ok(Bytes::from(event.to_string()))
}

/// The request without its `Authorization` header.
fn unauthenticated(mut request: Value) -> Value {
    if let Some(headers) = request.get_mut("headers").and_then(Value::as_object_mut) {
        headers.retain(|name, _| !name.eq_ignore_ascii_case("authorization"));
    }
    request
}

fn setup(what: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError::Setup {
        what: what.to_owned(),
        detail: error.to_string(),
    }
}

fn say(line: &str) {
    eprintln!("herald: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!(
            FunctionsOptions::parse(&[]).unwrap(),
            FunctionsOptions {
                runs: 20,
                no_build: false
            }
        );
        assert_eq!(
            FunctionsOptions::parse(&["--runs", "5", "--no-build"]).unwrap(),
            FunctionsOptions {
                runs: 5,
                no_build: true
            }
        );
        for bad in [&["--runs"][..], &["--runs", "0"], &["--runs", "x"], &["--fast"]] {
            assert!(
                matches!(FunctionsOptions::parse(bad), Err(BenchError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ingest_is_sent_no_api_key() {
        let request = json!({ "headers": { "Authorization": "Bearer k", "host": "h" }, "body": "{}" });
        assert_eq!(
            unauthenticated(request),
            json!({ "headers": { "host": "h" }, "body": "{}" })
        );
    }

    #[test]
    fn every_function_of_the_template_has_an_event() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let template = local_template(&root).unwrap();
        let functions = template.functions();
        assert_eq!(functions.len(), herald::telemetry::Function::ALL.len());
        for function in &functions {
            let event: Value = serde_json::from_slice(&event_for(&root, function).unwrap()).unwrap();
            assert!(event.is_object(), "{}", function.binary);
        }
        let feedback = functions.iter().find(|f| f.binary == "feedback").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&event_for(&root, feedback).unwrap()).unwrap(),
            json!({ "Records": [] })
        );
        let stranger = FunctionSpec {
            binary: "fax".into(),
            sqs_events: Vec::new(),
            ..feedback.clone()
        };
        assert!(event_for(&root, &stranger).is_err());
    }
}
