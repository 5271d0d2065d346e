//! Each API key's ingest budget: a counter per key and minute in the activity table (`T#<t>#BUDGET#<key
//! id>#<minute>` / `RATE`), raised by one conditional `UpdateItem` per request, outside the event's
//! transaction. Every event of a key passes this one item: inside the transactions it would make each of the
//! key's concurrent requests conflict with the others (DynamoDB cancels a transaction on an item another
//! transaction holds), where plain conditional updates of one item are simply applied in turn.

use super::activity_store::DynamoActivityStore;
use super::{COUNTER_CONDITION, COUNTER_UPDATE, counter_values, is_condition_failed, key};
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
            .update_expression(COUNTER_UPDATE)
            .condition_expression(COUNTER_CONDITION)
            .set_expression_attribute_values(Some(counter_values(counter)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(ingest budget)", &error)),
        }
    }
}
