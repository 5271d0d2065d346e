//! The AWS emulator (moto server) the local stack runs on: installed by `scripts/emulator.sh` into
//! `.emulator/`, started on loopback through `scripts/emulator.py` (which keeps DynamoDB requests atomic, as
//! AWS does), reached with dummy credentials. The local stack runs two of them: DynamoDB in one process,
//! every other service in another (decision 25).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const REGION: &str = "us-east-1";
/// The account the emulator answers for (moto's default).
pub const ACCOUNT: &str = "123456789012";

/// Why the emulator (or the checkout it lives in) is not there to use.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot tell which folder herald runs in: {0}")]
    CurrentDir(#[source] io::Error),
    #[error("run herald from inside the Herald checkout (no template.yaml found above here)")]
    NotInCheckout,
    #[error("could not run bash to install the emulator: {0}")]
    InstallerNotRun(#[source] io::Error),
    #[error("installing the AWS emulator failed (needs python3 with venv and pip)")]
    InstallFailed,
    #[error("{}: {source}", path.display())]
    Log { path: PathBuf, source: io::Error },
    #[error("could not start {}: {source}", launcher.display())]
    Spawn { launcher: PathBuf, source: io::Error },
    #[error("the AWS emulator exited ({status}); see {}", log.display())]
    Exited { status: ExitStatus, log: PathBuf },
    #[error("the AWS emulator did not answer on {url} within 30 s; see {}", log.display())]
    NoAnswer { url: String, log: PathBuf },
}

/// The checkout's root: the nearest folder up from here holding `template.yaml` and `Cargo.toml`.
pub fn project_root() -> Result<PathBuf, EmulatorError> {
    let start = std::env::current_dir().map_err(EmulatorError::CurrentDir)?;
    start
        .ancestors()
        .find(|dir| dir.join("template.yaml").is_file() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or(EmulatorError::NotInCheckout)
}

/// How to start the emulator: the venv's Python and the launcher script.
#[derive(Debug, Clone)]
pub struct Emulator {
    python: PathBuf,
    launcher: PathBuf,
}

/// Installs the pinned emulator into `.emulator/` if it is not there yet.
pub async fn ensure(root: &Path) -> Result<Emulator, EmulatorError> {
    let status = Command::new("bash")
        .arg("-c")
        .arg("source scripts/emulator.sh && ensure_emulator")
        .current_dir(root)
        .status()
        .await
        .map_err(EmulatorError::InstallerNotRun)?;
    if !status.success() {
        return Err(EmulatorError::InstallFailed);
    }
    Ok(Emulator {
        python: root.join(".emulator/bin/python"),
        launcher: root.join("scripts/emulator.py"),
    })
}

/// Starts the emulator on `port` and waits until it answers; it is killed when the handle is dropped.
pub async fn start(emulator: &Emulator, port: u16, log: &Path) -> Result<Child, EmulatorError> {
    let log_error = |source| EmulatorError::Log {
        path: log.to_owned(),
        source,
    };
    let log_file = std::fs::File::create(log).map_err(log_error)?;
    let log_err = log_file.try_clone().map_err(log_error)?;
    let mut child = Command::new(&emulator.python)
        .arg(&emulator.launcher)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| EmulatorError::Spawn {
            launcher: emulator.launcher.clone(),
            source,
        })?;
    let url = endpoint(port);
    for _ in 0..150 {
        if reqwest::get(format!("{url}/moto-api/"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(EmulatorError::Exited {
                status,
                log: log.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(EmulatorError::NoAnswer {
        url,
        log: log.to_owned(),
    })
}

pub fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Where the local AWS answers. A moto process serves one request at a time on one core (Python's lock),
/// and DynamoDB takes most of its time under load, so the local stack gives DynamoDB a process of its own:
/// with SQS, SES and SNS beside it, each process has a core. As on AWS, each service is its own endpoint;
/// the SDKs reach DynamoDB's through `AWS_ENDPOINT_URL_DYNAMODB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// SQS, SES, SNS and moto's own API (`/moto-api/data.json`: what was sent).
    pub aws: String,
    pub dynamodb: String,
}

impl Endpoints {
    /// Every service in one process (a private emulator, as `herald local invoke` and the tests start).
    pub fn single(port: u16) -> Self {
        Self {
            aws: endpoint(port),
            dynamodb: endpoint(port),
        }
    }

    pub fn split(aws_port: u16, dynamodb_port: u16) -> Self {
        Self {
            aws: endpoint(aws_port),
            dynamodb: endpoint(dynamodb_port),
        }
    }
}

/// The endpoint each service's client takes, for SDK configurations built in this process: DynamoDB's for
/// DynamoDB, the other emulator's for the rest. (An endpoint set on the shared configuration itself would
/// win over any per-service one, whatever the service.)
#[derive(Debug)]
struct ServiceEndpoints(Endpoints);

impl aws_types::service_config::LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        let endpoint = if key.service_id() == "DynamoDB" {
            &self.0.dynamodb
        } else {
            &self.0.aws
        };
        Some(endpoint.clone())
    }
}

/// Whether an emulator already answers on `port`.
pub async fn is_running(port: u16) -> bool {
    reqwest::get(format!("{}/moto-api/", endpoint(port)))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The environment a process needs to reach the emulator.
pub fn environment(endpoints: &Endpoints) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoints.aws.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoints.dynamodb.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// An SDK configuration for the emulator, whatever this process's own AWS environment says (its
/// `AWS_ENDPOINT_URL_*` included).
pub async fn sdk_config(endpoints: &Endpoints) -> SdkConfig {
    let credentials = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "herald-local");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await
        .into_builder()
        .service_config(ServiceEndpoints(endpoints.clone()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

    fn endpoint_for(endpoints: &Endpoints, service_id: &str, env: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env(env)
            .profile("endpoint_url")
            .build()
            .unwrap();
        ServiceEndpoints(endpoints.clone()).load_config(key)
    }

    #[test]
    fn dynamodb_goes_to_its_own_process_and_every_other_service_to_the_other() {
        let endpoints = Endpoints::split(4566, 4567);
        assert_eq!(
            endpoint_for(&endpoints, "DynamoDB", "AWS_ENDPOINT_URL").as_deref(),
            Some("http://127.0.0.1:4567")
        );
        for service in ["SQS", "SESv2", "SNS"] {
            assert_eq!(
                endpoint_for(&endpoints, service, "AWS_ENDPOINT_URL").as_deref(),
                Some("http://127.0.0.1:4566"),
                "{service}"
            );
        }
        // Only endpoints are ours to answer: every other setting is left to the defaults.
        assert_eq!(endpoint_for(&endpoints, "DynamoDB", "AWS_MAX_ATTEMPTS"), None);
    }

    #[test]
    fn functions_get_both_endpoints() {
        let environment: std::collections::HashMap<_, _> =
            environment(&Endpoints::split(4566, 4567)).into_iter().collect();
        assert_eq!(environment["AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
        assert_eq!(environment["AWS_ENDPOINT_URL_DYNAMODB"], "http://127.0.0.1:4567");
    }
}
