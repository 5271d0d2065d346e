//! `Authorization: Bearer <key>` → tenant and scope, by the key's SHA-256 hash, cached per container: a
//! revoked key keeps working in a container that read it less than the cache's TTL ago.

use crate::domain::api_key::{KeyGrant, KeyScope, MAX_KEY_LENGTH, key_hash};
use crate::domain::{Problem, ProblemCode, TenantId};
use crate::http::backend_failure;
use crate::ports::ApiKeyStore;
use lambda_http::Request;
use lambda_http::http::header;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
// tokio's clock is the system's outside tests, and can be paused and advanced in them.
use tokio::time::Instant;

#[derive(Debug)]
pub struct Authenticator<K> {
    keys: K,
    ttl: Duration,
    cache: Mutex<HashMap<String, (KeyGrant, Instant)>>,
}

impl<K: ApiKeyStore> Authenticator<K> {
    pub fn new(keys: K, ttl: Duration) -> Self {
        Self {
            keys,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The caller's tenant, when its key may call a route that needs `needed`: else 401 (no valid key), 403
    /// (a key of a narrower scope), or 503 when the key store cannot be read.
    pub async fn authenticate(&self, request: &Request, needed: KeyScope) -> Result<TenantId, Problem> {
        Ok(self.authenticate_key(request, needed).await?.tenant)
    }

    /// As [`Self::authenticate`], with the key's id too.
    pub async fn authenticate_key(&self, request: &Request, needed: KeyScope) -> Result<KeyGrant, Problem> {
        let grant = self.grant(request).await?;
        super::correlation::record_tenant(grant.tenant.as_str());
        if !grant.scope.allows(needed) {
            return Err(Problem::new(
                ProblemCode::Forbidden,
                format!(
                    "this API key's scope is {}: it may only send events; {} {} needs a key of scope {needed}",
                    grant.scope,
                    request.method(),
                    request.uri().path()
                ),
            ));
        }
        Ok(grant)
    }

    async fn grant(&self, request: &Request) -> Result<KeyGrant, Problem> {
        let key = bearer_key(request)
            .ok_or_else(|| Problem::new(ProblemCode::Unauthorized, "send Authorization: Bearer <api key>"))?;
        let hash = key_hash(key);
        if let Some(grant) = self.cached(&hash) {
            return Ok(grant);
        }
        match self.keys.key_grant(&hash).await {
            Ok(Some(grant)) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(hash, (grant.clone(), Instant::now()));
                }
                Ok(grant)
            }
            Ok(None) => Err(Problem::new(
                ProblemCode::Unauthorized,
                "the API key is not valid",
            )),
            Err(error) => Err(backend_failure(&error)),
        }
    }

    fn cached(&self, hash: &str) -> Option<KeyGrant> {
        let cache = self.cache.lock().ok()?;
        let (grant, at) = cache.get(hash)?;
        (at.elapsed() < self.ttl).then(|| grant.clone())
    }
}

fn bearer_key(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty() && key.len() <= MAX_KEY_LENGTH).then_some(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::adapters::memory::api_keys::MemoryApiKeyStore;
    use crate::domain::Timestamp;
    use crate::domain::api_key::NewApiKey;
    use lambda_http::Body;

    const TTL: Duration = Duration::from_secs(30);

    fn request(key: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("GET")
            .uri("/v1/rules")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::Empty)
            .unwrap()
    }

    async fn authenticator(scope: KeyScope) -> (Authenticator<MemoryApiKeyStore>, String) {
        let keys = MemoryApiKeyStore::default();
        let key = NewApiKey::new(&TenantId::new("acme"), "acme-key", None, scope, Timestamp::now());
        keys.create_api_key(&key).await.unwrap();
        (Authenticator::new(keys, TTL), key.record.id)
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_key_is_refused_once_the_cache_ttl_has_passed() {
        let (auth, id) = authenticator(KeyScope::Full).await;
        let acme = TenantId::new("acme");
        assert_eq!(
            auth.authenticate(&request("acme-key"), KeyScope::Full).await,
            Ok(acme.clone())
        );

        auth.keys()
            .revoke_api_key(&acme, &id, Timestamp::now())
            .await
            .unwrap();
        tokio::time::advance(TTL.checked_sub(Duration::from_millis(1)).unwrap()).await;
        assert_eq!(
            auth.authenticate(&request("acme-key"), KeyScope::Full).await,
            Ok(acme),
            "within the TTL the cached grant still answers (the README's promise is 'within the TTL')"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let refused = auth
            .authenticate(&request("acme-key"), KeyScope::Full)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ProblemCode::Unauthorized);
    }

    #[tokio::test]
    async fn an_ingest_key_is_forbidden_routes_that_need_a_full_key() {
        let (auth, _) = authenticator(KeyScope::Ingest).await;
        let acme = TenantId::new("acme");
        assert_eq!(
            auth.authenticate(&request("acme-key"), KeyScope::Ingest).await,
            Ok(acme)
        );
        let refused = auth
            .authenticate(&request("acme-key"), KeyScope::Full)
            .await
            .unwrap_err();
        assert_eq!((refused.code, refused.status()), (ProblemCode::Forbidden, 403));
        assert!(
            refused.detail.contains("GET /v1/rules needs a key of scope full"),
            "{}",
            refused.detail
        );
    }

    #[tokio::test]
    async fn a_full_key_may_call_every_route_and_an_unknown_key_none() {
        let (auth, _) = authenticator(KeyScope::Full).await;
        for needed in [KeyScope::Ingest, KeyScope::Full] {
            assert!(auth.authenticate(&request("acme-key"), needed).await.is_ok());
            let unknown = auth
                .authenticate(&request("other-key"), needed)
                .await
                .unwrap_err();
            assert_eq!(unknown.code, ProblemCode::Unauthorized);
        }
    }
}
