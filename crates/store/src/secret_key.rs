//! The key adapter state is encrypted with, and where it comes from.
//!
//! Two sources of key material, one derivation after them:
//!
//! - a **key file** (`clarion.key` beside the SQLite database, created on
//!   first start, or `secret_key_file` / `CLARION_SECRET_KEY_FILE`): at least
//!   32 random bytes, as base64 text or raw. Already uniformly random, so it
//!   goes straight into HKDF-SHA256.
//! - a **passphrase** in `CLARION_SECRET_KEY`: stretched with Argon2id
//!   (19 MiB, 2 passes, 1 lane: the OWASP baseline) and a random 16-byte salt
//!   made once per database and kept in `adapter_state` under the reserved
//!   scope [`META_SCOPE`] (the salt is not secret; it only has to differ
//!   between installations so one precomputed table cannot serve them all).
//!   The 32-byte Argon2 output then goes into HKDF-SHA256 as well.
//!
//! HKDF expands the material into two independent keys: the AES-256-GCM key
//! for values and the HMAC-SHA256 key that turns names (e.g. an email
//! recipient) into opaque tags. Changing either source makes every stored
//! value unreadable: keep the key file (or passphrase) with the database
//! and back both up together.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use sha2::Sha256;

use crate::entity::adapter_state;
use crate::{Store, StoreError, now_ms};

/// The name of the key file Clarion creates beside a SQLite database.
pub const KEY_FILE_NAME: &str = "clarion.key";

/// Scope of Clarion's own rows in `adapter_state` (the passphrase salt).
/// Adapter rows can never collide with it: their names are stored as
/// 64-digit hex tags, never as the plain names used here.
pub const META_SCOPE: &str = "clarion/meta";
const SALT_NAME: &str = "argon2id-salt";
/// Stored beside the salt: which derivation it belongs to.
const SALT_LABEL: &str = "argon2id v=19 m=19456 t=2 p=1";

/// Key files must hold at least this much random material.
const MIN_KEY_BYTES: usize = 32;

/// HKDF "info" strings: one per derived key, so the keys are independent.
const INFO_CIPHER: &[u8] = b"clarion adapter_state aes-256-gcm v1";
const INFO_NAMES: &[u8] = b"clarion adapter_state name hmac-sha256 v1";
/// HKDF extract salt: a fixed domain separator (the input is already uniform).
const HKDF_SALT: &[u8] = b"clarion secret key v1";

/// The keys derived from the installation's secret. Debug never shows them.
#[derive(Clone)]
pub struct SecretKey {
    cipher: [u8; 32],
    names: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

fn key_error(message: impl Into<String>) -> StoreError {
    StoreError::Key(message.into())
}

impl SecretKey {
    /// From random key material (a key file's bytes): HKDF-SHA256.
    pub fn from_key_bytes(material: &[u8]) -> Result<Self, StoreError> {
        if material.len() < MIN_KEY_BYTES {
            return Err(key_error(format!(
                "a key needs at least {MIN_KEY_BYTES} random bytes, got {}",
                material.len()
            )));
        }
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), material);
        let mut key = Self {
            cipher: [0; 32],
            names: [0; 32],
        };
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
        hkdf.expand(INFO_CIPHER, &mut key.cipher)
            .and_then(|()| hkdf.expand(INFO_NAMES, &mut key.names))
            .map_err(|_| key_error("HKDF expand failed"))?;
        Ok(key)
    }

    /// From a passphrase (`CLARION_SECRET_KEY`): Argon2id with this
    /// database's random salt (made and stored on first use), then HKDF.
    /// Costs a few tens of milliseconds: done once at start.
    pub async fn from_passphrase(store: &Store, passphrase: &str) -> Result<Self, StoreError> {
        if passphrase.is_empty() {
            return Err(key_error("the passphrase is empty"));
        }
        let salt = installation_salt(store).await?;
        let params = Params::new(
            Params::DEFAULT_M_COST,
            Params::DEFAULT_T_COST,
            Params::DEFAULT_P_COST,
            Some(32),
        )
        .map_err(|e| key_error(format!("argon2 parameters: {e}")))?;
        let mut material = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), &salt, &mut material)
            .map_err(|e| key_error(format!("argon2: {e}")))?;
        Self::from_key_bytes(&material)
    }

    /// Reads a key file: base64 text of at least 32 bytes, or at least 32
    /// raw bytes. The file must exist.
    pub fn read_key_file(path: &Path) -> Result<Self, StoreError> {
        let contents = std::fs::read(path)
            .map_err(|e| key_error(format!("cannot read key file {}: {e}", path.display())))?;
        warn_if_shared(path);
        let material = std::str::from_utf8(&contents)
            .ok()
            .and_then(|text| B64.decode(text.trim()).ok())
            .filter(|decoded| decoded.len() >= MIN_KEY_BYTES)
            .unwrap_or(contents);
        Self::from_key_bytes(&material).map_err(|e| {
            key_error(format!(
                "key file {}: {e} (base64 or raw; make one with `head -c 32 /dev/urandom | base64`)",
                path.display()
            ))
        })
    }

    /// Reads the key file at `path`, or creates it when missing: 32 random
    /// bytes as base64, mode 0600, its folder created if needed. Returns the
    /// key and whether the file was created (logged once, at info, with the
    /// path, never the key).
    pub fn load_or_create_key_file(path: &Path) -> Result<(Self, bool), StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                key_error(format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                let mut material = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut material);
                file.write_all(format!("{}\n", B64.encode(material)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| {
                        key_error(format!("cannot write key file {}: {e}", path.display()))
                    })?;
                tracing::info!(
                    path = %path.display(),
                    "created a new secret key for adapter state; back it up together with the database"
                );
                Ok((Self::from_key_bytes(&material)?, true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process starting at the same moment may still be
                // writing it: give it a moment before calling it short.
                let mut tries = 0;
                loop {
                    match Self::read_key_file(path) {
                        Ok(key) => return Ok((key, false)),
                        Err(_) if tries < 10 => {
                            tries += 1;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => Err(key_error(format!(
                "cannot create key file {}: {e}",
                path.display()
            ))),
        }
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.cipher.into())
    }

    /// The opaque tag stored instead of `name`: hex HMAC-SHA256 of
    /// `scope \0 name`, so the same name in two scopes gets two tags.
    pub(crate) fn name_tag(&self, scope: &str, name: &str) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.names)
            .expect("HMAC takes any key length");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(name.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Log target of the warning below: the CLI shows it for `clarion run`
/// only, not on every command.
pub const KEY_MODE_LOG_TARGET: &str = "clarion_store::secret_key::mode";

/// A key file others can read defeats its purpose; say so, but start.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                target: KEY_MODE_LOG_TARGET,
                path = %path.display(),
                "the secret key file is readable by other users: chmod 600 it"
            );
        }
    }
}

/// The random salt for the passphrase KDF, made on first use. Several
/// processes starting together agree on one: the first insert wins and
/// everyone reads back what is stored.
async fn installation_salt(store: &Store) -> Result<Vec<u8>, StoreError> {
    let find = || {
        adapter_state::Entity::find()
            .filter(adapter_state::Column::Scope.eq(META_SCOPE))
            .filter(adapter_state::Column::Name.eq(SALT_NAME))
            .one(&store.db)
    };
    if find().await?.is_none() {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let row = adapter_state::ActiveModel {
            scope: Set(META_SCOPE.to_owned()),
            name: Set(SALT_NAME.to_owned()),
            nonce: Set(B64.encode(salt)),
            ciphertext: Set(SALT_LABEL.to_owned()),
            updated_at_ms: Set(now_ms()),
            ..Default::default()
        };
        adapter_state::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([adapter_state::Column::Scope, adapter_state::Column::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&store.db)
            .await?;
    }
    let row = find()
        .await?
        .ok_or_else(|| key_error("the passphrase salt was not stored"))?;
    if row.ciphertext != SALT_LABEL {
        return Err(key_error(format!(
            "the database's passphrase salt is for `{}`, this Clarion knows `{SALT_LABEL}`",
            row.ciphertext
        )));
    }
    B64.decode(&row.nonce)
        .ok()
        .filter(|salt| salt.len() >= 16)
        .ok_or_else(|| key_error("the database's passphrase salt is corrupt"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn temp_dir(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "clarion-store-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_created_key_file_is_private_and_read_back_as_the_same_key() {
        let dir = temp_dir("keyfile");
        let path = dir.join("data").join(KEY_FILE_NAME);
        let (first, created) = SecretKey::load_or_create_key_file(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        let (second, created) = SecretKey::load_or_create_key_file(&path).unwrap();
        assert!(!created);
        assert_eq!(first.cipher, second.cipher);
        assert_eq!(first.names, second.names);
        assert_ne!(first.cipher, first.names, "independent keys");
        // 32 random bytes, base64: never the derived key itself.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(B64.decode(text.trim()).unwrap().len(), 32);
        assert_eq!(format!("{first:?}"), "SecretKey(***)");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn key_files_may_be_base64_or_raw_and_must_hold_32_bytes() {
        let dir = temp_dir("keyformats");
        let material: Vec<u8> = (0u8..40).collect();
        let raw = dir.join("raw.key");
        let text = dir.join("text.key");
        std::fs::write(&raw, &material).unwrap();
        std::fs::write(&text, format!("  {}\n", B64.encode(&material))).unwrap();
        let a = SecretKey::read_key_file(&raw).unwrap();
        let b = SecretKey::read_key_file(&text).unwrap();
        assert_eq!(a.cipher, b.cipher);

        let short = dir.join("short.key");
        std::fs::write(&short, B64.encode([7u8; 16])).unwrap();
        let err = SecretKey::read_key_file(&short).unwrap_err().to_string();
        assert!(err.contains("at least 32 random bytes"), "{err}");
        let missing = SecretKey::read_key_file(&dir.join("none.key")).unwrap_err();
        assert!(missing.to_string().contains("cannot read key file"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_key_is_derived_with_hkdf_not_a_bare_hash() {
        use sha2::Digest;
        let material = [42u8; 32];
        let key = SecretKey::from_key_bytes(&material).unwrap();
        let bare: [u8; 32] = Sha256::digest(material).into();
        assert_ne!(key.cipher, bare);
        assert_ne!(key.cipher, material);
    }

    async fn sqlite_store(dir: &Path) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.join("clarion.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn passphrase_keys_are_salted_per_installation() {
        let (dir_a, dir_b) = (temp_dir("salt-a"), temp_dir("salt-b"));
        let (a, b) = (sqlite_store(&dir_a).await, sqlite_store(&dir_b).await);
        let key_a = SecretKey::from_passphrase(&a, "correct horse")
            .await
            .unwrap();
        let again = SecretKey::from_passphrase(&a, "correct horse")
            .await
            .unwrap();
        let key_b = SecretKey::from_passphrase(&b, "correct horse")
            .await
            .unwrap();
        assert_eq!(key_a.cipher, again.cipher, "one salt per database, reused");
        assert_ne!(
            key_a.cipher, key_b.cipher,
            "same passphrase, other installation: other key"
        );
        let rows = adapter_state::Entity::find().all(&a.db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].scope.as_str(), rows[0].name.as_str()),
            (META_SCOPE, SALT_NAME)
        );
        assert_eq!(B64.decode(&rows[0].nonce).unwrap().len(), 16);
        std::fs::remove_dir_all(dir_a).unwrap();
        std::fs::remove_dir_all(dir_b).unwrap();
    }
}
