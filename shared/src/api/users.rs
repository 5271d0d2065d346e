//! `/v1/users/{id}` and `/v1/users/{id}/preferences`: a tenant's users, each readable and writable by
//! its own tenant alone (every key is under the caller's tenant).

use super::{Api, backend, path_name, saved_status};
use crate::domain::user::{Preferences, UserProfile};
use crate::domain::{Problem, TenantId, Timestamp};
use crate::http::{HttpResponse, MAX_BODY_BYTES, empty_response, json_body, json_response};
use crate::ports::{ApiKeyStore, UserStore};
use lambda_http::Request;

impl<K: ApiKeyStore, C: UserStore, P> Api<K, C, P> {
    pub(super) async fn put_user(
        &self,
        request: &Request,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<HttpResponse, Problem> {
        let user_id = path_name(user_id)?;
        let profile = UserProfile::parse(
            &json_body(request, MAX_BODY_BYTES)?,
            &self.settings.webhook_policy,
        )
        .map_err(Problem::validation)?;
        let saved = self
            .store
            .put_profile(tenant, user_id, &profile, Timestamp::now())
            .await
            .map_err(|e| backend(&e))?;
        Ok(json_response(saved_status(saved), &profile.to_json(user_id)))
    }

    pub(super) async fn get_user(&self, tenant: &TenantId, user_id: &str) -> Result<HttpResponse, Problem> {
        let profile = self
            .stored_user(tenant, user_id)
            .await?
            .and_then(|user| user.profile);
        let profile = profile.ok_or_else(|| Problem::not_found(&format!("user {user_id}")))?;
        Ok(json_response(200, &profile.to_json(user_id)))
    }

    pub(super) async fn delete_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<HttpResponse, Problem> {
        let deleted = path_name(user_id).is_ok()
            && self
                .store
                .delete_user(tenant, user_id)
                .await
                .map_err(|e| backend(&e))?;
        if deleted {
            Ok(empty_response(204))
        } else {
            Err(Problem::not_found(&format!("user {user_id}")))
        }
    }

    pub(super) async fn put_preferences(
        &self,
        request: &Request,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<HttpResponse, Problem> {
        let user_id = path_name(user_id)?;
        let preferences =
            Preferences::parse(&json_body(request, MAX_BODY_BYTES)?).map_err(Problem::validation)?;
        let saved = self
            .store
            .put_preferences(tenant, user_id, &preferences, Timestamp::now())
            .await
            .map_err(|e| backend(&e))?;
        Ok(json_response(saved_status(saved), &preferences.to_json(user_id)))
    }

    /// A user who never set preferences has the defaults (everything allowed); one Herald does not know
    /// at all is 404.
    pub(super) async fn get_preferences(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<HttpResponse, Problem> {
        let user = self
            .stored_user(tenant, user_id)
            .await?
            .ok_or_else(|| Problem::not_found(&format!("user {user_id}")))?;
        Ok(json_response(
            200,
            &user.preferences.unwrap_or_default().to_json(user_id),
        ))
    }

    async fn stored_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<crate::domain::user::User>, Problem> {
        if path_name(user_id).is_err() {
            return Ok(None);
        }
        self.store.user(tenant, user_id).await.map_err(|e| backend(&e))
    }
}
