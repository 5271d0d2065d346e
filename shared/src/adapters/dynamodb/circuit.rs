//! The providers' circuits in the activity table: one item each, `CIRCUIT#{key}` / `CIRCUIT`, never
//! expiring. A failure is an atomic counter; opening, and taking the half-open probe, are conditional
//! writes, so concurrent delivery functions agree on one opener and one prober.

use super::activity_store::DynamoActivityStore;
use super::{Item, ItemExt, is_condition_failed, key, n};
use crate::adapters::backend_error;
use crate::domain::Timestamp;
use crate::domain::circuit::CircuitState;
use crate::ports::{BackendError, CircuitStore};
use aws_sdk_dynamodb::types::ReturnValue;

fn circuit_key(name: &str) -> Item {
    key(format!("CIRCUIT#{name}"), "CIRCUIT")
}

fn state_from(item: &Item) -> CircuitState {
    CircuitState {
        failures: item
            .opt_int("failures")
            .and_then(|failures| u32::try_from(failures).ok())
            .unwrap_or(0),
        open_until: item.opt_int("open_until").map(Timestamp::from_millis),
        probe_until: item.opt_int("probe_until").map(Timestamp::from_millis),
    }
}

impl CircuitStore for DynamoActivityStore {
    async fn circuit(&self, name: &str) -> Result<CircuitState, BackendError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "GetItem(circuit)", &error))?;
        Ok(output.item.as_ref().map(state_from).unwrap_or_default())
    }

    async fn record_failure(
        &self,
        name: &str,
        threshold: u32,
        open_until: Timestamp,
    ) -> Result<CircuitState, BackendError> {
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(name)))
            .update_expression("ADD failures :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(circuit failure)", &error))?;
        let state = counted.attributes.as_ref().map(state_from).unwrap_or_default();
        if state.failures < threshold || state.open_until.is_some() {
            return Ok(state);
        }
        let opened = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(name)))
            .update_expression("SET open_until = :until REMOVE probe_until")
            .condition_expression("attribute_not_exists(open_until)")
            .expression_attribute_values(":until", n(open_until.millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match opened {
            Ok(output) => Ok(output.attributes.as_ref().map(state_from).unwrap_or_default()),
            // Another delivery opened it first.
            Err(error) if is_condition_failed(&error) => self.circuit(name).await,
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(open circuit)", &error)),
        }
    }

    async fn close(&self, name: &str) -> Result<(), BackendError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(name)))
            .update_expression("SET failures = :zero REMOVE open_until, probe_until")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(close circuit)", &error))?;
        Ok(())
    }

    async fn take_probe(
        &self,
        name: &str,
        now: Timestamp,
        probe_until: Timestamp,
    ) -> Result<bool, BackendError> {
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(name)))
            .update_expression("SET probe_until = :probe_until")
            .condition_expression(
                "open_until <= :now AND (attribute_not_exists(probe_until) OR probe_until < :now)",
            )
            .expression_attribute_values(":now", n(now.millis()))
            .expression_attribute_values(":probe_until", n(probe_until.millis()))
            .send()
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(circuit probe)", &error)),
        }
    }

    async fn reopen(&self, name: &str, open_until: Timestamp) -> Result<(), BackendError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(name)))
            .update_expression("SET open_until = :until REMOVE probe_until")
            .expression_attribute_values(":until", n(open_until.millis()))
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(reopen circuit)", &error))?;
        Ok(())
    }
}
