//! `POST /api/v1/posts`: create (and by default schedule) a post.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use clarion_scheduler::PostInput;
use serde::Deserialize;

use super::{parse_json, parse_time, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePost {
    body: String,
    channels: Vec<String>,
    /// RFC 3339; omitted = now (unless `draft`).
    at: Option<String>,
    #[serde(default)]
    draft: bool,
    template: Option<String>,
    #[serde(default)]
    vars: serde_json::Map<String, serde_json::Value>,
    campaign: Option<String>,
    author: Option<String>,
    #[serde(default)]
    overrides: BTreeMap<String, String>,
    /// Split into thread parts at lines that are exactly `---`.
    #[serde(default)]
    thread: bool,
    /// Local files on the server: `[{"path": "...", "alt": "..."}]`.
    #[serde(default)]
    media: Vec<MediaInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaInput {
    path: String,
    #[serde(default)]
    alt: String,
}

pub async fn handler(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    let request: CreatePost = parse_json(&body)?;
    let at = request
        .at
        .as_deref()
        .map(|v| parse_time("at", v))
        .transpose()?;
    let media = request
        .media
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            clarion_content::describe_media(std::path::Path::new(&m.path), m.alt)
                .map_err(|e| ApiError::bad_request(format!("media[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let detail = state
        .service
        .create(PostInput {
            body: request.body,
            template: request.template,
            vars: request.vars,
            campaign: request.campaign,
            author: request.author,
            channels: request.channels,
            overrides: request.overrides,
            at,
            draft: request.draft,
            thread: request.thread,
            media,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(post_view(&state, detail).await?)))
}
