//! `POST /api/v1/posts`: create (and by default schedule) a post.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use clarion_core::Action;
use clarion_scheduler::PostInput;
use serde::Deserialize;

use super::{parse_json, parse_rfc3339};
use crate::team::Actor;
use crate::{ApiError, AppState, PostView};

/// One post as JSON: the body of `POST /api/v1/posts`, each item of
/// `POST /api/v1/posts/bulk`, each line of `clarion post import` (JSON Lines).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRequest {
    pub body: String,
    pub channels: Vec<String>,
    /// RFC 3339; omitted = now (unless `draft`).
    pub at: Option<String>,
    #[serde(default)]
    pub draft: bool,
    pub template: Option<String>,
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub campaign: Option<String>,
    pub author: Option<String>,
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
    /// Split into thread parts at lines that are exactly `---`.
    #[serde(default)]
    pub thread: bool,
    /// Files in the server's media folder (`media_dir`), relative to it:
    /// `[{"path": "...", "alt": "..."}]` (`POST /api/v1/media` uploads one).
    #[serde(default)]
    pub media: Vec<MediaRequest>,
    /// `false`: keep a campaign post's links as written instead of tracked
    /// links (default `true`).
    #[serde(default)]
    pub track_links: Option<bool>,
    /// A/B variants, name to text: the channels (in order) take them in
    /// name order, one each, round robin.
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
    /// This whole post is the A/B variant of this name: a test over time
    /// slots is one post per variant (for example through `/posts/bulk`).
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    pub path: String,
    #[serde(default)]
    pub alt: String,
}

/// A field of a [`PostRequest`] that cannot be taken as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl PostRequest {
    /// What the post service takes: `at` parsed (without offset: in UTC),
    /// media files described. The error names its field (`at`, `media[0]`).
    pub fn into_input(self) -> Result<PostInput, FieldError> {
        self.into_input_in(clarion_core::time::Tz::UTC)
    }

    /// [`Self::into_input`], reading an `at` without offset in `zone` (the
    /// `timezone` setting).
    pub fn into_input_in(self, zone: clarion_core::time::Tz) -> Result<PostInput, FieldError> {
        let at = self
            .at
            .as_deref()
            .map(|at| parse_rfc3339(at, zone))
            .transpose()
            .map_err(|message| FieldError {
                field: "at".into(),
                message,
            })?;
        let media =
            self.media
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    // Only the name is looked at here; the post service checks
                    // the file is in the media folder (without saying whether
                    // a file outside it exists).
                    clarion_content::MediaDir::request(std::path::Path::new(&m.path), m.alt)
                        .map_err(|message| FieldError {
                            field: format!("media[{i}]"),
                            message,
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
        Ok(PostInput {
            body: self.body,
            template: self.template,
            vars: self.vars,
            campaign: self.campaign,
            author: self.author,
            channels: self.channels,
            overrides: self.overrides,
            at,
            draft: self.draft,
            thread: self.thread,
            media,
            reply_to: None,
            untracked: self.track_links == Some(false),
            variants: self.variants.into_iter().collect(),
            variant: self.variant,
            known_links: Default::default(),
        })
    }
}

/// A serde error about one post, its field pulled out of the message
/// (``missing field `channels` `` becomes `channels: missing field`), so
/// a reader of `posts[3].channels: ...` or `file:3: channels: ...` looks at
/// the right place. Other errors keep serde's words under `(json)`.
pub fn json_field_error(error: &serde_json::Error) -> FieldError {
    let message = error.to_string();
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((field, tail)) = rest.split_once('`')
        {
            return FieldError {
                field: field.to_owned(),
                message: format!("{}{tail}", prefix.trim_end_matches(" `")),
            };
        }
    }
    FieldError {
        field: "(json)".to_owned(),
        message,
    }
}

/// A contributor's post (not a draft) is submitted for approval instead of
/// scheduled; everyone else's is scheduled as asked.
pub async fn handler(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    let request: PostRequest = parse_json(&body)?;
    let input = request
        .into_input_in(state.timezone)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let detail = if !input.draft && !actor.role.may(Action::Publish) {
        let detail = state.service.submit_for_approval(input).await?;
        notify_editors(&state, &actor, &detail).await;
        detail
    } else {
        state.service.create(input).await?
    };
    // A post created this moment has no publish attempts to show.
    Ok((StatusCode::CREATED, Json(PostView::new(&detail, &[]))))
}

/// Tells editors on the alerts channel that a post waits for them. The
/// notice is a post like any other (queued, sent once); if it cannot be
/// made, the approvals page still lists the post, so it is only logged.
pub(crate) async fn notify_editors(
    state: &AppState,
    actor: &Actor,
    detail: &clarion_store::PostDetail,
) {
    let Some(channel) = state.team.notify_channel.clone() else {
        return;
    };
    let excerpt = clarion_core::truncate_graphemes(&detail.post.body.replace('\n', " "), 120);
    let notice = format!(
        "Post {} by {} waits for approval: \"{excerpt}\" Approve or reject it at {}/approvals",
        detail.post.id,
        actor.name,
        state.team.public_url.trim_end_matches('/'),
    );
    let mut vars = serde_json::Map::new();
    vars.insert("notice".into(), notice.into());
    let input = PostInput {
        // The text is a variable, so nothing the author wrote is read as a template.
        body: "{{notice}}".into(),
        vars,
        channels: vec![channel.clone()],
        untracked: true,
        ..Default::default()
    };
    if let Err(e) = state.service.create(input).await {
        tracing::warn!(channel, post = detail.post.id, error = %e, "could not notify editors of a post waiting for approval");
    }
}
