//! Imports (`clarion post import`, `POST /api/v1/posts:import`): the same
//! checks as any create, plus an identity per row so that importing a file
//! again creates nothing new.
//!
//! A row's identity is its *import key*: SHA-256 over the row's content as
//! parsed and normalised (see [`import_key`]), stored in `posts.import_key`
//! (unique). Rows whose key is stored are skipped before they are checked
//! (a re-import a week later must not be refused because those posts' times
//! have passed), and the insert itself skips a key stored meanwhile
//! (`ON CONFLICT (import_key) DO NOTHING`), so two imports of one file at
//! the same moment store each row once. Only imports set the key.

use std::collections::HashSet;

use clarion_store::PostDetail;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{PostInput, PostService, ValidPost};
use crate::{ItemError, ServiceError};

/// Changes whenever the normalisation below does (which would make every
/// row imported before look new: do not, without a migration of the keys).
const KEY_VERSION: &str = "clarion-import-v1";

/// A post read from an import file, with its import key.
#[derive(Debug, Clone)]
pub struct ImportPost {
    input: PostInput,
    key: String,
}

impl ImportPost {
    pub fn new(input: PostInput) -> Self {
        let key = import_key(&input);
        Self { input, key }
    }

    /// The row's fingerprint: equal for rows that say the same thing.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The fingerprint of an imported post: 64 hex digits of SHA-256 over its
/// fields as parsed, normalised so that the same post written differently
/// is the same post — times as instants (`09:00:00Z` = `10:00:00+01:00`; no
/// time = "now", the same on every import), channels in any order, CRLF or
/// LF and surrounding blanks in texts, an empty optional cell or no cell,
/// variables and overrides in any order, CSV or JSON Lines. Media are kept
/// in order (the first is the preview on most platforms), by path as given.
pub fn import_key(input: &PostInput) -> String {
    let text = |s: &str| s.replace("\r\n", "\n").trim().to_owned();
    let optional = |s: &Option<String>| {
        s.as_deref()
            .map(text)
            .filter(|s| !s.is_empty())
            .map(Value::String)
            .unwrap_or(Value::Null)
    };
    let mut channels: Vec<&str> = input.channels.iter().map(|c| c.trim()).collect();
    channels.sort_unstable();
    let overrides: serde_json::Map<String, Value> = input
        .overrides
        .iter()
        .map(|(channel, body)| (channel.trim().to_owned(), Value::String(text(body))))
        .collect();
    let media: Vec<Value> = input
        .media
        .iter()
        .map(|m| json!([m.path.to_string_lossy(), text(&m.alt)]))
        .collect();
    let canonical = json!({
        "at": input.at.map(|t| t.timestamp_millis()),
        "author": optional(&input.author),
        "body": text(&input.body),
        "campaign": optional(&input.campaign),
        "channels": channels,
        "draft": input.draft,
        "media": media,
        "overrides": overrides,
        "template": optional(&input.template),
        "thread": input.thread,
        "vars": Value::Object(input.vars.clone()),
    });
    let mut hasher = Sha256::new();
    hasher.update(KEY_VERSION.as_bytes());
    hasher.update(b"\n");
    hasher.update(sorted(&canonical).to_string().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `value` with every object's keys in sorted order, whatever serde_json's
/// map keeps (insertion order with its `preserve_order` feature).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

impl PostService {
    /// Which of `keys` are stored (rows imported before).
    pub async fn stored_import_keys(
        &self,
        keys: &[String],
    ) -> Result<HashSet<String>, ServiceError> {
        Ok(self.store.stored_import_keys(keys).await?)
    }

    /// [`Self::check_many`] for imported rows: each valid post carries its
    /// row's import key, so storing it again is a no-op.
    pub fn check_import(&self, posts: Vec<ImportPost>) -> Result<Vec<ValidPost>, Vec<ItemError>> {
        self.check_each(posts.into_iter().map(|p| (p.input, Some(p.key))))
    }

    /// Stores checked imported posts (all or none) and queues them; returns
    /// after the commit, in order: a post's details, or None where its
    /// import key was stored meanwhile (by a concurrent import of the same
    /// row, or earlier in `posts`) and nothing was written for it.
    pub async fn store_import(
        &self,
        posts: Vec<ValidPost>,
    ) -> Result<Vec<Option<PostDetail>>, ServiceError> {
        self.write(posts).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;

    fn input() -> PostInput {
        let mut vars = serde_json::Map::new();
        vars.insert("a".into(), json!("1"));
        vars.insert("b".into(), json!({"y": 1, "x": 2}));
        PostInput {
            body: "Hello {{a}}\r\nthere".into(),
            channels: vec!["masto".into(), "sky".into()],
            at: Some("2027-03-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap()),
            campaign: Some("launch".into()),
            vars,
            overrides: BTreeMap::from([("sky".into(), "for sky".into())]),
            ..PostInput::default()
        }
    }

    #[test]
    fn the_same_post_written_differently_has_one_key() {
        let key = import_key(&input());
        assert_eq!(key.len(), 64);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        let mut same = input();
        same.body = "Hello {{a}}\nthere\n".into();
        same.channels.reverse();
        same.at = Some(
            "2027-03-01T10:00:00+01:00"
                .parse::<DateTime<Utc>>()
                .unwrap(),
        );
        same.author = Some(String::new());
        let mut vars = serde_json::Map::new();
        vars.insert("b".into(), json!({"x": 2, "y": 1}));
        vars.insert("a".into(), json!("1"));
        same.vars = vars;
        assert_eq!(import_key(&same), key);
    }

    #[test]
    fn any_difference_in_content_is_another_key() {
        let key = import_key(&input());
        let changes: [fn(&mut PostInput); 11] = [
            |p| p.body.push('!'),
            |p| {
                p.channels.pop();
            },
            |p| p.at = None,
            |p| p.draft = true,
            |p| p.thread = true,
            |p| p.template = Some("shout".into()),
            |p| p.campaign = None,
            |p| p.author = Some("ann".into()),
            |p| {
                p.vars.insert("a".into(), json!("2"));
            },
            |p| {
                p.overrides.insert("sky".into(), "other".into());
            },
            |p| {
                p.media.push(clarion_core::Media {
                    path: "a.png".into(),
                    alt: String::new(),
                    mime: "image/png".into(),
                    bytes: 0,
                })
            },
        ];
        let mut keys = HashSet::from([key]);
        for change in changes {
            let mut post = input();
            change(&mut post);
            assert!(keys.insert(import_key(&post)), "{post:?}");
        }
    }
}
