//! Herald's library: everything the Lambda functions and the `herald` CLI share.
//!
//! - [`domain`]: the types and rules of notifications, free of any AWS detail.
//! - [`ports`]: the small traits the logic needs from the outside world.
//! - [`adapters`]: DynamoDB and SQS implementations of those ports.
//! - [`ingest`] and [`api`]: the logic behind each HTTP function.
//! - [`outbox`]: fan-out after the accepting transaction, and the sweeper that finishes what was left.
//! - [`reconcile`]: the repair of notifications whose status disagrees with their queues.
//! - [`sweeper`]: the scheduled function that runs the outbox's sweep and the reconciler.
//! - [`http`]: the HTTP plumbing both functions share (auth, body checks, problems).

pub mod adapters;
pub mod api;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod feedback;
pub mod http;
pub mod ingest;
pub mod outbox;
pub mod ports;
pub mod reconcile;
pub mod sweeper;
pub mod telemetry;
#[cfg(test)]
mod test_fixtures;
