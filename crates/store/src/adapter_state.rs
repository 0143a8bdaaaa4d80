//! `AdapterStore` on the database, so a copied database file leaks neither
//! refreshed tokens nor who got which email:
//!
//! - values are AES-256-GCM encrypted under the installation's key (see
//!   `secret_key.rs`), with the associated data `scope \0 name`: a value
//!   copied into another row fails to decrypt instead of being believed;
//! - names are stored as an HMAC-SHA256 tag of `scope \0 name` (hex), never
//!   in clear (an email delivery mark's name is the recipient's address).
//!   Nothing lists names back, so the tag is all the store needs.
//!
//! Rows written by earlier builds (a bare SHA-256 of the passphrase as the
//! key, no associated data, names in clear) are deliberately not migrated:
//! Clarion is pre-release. Looked up by tag, they are simply not found, and
//! the adapter starts over (logs in again; an email send interrupted across
//! the upgrade may repeat). A row that is found but cannot be decrypted
//! (another key, another row's value) is an error naming the scope/name.

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clarion_core::{AdapterStore, AdapterStoreError, Secret};
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::entity::adapter_state;
use crate::secret_key::SecretKey;
use crate::{Store, now_ms};

#[derive(Debug, Clone)]
pub struct DbAdapterStore {
    store: Store,
    key: SecretKey,
}

impl DbAdapterStore {
    pub fn new(store: Store, key: SecretKey) -> Self {
        Self { store, key }
    }
}

/// What the ciphertext is bound to: the row it belongs in.
fn associated_data(scope: &str, name: &str) -> Vec<u8> {
    [scope.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn fail(what: &str) -> AdapterStoreError {
    AdapterStoreError(what.to_owned())
}

#[async_trait]
impl AdapterStore for DbAdapterStore {
    async fn load(&self, scope: &str, name: &str) -> Result<Option<Secret>, AdapterStoreError> {
        let row = adapter_state::Entity::find()
            .filter(adapter_state::Column::Scope.eq(scope))
            .filter(adapter_state::Column::Name.eq(self.key.name_tag(scope, name)))
            .one(&self.store.db)
            .await
            .map_err(|e| AdapterStoreError(e.to_string()))?;
        let Some(row) = row else { return Ok(None) };
        let nonce = B64.decode(&row.nonce).map_err(|_| fail("corrupt nonce"))?;
        let ciphertext = B64
            .decode(&row.ciphertext)
            .map_err(|_| fail("corrupt value"))?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| fail("corrupt nonce"))?;
        // A changed key, a value moved from another row, or one written by
        // an older build fails here; say which, without any detail of the value.
        let aad = associated_data(scope, name);
        let payload = Payload {
            msg: &ciphertext,
            aad: &aad,
        };
        let plain = self
            .key
            .cipher()
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| {
                AdapterStoreError(format!(
                    "cannot decrypt adapter state {scope}/{name}: it was saved under another key \
                     (was CLARION_SECRET_KEY or the key file changed?), belongs to another row, \
                     or was written by an older Clarion (not migrated)"
                ))
            })?;
        let text = String::from_utf8(plain).map_err(|_| fail("stored value is not text"))?;
        Ok(Some(Secret::new(text)))
    }

    async fn save(&self, scope: &str, name: &str, value: &Secret) -> Result<(), AdapterStoreError> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = associated_data(scope, name);
        let payload = Payload {
            msg: value.expose().as_bytes(),
            aad: &aad,
        };
        let ciphertext = self
            .key
            .cipher()
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| fail("encryption failed"))?;
        let row = adapter_state::ActiveModel {
            scope: Set(scope.to_owned()),
            name: Set(self.key.name_tag(scope, name)),
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

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::secret_key::tests::temp_dir;

    async fn state(dir: &std::path::Path) -> DbAdapterStore {
        let url = format!("sqlite://{}?mode=rwc", dir.join("clarion.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        DbAdapterStore::new(store, SecretKey::from_key_bytes(&[9u8; 32]).unwrap())
    }

    /// Every column of every row, as text, straight from the database.
    async fn raw_table(state: &DbAdapterStore) -> String {
        let db = state.store.connection();
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT scope, name, nonce, ciphertext FROM adapter_state",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                (0..4)
                    .map(|i| row.try_get_by_index::<String>(i).unwrap())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn names_are_stored_as_keyed_hashes_not_in_clear() {
        let dir = temp_dir("names");
        let state = state(&dir).await;
        let scope = "newsletter/sent/5f0c7a1e";
        state
            .save(scope, "alice@example.com", &Secret::new("1"))
            .await
            .unwrap();
        let raw = raw_table(&state).await;
        assert!(!raw.to_lowercase().contains("alice"), "{raw}");
        assert!(!raw.contains("example.com"), "{raw}");
        let name = raw.split('|').nth(1).unwrap();
        assert_eq!(name.len(), 64, "hex HMAC-SHA256: {name}");
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        // Transparent to adapters: the mark is found by its plain name.
        assert_eq!(
            state
                .load(scope, "alice@example.com")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            "1"
        );
        assert!(
            state
                .load(scope, "bob@example.com")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            state
                .load("other/scope", "alice@example.com")
                .await
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_value_copied_to_another_row_does_not_decrypt() {
        let dir = temp_dir("aad");
        let state = state(&dir).await;
        state
            .save("x-main", "refresh_token", &Secret::new("rt-secret"))
            .await
            .unwrap();
        state
            .save("x-main", "access_token", &Secret::new("at-public"))
            .await
            .unwrap();
        // Someone with write access to the database swaps the ciphertexts.
        let tag = |name: &str| state.key.name_tag("x-main", name);
        let find = |name: String| {
            adapter_state::Entity::find()
                .filter(adapter_state::Column::Name.eq(name))
                .one(state.store.connection())
        };
        let refresh = find(tag("refresh_token")).await.unwrap().unwrap();
        let mut access: adapter_state::ActiveModel =
            find(tag("access_token")).await.unwrap().unwrap().into();
        access.nonce = Set(refresh.nonce.clone());
        access.ciphertext = Set(refresh.ciphertext.clone());
        adapter_state::Entity::update(access)
            .exec(state.store.connection())
            .await
            .unwrap();

        let err = state.load("x-main", "access_token").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("x-main/access_token"), "{text}");
        assert!(!text.contains("rt-secret"), "{text}");
        assert_eq!(
            state
                .load("x-main", "refresh_token")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            "rt-secret"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn another_key_cannot_read_a_value() {
        let dir = temp_dir("otherkey");
        let state = state(&dir).await;
        state
            .save("sky", "session", &Secret::new("jwt"))
            .await
            .unwrap();
        let other = DbAdapterStore::new(
            state.store.clone(),
            SecretKey::from_key_bytes(&[8u8; 32]).unwrap(),
        );
        // Another key also hashes names differently: the row is not even found.
        assert!(other.load("sky", "session").await.unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
