//! `/v1/suppressions` and `/v1/suppressions/{address}`: a tenant's suppression list, read and trimmed by its
//! own tenant alone. Entries are added by SES's feedback, never through the API; removing one lets Herald
//! send to the address again.

use super::{Api, backend, list_response};
use crate::domain::address::check_email;
use crate::domain::suppression::{Suppression, suppression_key};
use crate::domain::{Problem, ProblemCode, TenantId};
use crate::http::{HttpResponse, empty_response, json_response};
use crate::ports::{ApiKeyStore, CursorKeyStore, SuppressionList};
use lambda_http::Request;

/// The name cursors of this list are bound to.
const LIST: &str = "suppressions";

impl<K: ApiKeyStore + CursorKeyStore, C: SuppressionList> Api<K, C> {
    pub(super) async fn list_suppressions(
        &self,
        request: &Request,
        tenant: &TenantId,
    ) -> Result<HttpResponse, Problem> {
        let cursor = self.cursors.signer(self.auth.keys()).await?;
        let page = cursor.page_request(request, tenant, LIST)?;
        let listed = self
            .store
            .suppressions(tenant, &page)
            .await
            .map_err(|e| backend(&e))?;
        Ok(list_response(&cursor, tenant, LIST, listed, Suppression::to_json))
    }

    pub(super) async fn get_suppression(
        &self,
        tenant: &TenantId,
        segment: &str,
    ) -> Result<HttpResponse, Problem> {
        let address = path_address(segment)?;
        let entry = self
            .store
            .suppression(tenant, &address)
            .await
            .map_err(|e| backend(&e))?
            .ok_or_else(|| not_listed(&address))?;
        Ok(json_response(200, &entry.to_json()))
    }

    pub(super) async fn delete_suppression(
        &self,
        tenant: &TenantId,
        segment: &str,
    ) -> Result<HttpResponse, Problem> {
        let address = path_address(segment)?;
        let removed = self
            .store
            .unsuppress(tenant, &address)
            .await
            .map_err(|e| backend(&e))?;
        if removed {
            Ok(empty_response(204))
        } else {
            Err(not_listed(&address))
        }
    }
}

fn not_listed(address: &str) -> Problem {
    Problem::new(
        ProblemCode::NotFound,
        format!("{address} is not on the suppression list"),
    )
}

/// The address a path segment names, as the list keys it. Clients send `@` encoded (`ada%40example.com`)
/// or not, and the path reaches the function as sent, so the segment is decoded here. Anything that
/// could never be on the list is refused with a validation problem rather than a 404, so a caller who
/// built the URL wrongly learns so.
fn path_address(segment: &str) -> Result<String, Problem> {
    let invalid = |why: &str| {
        Problem::new(
            ProblemCode::ValidationFailed,
            format!("{segment:?} is not an email address in the path: {why}"),
        )
    };
    let decoded = percent_decode(segment).ok_or_else(|| invalid("its percent-encoding is not UTF-8"))?;
    let address = suppression_key(&decoded);
    check_email(&address).map_err(invalid)?;
    Ok(address)
}

/// RFC 3986 percent-decoding. A `%` not followed by two hex digits is kept as it is (`%` is an ordinary
/// character of an address's local part); `+` stays `+`, which is form encoding's space but an ordinary
/// character in a path and in an address (`ada+news@example.com`). `None` when the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let escaped = bytes
            .get(at + 1..at + 3)
            .filter(|hex| byte == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(value) = escaped {
            decoded.push(value);
            at += 3;
        } else {
            decoded.push(byte);
            at += 1;
        }
    }
    String::from_utf8(decoded).ok()
}
