//! `AdapterStore` on the database: values are AES-256-GCM encrypted with a
//! key derived from `CLARION_SECRET_KEY`, so a copied database file does not
//! leak refreshed tokens.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clarion_core::{AdapterStore, AdapterStoreError, Secret};
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

use crate::entity::adapter_state;
use crate::{Store, now_ms};

/// The encryption key. Debug never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Derives the key from a passphrase (use a long random one, e.g.
    /// `openssl rand -base64 32`).
    pub fn from_passphrase(passphrase: &str) -> Self {
        Self(Sha256::digest(passphrase.as_bytes()).into())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

#[derive(Debug, Clone)]
pub struct DbAdapterStore {
    store: Store,
    key: SecretKey,
}

impl DbAdapterStore {
    pub fn new(store: Store, key: SecretKey) -> Self {
        Self { store, key }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.key.0.into())
    }
}

fn fail(what: &str) -> AdapterStoreError {
    AdapterStoreError(what.to_owned())
}

#[async_trait]
impl AdapterStore for DbAdapterStore {
    async fn load(&self, scope: &str, name: &str) -> Result<Option<Secret>, AdapterStoreError> {
        let row = adapter_state::Entity::find()
            .filter(adapter_state::Column::Scope.eq(scope))
            .filter(adapter_state::Column::Name.eq(name))
            .one(&self.store.db)
            .await
            .map_err(|e| AdapterStoreError(e.to_string()))?;
        let Some(row) = row else { return Ok(None) };
        let nonce = B64.decode(&row.nonce).map_err(|_| fail("corrupt nonce"))?;
        let ciphertext = B64
            .decode(&row.ciphertext)
            .map_err(|_| fail("corrupt value"))?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| fail("corrupt nonce"))?;
        // A wrong CLARION_SECRET_KEY fails here; say so without any detail of the value.
        let plain = self
            .cipher()
            .decrypt(&Nonce::from(nonce), ciphertext.as_ref())
            .map_err(|_| fail("cannot decrypt a stored value: was CLARION_SECRET_KEY changed?"))?;
        let text = String::from_utf8(plain).map_err(|_| fail("stored value is not text"))?;
        Ok(Some(Secret::new(text)))
    }

    async fn save(&self, scope: &str, name: &str, value: &Secret) -> Result<(), AdapterStoreError> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(&Nonce::from(nonce), value.expose().as_bytes())
            .map_err(|_| fail("encryption failed"))?;
        let row = adapter_state::ActiveModel {
            scope: Set(scope.to_owned()),
            name: Set(name.to_owned()),
            nonce: Set(B64.encode(nonce)),
            ciphertext: Set(B64.encode(ciphertext)),
            updated_at_ms: Set(now_ms()),
            ..Default::default()
        };
        adapter_state::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([adapter_state::Column::Scope, adapter_state::Column::Name])
                    .update_columns([
                        adapter_state::Column::Nonce,
                        adapter_state::Column::Ciphertext,
                        adapter_state::Column::UpdatedAtMs,
                    ])
                    .to_owned(),
            )
            .exec(&self.store.db)
            .await
            .map_err(|e| AdapterStoreError(e.to_string()))?;
        Ok(())
    }
}
