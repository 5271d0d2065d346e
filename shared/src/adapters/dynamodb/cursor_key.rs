//! The secret that signs list cursors: one item of the config table, `HERALD` / `CURSOR_KEY`. The first
//! request to find none makes it with a conditional put; a request that loses that race reads the winner's,
//! so every function of the deployment signs with the same secret from its first list on.

use super::config_store::DynamoConfigStore;
use super::{Item, corrupt, key, put_if_absent};
use crate::adapters::backend_error;
use crate::ports::{BackendError, CursorKeyStore};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

const SECRET_BYTES: usize = 32;

fn cursor_key_item() -> Item {
    key("HERALD", "CURSOR_KEY")
}

impl DynamoConfigStore {
    async fn stored_cursor_key(&self) -> Result<Option<Vec<u8>>, BackendError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "GetItem(cursor key)", &error))?;
        output
            .item
            .map(|item| match item.get("secret") {
                Some(AttributeValue::B(secret)) if secret.as_ref().len() == SECRET_BYTES => {
                    Ok(secret.clone().into_inner())
                }
                _ => Err(corrupt("read", "the cursor key is not 32 bytes")),
            })
            .transpose()
    }
}

impl CursorKeyStore for DynamoConfigStore {
    async fn cursor_key(&self) -> Result<Vec<u8>, BackendError> {
        if let Some(secret) = self.stored_cursor_key().await? {
            return Ok(secret);
        }
        let mut secret = vec![0_u8; SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|error| BackendError {
            service: "OS",
            operation: "getrandom",
            message: error.to_string(),
            retryable: true,
        })?;
        let mut item = cursor_key_item();
        item.insert("secret".into(), AttributeValue::B(Blob::new(secret.clone())));
        if put_if_absent(&self.client, &self.table, item, "PutItem(cursor key)").await? {
            return Ok(secret);
        }
        // Another process made it first: its key is the one.
        self.stored_cursor_key()
            .await?
            .ok_or_else(|| corrupt("read", "the cursor key vanished after it was made"))
    }
}
