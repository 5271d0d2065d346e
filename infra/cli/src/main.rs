//! `herald`: the command line for people running Herald (not deployed).

use herald_cli::{local, tenant};
use std::process::ExitCode;

const USAGE: &str = "usage:
  herald local up                           run the whole stack locally (emulator, functions, API on :3000)
  herald invoke FUNCTION --event FILE       invoke one function once (ingest, api, email, sms, slack)
  herald tenant create TENANT [--key KEY]   create an API key for TENANT (a new random key if none is given)

The AWS account, region and endpoint come from the usual AWS environment (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL for the local emulator); the config table from HERALD_CONFIG_TABLE.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["local", "up"] => local::up::run().await,
        ["invoke", rest @ ..] => local::invoke::run(rest).await,
        ["tenant", "create", rest @ ..] => tenant::create(rest).await,
        ["help" | "--help" | "-h"] | [] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown command\n\n{USAGE}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("herald: {message}");
            ExitCode::FAILURE
        }
    }
}
