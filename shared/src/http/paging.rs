//! `?limit=` and `?cursor=` for every list. A cursor is opaque to clients and bound to the tenant and the
//! list it came from: one used elsewhere is a 400 `invalid_cursor`.

use crate::domain::{FieldError, Problem, ProblemCode, TenantId};
use crate::http::query_parameter;
use crate::ports::PageRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::Request;
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: u16 = 50;
const MAX_LIMIT: u16 = 100;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    #[serde(rename = "t")]
    tenant: String,
    #[serde(rename = "l")]
    list: String,
    #[serde(rename = "a")]
    after: String,
}

impl Cursor {
    pub fn encode(tenant: &TenantId, list: &str, after: &str) -> String {
        let cursor = Cursor {
            tenant: tenant.as_str().to_owned(),
            list: list.to_owned(),
            after: after.to_owned(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
    }

    fn decode(raw: &str, tenant: &TenantId, list: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
        (cursor.tenant == tenant.as_str() && cursor.list == list).then_some(cursor.after)
    }
}

/// Reads `limit` (1–100, default 50; else 422) and `cursor` (else 400) for the list named `list`.
pub fn page_request(request: &Request, tenant: &TenantId, list: &str) -> Result<PageRequest, Problem> {
    let limit = match query_parameter(request, "limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u16>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                Problem::validation(vec![FieldError::new(
                    "/limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )])
            })?,
    };
    let after = match query_parameter(request, "cursor") {
        None => None,
        Some(raw) => Some(Cursor::decode(&raw, tenant, list).ok_or_else(|| {
            Problem::new(
                ProblemCode::InvalidCursor,
                "the cursor is not one this list gave you",
            )
        })?),
    };
    Ok(PageRequest { limit, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_tenant_and_list() {
        let acme = TenantId::new("acme");
        let raw = Cursor::encode(&acme, "rules", "{\"sk\":\"RULE#a\"}");
        assert_eq!(
            Cursor::decode(&raw, &acme, "rules").as_deref(),
            Some("{\"sk\":\"RULE#a\"}")
        );
        assert_eq!(Cursor::decode(&raw, &TenantId::new("globex"), "rules"), None);
        assert_eq!(Cursor::decode(&raw, &acme, "templates"), None);
        assert_eq!(Cursor::decode("not-base64!", &acme, "rules"), None);
    }
}
