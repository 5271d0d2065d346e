//! Each API key's ingest budget: a counter per key and minute in the activity table (`T#<t>#BUDGET#<key
//! id>#<minute>` / `RATE`), raised by one conditional `UpdateItem` per request, outside the event's
//! transaction. Every event of a key passes this one item: inside the transactions it would make each of the
//! key's concurrent requests conflict with the others (DynamoDB cancels a transaction on an item another
//! transaction holds), where plain conditional updates of one item are simply applied in turn.

use super::activity_store::DynamoActivityStore;
use super::{is_condition_failed, key, n};
use crate::adapters::backend_error;
use crate::domain::rate_limit::RateCounter;
use crate::ports::{BackendError, IngestBudgets};

impl IngestBudgets for DynamoActivityStore {
    async fn spend(&self, counter: &RateCounter) -> Result<bool, BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(counter.key.clone(), "RATE")))
            .update_expression("SET sends = if_not_exists(sends, :zero) + :increment, expires_at = :expires")
            .condition_expression("attribute_not_exists(sends) OR sends <= :room")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":increment", n(counter.increment))
            .expression_attribute_values(":room", n(counter.room_before()))
            .expression_attribute_values(":expires", n(counter.expires_at.epoch_seconds()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(ingest budget)", &error)),
        }
    }
}
