//! Tenants' API keys (decision 24): what a key may do, how keys and their ids are made, and which
//! custom keys are too weak to store. Keys themselves are never stored, only their SHA-256 hashes.

use crate::domain::{TenantId, Timestamp};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Generated keys start with this, so a leaked one is recognisable (secret scanners, logs).
pub const GENERATED_KEY_PREFIX: &str = "hk_";
/// Random bytes in a generated key: 192 bits, beyond any guessing.
const GENERATED_KEY_BYTES: usize = 24;
/// A custom key shorter than this is refused.
pub const MIN_CUSTOM_KEY_LENGTH: usize = 32;
/// A custom key made of fewer distinct characters than this is refused (`aaaa…`, `0101…`).
pub const MIN_DISTINCT_CHARACTERS: usize = 10;
/// Keys longer than this are refused before hashing; no real key is this long.
pub const MAX_KEY_LENGTH: usize = 512;

/// What a key may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScope {
    /// `POST /v1/events` and `POST /v1/events/batch` only: the key a product's backend sends events with.
    Ingest,
    /// Every route of the tenant's.
    Full,
}

impl KeyScope {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Full => "full",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ingest" => Some(Self::Ingest),
            "full" => Some(Self::Full),
            _ => None,
        }
    }

    /// Whether a key of this scope may call a route that needs `needed`.
    pub fn allows(self, needed: Self) -> bool {
        self == Self::Full || needed == Self::Ingest
    }
}

impl std::fmt::Display for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a live key grants: whose it is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub tenant: TenantId,
    /// The key's id: what its ingest budget is counted by.
    pub key_id: String,
    pub scope: KeyScope,
}

/// A key as an operator sees it: never the key, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Short and not secret: what `herald keys revoke` names.
    pub id: String,
    pub tenant: TenantId,
    pub name: Option<String>,
    pub scope: KeyScope,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A key about to be stored: the hash it is found by, and its entry in the tenant's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub hash: String,
    pub record: ApiKeyRecord,
}

impl NewApiKey {
    /// The key `key` for `tenant`, under a new id. Writing the same value again (a retry) is recognised
    /// by the stores as the same key, so make it once per key.
    pub fn new(tenant: &TenantId, key: &str, name: Option<&str>, scope: KeyScope, now: Timestamp) -> Self {
        Self {
            hash: key_hash(key),
            record: ApiKeyRecord {
                id: new_key_id(),
                tenant: tenant.clone(),
                name: name.map(str::to_owned),
                scope,
                created_at: now,
                revoked_at: None,
            },
        }
    }
}

/// Why a key's hash cannot be stored again (every store says the same).
pub fn taken_message(same_tenant: bool, id: &str) -> String {
    if same_tenant {
        format!("this key is already the tenant's key {id}; a key is stored once")
    } else {
        "this key already belongs to another tenant, and a key never moves between tenants; use another key"
            .to_owned()
    }
}

/// The hash under which a key is stored: keys themselves are never stored.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// 12 hex digits (48 bits) of a v4 UUID's random part: unrelated to the key, so an id shown in a terminal
/// or a ticket says nothing about it (a prefix of the hash would let a weak key be checked offline).
pub fn new_key_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A new key: `hk_` and 192 random bits from the operating system, base64url.
pub fn generate_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; GENERATED_KEY_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{GENERATED_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Why a key an operator chose is refused: one a person made up is easier to guess than a generated one.
pub fn check_custom_key(key: &str) -> Result<(), String> {
    let length = key.chars().count();
    if length < MIN_CUSTOM_KEY_LENGTH {
        return Err(format!(
            "a custom key must be at least {MIN_CUSTOM_KEY_LENGTH} characters (this one has {length}); \
             leave --key out to have a strong one generated"
        ));
    }
    if length > MAX_KEY_LENGTH {
        return Err(format!("a key is at most {MAX_KEY_LENGTH} characters"));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("a key is printable ASCII without spaces (it travels in an HTTP header)".to_owned());
    }
    let distinct = key.chars().collect::<std::collections::BTreeSet<_>>().len();
    if distinct < MIN_DISTINCT_CHARACTERS {
        return Err(format!(
            "a custom key needs at least {MIN_DISTINCT_CHARACTERS} distinct characters (this one has \
             {distinct}); leave --key out to have a strong one generated"
        ));
    }
    let bytes = key.as_bytes();
    if let Some(period) = (1..=bytes.len() / 2).find(|&p| bytes.iter().zip(&bytes[p..]).all(|(a, b)| a == b))
    {
        return Err(format!(
            "a custom key must not repeat a shorter pattern (this one repeats its first {period} \
             characters); leave --key out to have a strong one generated"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_ingest_key_may_only_ingest_and_a_full_key_may_do_everything() {
        assert!(KeyScope::Ingest.allows(KeyScope::Ingest));
        assert!(!KeyScope::Ingest.allows(KeyScope::Full));
        assert!(KeyScope::Full.allows(KeyScope::Ingest));
        assert!(KeyScope::Full.allows(KeyScope::Full));
        for scope in [KeyScope::Ingest, KeyScope::Full] {
            assert_eq!(KeyScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(KeyScope::parse("admin"), None);
    }

    #[test]
    fn generated_keys_carry_192_random_bits_and_pass_the_custom_key_checks() {
        let key = generate_key().unwrap();
        let random = key.strip_prefix(GENERATED_KEY_PREFIX).unwrap();
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(random)
            .unwrap();
        assert_eq!(decoded.len() * 8, 192);
        assert_ne!(generate_key().unwrap(), key);
        check_custom_key(&key).unwrap();
    }

    #[test]
    fn weak_custom_keys_are_refused_with_the_reason() {
        let refused = |key: &str, why: &str| {
            let error = check_custom_key(key).unwrap_err();
            assert!(error.contains(why), "{key}: {error}");
        };
        refused("herald-dev-key", "at least 32 characters (this one has 14)");
        refused(
            &"a".repeat(40),
            "at least 10 distinct characters (this one has 1)",
        );
        refused(
            "0123456789012345678901234567890123",
            "repeats its first 10 characters",
        );
        refused("correct horse battery staple is long", "without spaces");
        refused("pässwörd-pässwörd-0123456789-abcdef", "printable ASCII");
        refused(&format!("{}x", "0123456789abcdef".repeat(32)), "at most 512");
        check_custom_key("Tr0ub4dor&3-is-not-a-good-idea-either").unwrap();
    }

    #[test]
    fn a_key_id_is_short_and_unrelated_to_the_key() {
        let key = NewApiKey::new(
            &TenantId::new("acme"),
            "k",
            None,
            KeyScope::Full,
            Timestamp::now(),
        );
        assert_eq!(key.record.id.len(), 12);
        assert!(!key.hash.contains(&key.record.id));
        let again = NewApiKey::new(
            &TenantId::new("acme"),
            "k",
            None,
            KeyScope::Full,
            Timestamp::now(),
        );
        assert_eq!(again.hash, key.hash);
        assert_ne!(again.record.id, key.record.id);
    }
}
