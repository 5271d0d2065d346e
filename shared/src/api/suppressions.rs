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

impl<K: ApiKeyStore + CursorKeyStore, C: SuppressionList, P> Api<K, C, P> {
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
    // RFC 3986 decoding: a `%` without two hex digits stays (it may be in an address's local part), and `+`
    // stays `+` (form encoding's space, but an ordinary character of a path and of `ada+news@example.com`).
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| invalid("its percent-encoding is not UTF-8"))?;
    let address = suppression_key(&decoded);
    check_email(&address).map_err(invalid)?;
    Ok(address)
}
