//! Herald's library: everything the Lambda functions and the `herald` CLI share.
//!
//! - [`domain`]: the types and rules of notifications, free of any AWS detail.
//! - [`ports`]: the small traits the logic needs from the outside world.
//! - [`adapters`]: DynamoDB and SQS implementations of those ports.
//! - [`ingest`] and [`api`]: the logic behind each HTTP function.
//! - [`outbox`]: fan-out after the accepting transaction, and the sweeper that finishes what was left.
//! - [`http`]: the HTTP plumbing both functions share (auth, body checks, problems).

pub mod adapters;
pub mod api;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod outbox;
pub mod ports;
pub mod telemetry;
#[cfg(test)]
mod test_fixtures;
