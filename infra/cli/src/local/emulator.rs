//! The AWS emulator (moto server) the local stack runs on: installed by `scripts/emulator.sh` into
//! `.emulator/`, started on loopback through `scripts/emulator.py` (which keeps DynamoDB requests atomic, as
//! AWS does), reached with dummy credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const REGION: &str = "us-east-1";

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

/// Whether an emulator already answers on `port`.
pub async fn is_running(port: u16) -> bool {
    reqwest::get(format!("{}/moto-api/", endpoint(port)))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The environment a process needs to reach the emulator.
pub fn environment(port: u16) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint(port)),
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

/// An SDK configuration for the emulator, whatever this process's own AWS environment says.
pub async fn sdk_config(port: u16) -> SdkConfig {
    let credentials = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "herald-local");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint(port))
        .region(Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await
}
