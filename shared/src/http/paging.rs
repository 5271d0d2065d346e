//! `?limit=` and `?cursor=` for every list. A cursor is opaque to clients, signed with the deployment's
//! secret (HMAC-SHA256) and bound to the tenant and the list it came from, filters included: one altered,
//! forged or used elsewhere is a 400 `invalid_cursor`.

use crate::domain::{FieldError, Problem, ProblemCode, TenantId};
use crate::http::{backend_failure, query_parameter};
use crate::ports::{CursorKeyStore, PageRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::Request;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::OnceCell;

const DEFAULT_LIMIT: u16 = 50;
const MAX_LIMIT: u16 = 100;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct CursorBody {
    #[serde(rename = "t")]
    tenant: String,
    #[serde(rename = "l")]
    list: String,
    #[serde(rename = "a")]
    after: String,
}

/// Signs and checks cursors with the deployment's secret, read once per process (the first list asks).
#[derive(Debug, Default)]
pub struct Cursors {
    secret: OnceCell<Vec<u8>>,
}

/// A cursor's content and its signing secret, ready to encode or check.
#[derive(Debug)]
pub struct Cursor<'a> {
    secret: &'a [u8],
}

impl Cursors {
    /// The signer, once the secret is known: reading it is a request to the store the first time.
    pub async fn signer<K: CursorKeyStore>(&self, store: &K) -> Result<Cursor<'_>, Problem> {
        let secret = self
            .secret
            .get_or_try_init(|| store.cursor_key())
            .await
            .map_err(|error| backend_failure(&error))?;
        Ok(Cursor { secret })
    }
}

impl Cursor<'_> {
    /// HMAC takes a key of any length, so this is never `None`; if it were, no cursor would verify.
    fn mac(&self, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret).ok()?;
        mac.update(body);
        Some(mac)
    }

    /// `<body>.<signature>`, both base64url.
    pub fn encode(&self, tenant: &TenantId, list: &str, after: &str) -> String {
        let body = CursorBody {
            tenant: tenant.as_str().to_owned(),
            list: list.to_owned(),
            after: after.to_owned(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let signature = self
            .mac(&body)
            .map(|mac| mac.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The position in a cursor this deployment signed for this tenant and list; `None` for any other.
    fn decode(&self, raw: &str, tenant: &TenantId, list: &str) -> Option<String> {
        let (body, signature) = raw.split_once('.')?;
        let body = URL_SAFE_NO_PAD.decode(body).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(&body)?.verify_slice(&signature).ok()?;
        let cursor: CursorBody = serde_json::from_slice(&body).ok()?;
        (cursor.tenant == tenant.as_str() && cursor.list == list).then_some(cursor.after)
    }

    /// Reads `limit` (1–100, default 50; else 422) and `cursor` (else 400) for the list named `list`.
    pub fn page_request(
        &self,
        request: &Request,
        tenant: &TenantId,
        list: &str,
    ) -> Result<PageRequest, Problem> {
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
            Some(raw) => Some(self.decode(&raw, tenant, list).ok_or_else(|| {
                Problem::new(
                    ProblemCode::InvalidCursor,
                    "the cursor is not one this list gave you",
                )
            })?),
        };
        Ok(PageRequest { limit, after })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cursors_are_bound_to_tenant_and_list_and_signed() {
        let signer = Cursor {
            secret: b"a secret of this deployment",
        };
        let acme = TenantId::new("acme");
        let raw = signer.encode(&acme, "rules", "{\"sk\":\"RULE#a\"}");
        assert_eq!(
            signer.decode(&raw, &acme, "rules").as_deref(),
            Some("{\"sk\":\"RULE#a\"}")
        );
        assert_eq!(signer.decode(&raw, &TenantId::new("globex"), "rules"), None);
        assert_eq!(signer.decode(&raw, &acme, "templates"), None);
        assert_eq!(signer.decode("not-base64!", &acme, "rules"), None);

        let other_deployment = Cursor {
            secret: b"another secret",
        };
        assert_eq!(
            other_deployment.decode(&raw, &acme, "rules"),
            None,
            "signed by another secret"
        );
        let (body, signature) = raw.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"t":"acme","l":"rules","a":"{\"sk\":\"RULE#z\"}"}"#);
        assert_eq!(
            signer.decode(&format!("{forged_body}.{signature}"), &acme, "rules"),
            None
        );
        assert_eq!(signer.decode(body, &acme, "rules"), None, "unsigned");
    }
}
