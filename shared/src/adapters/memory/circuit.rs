//! The providers' circuits over the in-memory activity table, with the DynamoDB adapter's conditions
//! (`adapters/dynamodb/circuit.rs`) and failpoints named after its operations.

use super::{MemoryActivityStore, after_write, before_read, before_write, lock};
use crate::domain::Timestamp;
use crate::domain::circuit::CircuitState;
use crate::ports::{BackendError, CircuitStore};

impl CircuitStore for MemoryActivityStore {
    async fn circuit(&self, key: &str) -> Result<CircuitState, BackendError> {
        before_read(&self.failpoints, "circuit").await?;
        Ok(lock(&self.circuits).get(key).copied().unwrap_or_default())
    }

    async fn record_failure(
        &self,
        key: &str,
        threshold: u32,
        open_until: Timestamp,
    ) -> Result<CircuitState, BackendError> {
        let fault = before_write(&self.failpoints, "record_failure").await?;
        let state = {
            let mut circuits = lock(&self.circuits);
            let state = circuits.entry(key.to_owned()).or_default();
            state.failures = state.failures.saturating_add(1);
            if state.failures >= threshold && state.open_until.is_none() {
                state.open_until = Some(open_until);
                state.probe_until = None;
            }
            *state
        };
        after_write("record_failure", fault)?;
        Ok(state)
    }

    async fn close(&self, key: &str) -> Result<(), BackendError> {
        let fault = before_write(&self.failpoints, "close").await?;
        lock(&self.circuits).insert(key.to_owned(), CircuitState::default());
        after_write("close", fault)
    }

    async fn take_probe(
        &self,
        key: &str,
        now: Timestamp,
        probe_until: Timestamp,
    ) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "take_probe").await?;
        let taken = {
            let mut circuits = lock(&self.circuits);
            let state = circuits.entry(key.to_owned()).or_default();
            let half_open = state.open_until.is_some_and(|until| until <= now);
            let probe_out = state.probe_until.is_some_and(|until| until >= now);
            if half_open && !probe_out {
                state.probe_until = Some(probe_until);
            }
            half_open && !probe_out
        };
        after_write("take_probe", fault)?;
        Ok(taken)
    }

    async fn reopen(&self, key: &str, open_until: Timestamp) -> Result<(), BackendError> {
        let fault = before_write(&self.failpoints, "reopen").await?;
        {
            let mut circuits = lock(&self.circuits);
            let state = circuits.entry(key.to_owned()).or_default();
            state.open_until = Some(open_until);
            state.probe_until = None;
        }
        after_write("reopen", fault)
    }
}
