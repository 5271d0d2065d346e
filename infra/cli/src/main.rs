//! `herald`: the command line for people running Herald (not deployed).

use herald_cli::bench::{self, BenchError};
use herald_cli::dlq::{self, DlqError};
use herald_cli::keys;
use herald_cli::local::{self, LocalError};
use herald_cli::tenant::{self, TenantError};
use std::process::ExitCode;

const USAGE: &str = "usage:
  herald local up [--release [--no-build]]  run the whole stack locally (emulator, functions, API on :3000);
                                            --release runs the functions' release build, as Lambda does;
                                            --no-build takes target/release as it is
  herald local feedback bounce|complaint|delivery NOTIFICATION_ID [--tenant TENANT] [--transient]
                                            publish what SES would say about an email the local stack
                                            sent to its feedback topic (a bounce is permanent unless
                                            --transient; TENANT defaults to local)
  herald invoke FUNCTION --event FILE       invoke one function once (ingest, api, email, sms, slack,
                                            webhook, sweeper, feedback)
  herald keys create TENANT [--name NAME] [--scope ingest|full] [--key KEY] [--local]
                                            create an API key for TENANT, printed once (a new random key
                                            unless --key gives one of 32+ characters); scope ingest may
                                            only send events, full (the default) may do everything
  herald keys list TENANT [--local]         TENANT's keys: id, name, scope, created, revoked
  herald keys revoke TENANT KEY_ID [--local]
                                            revoke a key (functions that read it stop accepting it within
                                            HERALD_CONFIG_CACHE_SECONDS, 30 s by default)
  herald keys adopt [--local]               once after upgrading: list the keys made before herald keys
                                            (a scan of the config table), so they can be revoked
  herald tenant create TENANT [--key KEY] [--local]
                                            the same as herald keys create TENANT [--key KEY]
  herald tenant sms-countries TENANT [US,CA,… | * | --default] [--local]
                                            show or set the countries TENANT's SMS may go to
  herald tenant rate-limit TENANT [N | --default] [--local]
                                            show or set TENANT's notifications a minute per recipient
                                            and channel (0: none; an event type's own limit wins)
  herald tenant ingest-budget TENANT [N | --default] [--local]
                                            show or set the events a minute each of TENANT's API keys
                                            may send (0: none); past it, 429 with Retry-After
  herald bench load [--events N] [--concurrency C] [--timeout SECONDS]
                                            load the running local stack, then audit every notification
  herald bench functions [--runs N] [--no-build]
                                            each function's release binary against a hello-world Lambda:
                                            init, first invocation, peak RSS, size (builds them unless
                                            --no-build)
  herald dlq list|show|redrive|purge …      the dead-letter queues (herald dlq help for the options)

The AWS account, region and endpoint come from the usual AWS environment (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL for the local emulator); the config table from HERALD_CONFIG_TABLE. --local: the stack
`herald local up` runs.";

/// Why a command failed: each command's own error, printed as `herald: <error>`.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("unknown command\n\n{}", USAGE)]
    UnknownCommand,
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error(transparent)]
    Dlq(#[from] DlqError),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command `args` name: one line per command.
async fn run(args: &[&str]) -> Result<(), CliError> {
    match args {
        ["local", "up"] => local::up::run(local::up::Build::Debug).await?,
        ["local", "up", "--release"] => local::up::run(local::up::Build::Release).await?,
        ["local", "up", "--release", "--no-build"] => {
            local::up::run(local::up::Build::ReleaseAsBuilt).await?;
        }
        ["local", "feedback", rest @ ..] => local::feedback::run(rest).await?,
        ["invoke", rest @ ..] => local::invoke::run(rest).await?,
        ["keys", rest @ ..] => keys::run(rest).await?,
        ["tenant", "create", rest @ ..] => tenant::create(rest).await?,
        ["tenant", "sms-countries", rest @ ..] => tenant::sms_countries(rest).await?,
        ["tenant", "rate-limit", rest @ ..] => tenant::rate_limit(rest).await?,
        ["tenant", "ingest-budget", rest @ ..] => tenant::ingest_budget(rest).await?,
        ["bench", rest @ ..] => bench::run(rest).await?,
        ["dlq", rest @ ..] => dlq::run(rest).await?,
        ["help" | "--help" | "-h"] | [] => println!("{USAGE}"),
        _ => return Err(CliError::UnknownCommand),
    }
    Ok(())
}
