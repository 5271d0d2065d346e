//! Users in memory, as the config table keeps them: one record per user, each part written on its own.

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::user::{Preferences, User, UserProfile};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, Saved, UserStore};
use std::collections::HashMap;
use std::sync::Mutex;

/// Failpoints by operation name (`"user"`, `"put_profile"`, `"put_preferences"`, `"delete_user"`); reads
/// are counted, so a test can see ingest read a user once per event.
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    users: Mutex<HashMap<(TenantId, String), User>>,
    reads: Mutex<usize>,
    pub failpoints: Failpoints,
}

impl MemoryUserStore {
    pub fn reads(&self) -> usize {
        *lock(&self.reads)
    }
}

fn saved(had: bool) -> Saved {
    if had { Saved::Replaced } else { Saved::Created }
}

impl UserStore for MemoryUserStore {
    async fn user(&self, tenant: &TenantId, user_id: &str) -> Result<Option<User>, BackendError> {
        *lock(&self.reads) += 1;
        before_read(&self.failpoints, "user").await?;
        Ok(lock(&self.users)
            .get(&(tenant.clone(), user_id.to_owned()))
            .cloned())
    }

    async fn put_profile(
        &self,
        tenant: &TenantId,
        user_id: &str,
        profile: &UserProfile,
        _now: Timestamp,
    ) -> Result<Saved, BackendError> {
        let fault = before_write(&self.failpoints, "put_profile").await?;
        let had = {
            let mut users = lock(&self.users);
            let user = users.entry((tenant.clone(), user_id.to_owned())).or_default();
            user.profile.replace(profile.clone()).is_some()
        };
        after_write("put_profile", fault).map(|()| saved(had))
    }

    async fn put_preferences(
        &self,
        tenant: &TenantId,
        user_id: &str,
        preferences: &Preferences,
        _now: Timestamp,
    ) -> Result<Saved, BackendError> {
        let fault = before_write(&self.failpoints, "put_preferences").await?;
        let had = {
            let mut users = lock(&self.users);
            let user = users.entry((tenant.clone(), user_id.to_owned())).or_default();
            user.preferences.replace(preferences.clone()).is_some()
        };
        after_write("put_preferences", fault).map(|()| saved(had))
    }

    async fn delete_user(&self, tenant: &TenantId, user_id: &str) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "delete_user").await?;
        let had = lock(&self.users)
            .remove(&(tenant.clone(), user_id.to_owned()))
            .is_some();
        after_write("delete_user", fault).map(|()| had)
    }
}
