//! Users, sessions, API tokens, login links, the audit log and approvals.
//!
//! Secrets are never stored: sessions, tokens and login links are kept as
//! the SHA-256 of a 256-bit random value (fast to look up, useless if the
//! database leaks); passwords as Argon2id PHC strings.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use base64::Engine;
use clarion_core::Role;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::entity::{api_token, audit_entry, login_link, post, session, user};
use crate::{Store, StoreError, now_ms};

/// `pending_approval`: a contributor's post waiting for an editor.
pub const PENDING_APPROVAL: &str = "pending_approval";
pub const APPROVED: &str = "approved";
pub const REJECTED: &str = "rejected";

/// A fresh 256-bit random secret, URL-safe (cookie values, tokens, links).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a session cookie, API token or login link.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Argon2id with a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Team(format!("cannot hash the password: {e}")))
}

/// True when `password` matches `phc`. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Refuses what cannot be an email address before anything is stored.
pub fn normalize_email(email: &str) -> Result<String, StoreError> {
    let email = email.trim().to_lowercase();
    let valid = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(StoreError::Team(format!(
            "`{email}` is not an email address (name@example.com)"
        )))
    }
}

/// How often a token's `last_used_at_ms` is rewritten, at most.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_CHARS: usize = 10;

pub fn check_password_strength(password: &str) -> Result<(), StoreError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::Team(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// A row of the audit log to write.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

impl Store {
    /// Adds a user. The email is the login; a taken email is refused.
    pub async fn add_user(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password: Option<&str>,
    ) -> Result<user::Model, StoreError> {
        let email = normalize_email(email)?;
        if let Some(p) = password {
            check_password_strength(p)?;
        }
        if self.user_by_email(&email).await?.is_some() {
            return Err(StoreError::Team(format!("user `{email}` already exists")));
        }
        let hash = password.map(hash_password).transpose()?;
        let now = now_ms();
        let name = if name.trim().is_empty() {
            email.split('@').next().unwrap_or(&email).to_owned()
        } else {
            name.trim().to_owned()
        };
        Ok(user::ActiveModel {
            email: Set(email),
            name: Set(name),
            role: Set(role.as_str().to_owned()),
            password_hash: Set(hash),
            created_at_ms: Set(now),
            updated_at_ms: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?)
    }

    pub async fn users(&self) -> Result<Vec<user::Model>, StoreError> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn count_users(&self) -> Result<u64, StoreError> {
        Ok(user::Entity::find().count(&self.db).await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<user::Model>, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email.trim().to_lowercase()))
            .one(&self.db)
            .await?)
    }

    pub async fn user_by_id(&self, id: i32) -> Result<Option<user::Model>, StoreError> {
        Ok(user::Entity::find_by_id(id).one(&self.db).await?)
    }

    async fn existing_user(&self, email: &str) -> Result<user::Model, StoreError> {
        self.user_by_email(email)
            .await?
            .ok_or_else(|| StoreError::Team(format!("no user `{}`", email.trim())))
    }

    /// Sets a new password and signs the user out everywhere.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), StoreError> {
        check_password_strength(password)?;
        let u = self.existing_user(email).await?;
        let hash = hash_password(password)?;
        let txn = self.db.begin().await?;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .col_expr(user::Column::UpdatedAtMs, Expr::value(now_ms()))
            .filter(user::Column::Id.eq(u.id))
            .exec(&txn)
            .await?;
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(u.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Changes a role. The last owner cannot be demoted (someone must be
    /// able to manage users).
    pub async fn set_role(&self, email: &str, role: Role) -> Result<user::Model, StoreError> {
        let u = self.existing_user(email).await?;
        if u.role() == Role::Owner && role != Role::Owner {
            self.refuse_last_owner(&u, "demote").await?;
        }
        user::Entity::update_many()
            .col_expr(user::Column::Role, Expr::value(role.as_str()))
            .col_expr(user::Column::UpdatedAtMs, Expr::value(now_ms()))
            .filter(user::Column::Id.eq(u.id))
            .exec(&self.db)
            .await?;
        self.existing_user(email).await
    }

    /// Removes a user with their sessions, tokens and login links.
    pub async fn remove_user(&self, email: &str) -> Result<user::Model, StoreError> {
        let u = self.existing_user(email).await?;
        if u.role() == Role::Owner {
            self.refuse_last_owner(&u, "remove").await?;
        }
        let txn = self.db.begin().await?;
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(u.id))
            .exec(&txn)
            .await?;
        api_token::Entity::delete_many()
            .filter(api_token::Column::UserId.eq(u.id))
            .exec(&txn)
            .await?;
        login_link::Entity::delete_many()
            .filter(login_link::Column::UserId.eq(u.id))
            .exec(&txn)
            .await?;
        user::Entity::delete_by_id(u.id).exec(&txn).await?;
        txn.commit().await?;
        Ok(u)
    }

    async fn refuse_last_owner(&self, u: &user::Model, what: &str) -> Result<(), StoreError> {
        let owners = user::Entity::find()
            .filter(user::Column::Role.eq(Role::Owner.as_str()))
            .count(&self.db)
            .await?;
        if owners <= 1 {
            return Err(StoreError::Team(format!(
                "cannot {what} `{}`: they are the last owner (make someone else owner first)",
                u.email
            )));
        }
        Ok(())
    }

    /// Starts a session; returns the cookie value and the CSRF token.
    pub async fn create_session(
        &self,
        user_id: i32,
        lifetime_ms: i64,
    ) -> Result<(String, session::Model), StoreError> {
        let secret = new_secret();
        let now = now_ms();
        let row = session::ActiveModel {
            token_hash: Set(secret_hash(&secret)),
            user_id: Set(user_id),
            csrf: Set(new_secret()),
            created_at_ms: Set(now),
            expires_at_ms: Set(now + lifetime_ms),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok((secret, row))
    }

    /// The live session of a cookie value, with its user.
    pub async fn session_user(
        &self,
        cookie: &str,
    ) -> Result<Option<(session::Model, user::Model)>, StoreError> {
        let Some(s) = session::Entity::find()
            .filter(session::Column::TokenHash.eq(secret_hash(cookie)))
            .filter(session::Column::ExpiresAtMs.gt(now_ms()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.user_by_id(s.user_id).await?.map(|u| (s, u)))
    }

    pub async fn end_session(&self, cookie: &str) -> Result<(), StoreError> {
        session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(secret_hash(cookie)))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A new API token for a user; the token itself is returned once.
    pub async fn create_api_token(
        &self,
        user_id: i32,
        name: &str,
    ) -> Result<(String, api_token::Model), StoreError> {
        let secret = format!("clt_{}", new_secret());
        let row = api_token::ActiveModel {
            user_id: Set(user_id),
            name: Set(name.trim().to_owned()),
            token_hash: Set(secret_hash(&secret)),
            created_at_ms: Set(now_ms()),
            last_used_at_ms: Set(None),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok((secret, row))
    }

    /// The user holding this API token; records its use.
    pub async fn api_token_user(&self, token: &str) -> Result<Option<user::Model>, StoreError> {
        let Some(t) = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(secret_hash(token)))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        // "Last used" to the minute: a script calling the API in a loop
        // must not turn every read into a write.
        let now = now_ms();
        if t.last_used_at_ms
            .is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS)
        {
            api_token::Entity::update_many()
                .col_expr(api_token::Column::LastUsedAtMs, Expr::value(now))
                .filter(api_token::Column::Id.eq(t.id))
                .exec(&self.db)
                .await?;
        }
        self.user_by_id(t.user_id).await
    }

    pub async fn api_tokens(&self, user_id: i32) -> Result<Vec<api_token::Model>, StoreError> {
        Ok(api_token::Entity::find()
            .filter(api_token::Column::UserId.eq(user_id))
            .order_by_asc(api_token::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Revokes one of a user's tokens; false if they have no such token.
    pub async fn revoke_api_token(&self, user_id: i32, id: i32) -> Result<bool, StoreError> {
        let done = api_token::Entity::delete_many()
            .filter(api_token::Column::UserId.eq(user_id))
            .filter(api_token::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// A one-time login link token for a user, valid for `lifetime_ms`.
    pub async fn create_login_link(
        &self,
        user_id: i32,
        lifetime_ms: i64,
    ) -> Result<String, StoreError> {
        let secret = new_secret();
        login_link::ActiveModel {
            token_hash: Set(secret_hash(&secret)),
            user_id: Set(user_id),
            expires_at_ms: Set(now_ms() + lifetime_ms),
            used_at_ms: Set(None),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(secret)
    }

    /// Uses a login link: at most once, before it expires (a conditional
    /// update, so two clicks racing sign in once).
    pub async fn use_login_link(&self, token: &str) -> Result<Option<user::Model>, StoreError> {
        let now = now_ms();
        let hash = secret_hash(token);
        let used = login_link::Entity::update_many()
            .col_expr(login_link::Column::UsedAtMs, Expr::value(now))
            .filter(login_link::Column::TokenHash.eq(hash.as_str()))
            .filter(login_link::Column::UsedAtMs.is_null())
            .filter(login_link::Column::ExpiresAtMs.gt(now))
            .exec(&self.db)
            .await?;
        if used.rows_affected != 1 {
            return Ok(None);
        }
        let Some(link) = login_link::Entity::find()
            .filter(login_link::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        self.user_by_id(link.user_id).await
    }

    pub async fn audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        audit_entry::ActiveModel {
            at_ms: Set(now_ms()),
            actor: Set(record.actor),
            action: Set(record.action),
            subject: Set(record.subject),
            detail: Set(record.detail),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub async fn audit_entries(&self, limit: u64) -> Result<Vec<audit_entry::Model>, StoreError> {
        Ok(audit_entry::Entity::find()
            .order_by_desc(audit_entry::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Marks a (draft) post as waiting for approval at `requested_at_ms`.
    pub async fn request_approval(
        &self,
        post_id: i32,
        requested_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        post::Entity::update_many()
            .col_expr(post::Column::Approval, Expr::value(PENDING_APPROVAL))
            .col_expr(post::Column::RequestedAtMs, Expr::value(requested_at_ms))
            .col_expr(
                post::Column::ReviewComment,
                Expr::value(Option::<String>::None),
            )
            .filter(post::Column::Id.eq(post_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Decides a pending post: `approved` or `rejected`, with the
    /// reviewer's comment. Guarded on `pending_approval`, so two reviewers
    /// deciding at once decide once; the loser gets a conflict.
    pub async fn decide_approval(
        &self,
        post_id: i32,
        decision: &str,
        comment: Option<&str>,
    ) -> Result<post::Model, StoreError> {
        let done = post::Entity::update_many()
            .col_expr(post::Column::Approval, Expr::value(decision))
            .col_expr(
                post::Column::ReviewComment,
                Expr::value(comment.map(str::to_owned)),
            )
            .col_expr(post::Column::UpdatedAtMs, Expr::value(now_ms()))
            .filter(post::Column::Id.eq(post_id))
            .filter(post::Column::Approval.eq(PENDING_APPROVAL))
            .exec(&self.db)
            .await?;
        let found = post::Entity::find_by_id(post_id).one(&self.db).await?;
        match (done.rows_affected, found) {
            (_, None) => Err(StoreError::PostNotFound(post_id)),
            (1, Some(p)) => Ok(p),
            (_, Some(p)) => Err(StoreError::Conflict {
                id: post_id,
                reason: format!(
                    "not waiting for approval (approval: {})",
                    p.approval.as_deref().unwrap_or("none")
                ),
            }),
        }
    }

    /// Posts waiting for approval, oldest first.
    pub async fn pending_approvals(&self) -> Result<Vec<post::Model>, StoreError> {
        Ok(post::Entity::find()
            .filter(post::Column::Approval.eq(PENDING_APPROVAL))
            .order_by_asc(post::Column::Id)
            .all(&self.db)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn emails_are_normalised_and_non_addresses_refused() {
        assert_eq!(
            normalize_email(" Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in ["ana", "@example.com", "ana@localhost", "a na@example.com"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_random_and_stored_only_as_hashes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }
}
