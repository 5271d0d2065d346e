//! `Authorization: Bearer <key>` → tenant, by the key's SHA-256 hash, cached per container.

use crate::domain::{Problem, ProblemCode, TenantId};
use crate::http::backend_failure;
use crate::ports::ApiKeyStore;
use lambda_http::Request;
use lambda_http::http::header;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys longer than this are refused before hashing; no real key is this long.
const MAX_KEY_LENGTH: usize = 512;

#[derive(Debug)]
pub struct Authenticator<K> {
    keys: K,
    ttl: Duration,
    cache: Mutex<HashMap<String, (TenantId, Instant)>>,
}

/// The hash under which a key is stored: keys themselves are never stored.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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

    /// The caller's tenant, or 401 (or 503 when the key store cannot be read).
    pub async fn authenticate(&self, request: &Request) -> Result<TenantId, Problem> {
        let key = bearer_key(request)
            .ok_or_else(|| Problem::new(ProblemCode::Unauthorized, "send Authorization: Bearer <api key>"))?;
        let hash = key_hash(key);
        if let Some(tenant) = self.cached(&hash) {
            super::correlation::record_tenant(tenant.as_str());
            return Ok(tenant);
        }
        match self.keys.tenant_for_key(&hash).await {
            Ok(Some(tenant)) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(hash, (tenant.clone(), Instant::now()));
                }
                super::correlation::record_tenant(tenant.as_str());
                Ok(tenant)
            }
            Ok(None) => Err(Problem::new(
                ProblemCode::Unauthorized,
                "the API key is not valid",
            )),
            Err(error) => Err(backend_failure(&error)),
        }
    }

    fn cached(&self, hash: &str) -> Option<TenantId> {
        let cache = self.cache.lock().ok()?;
        let (tenant, at) = cache.get(hash)?;
        (at.elapsed() < self.ttl).then(|| tenant.clone())
    }
}

fn bearer_key(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty() && key.len() <= MAX_KEY_LENGTH).then_some(key)
}
