//! `POST /api/v1/posts/{id}/approve {"comment"?, "at"?}`: an editor approves
//! a post waiting for approval; it is scheduled at `at`, else at the time
//! its author asked for, else now.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{parse_json, parse_time, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approve {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<PostView>, ApiError> {
    let request: Approve = if body.is_empty() {
        Approve::default()
    } else {
        parse_json(&body)?
    };
    let at = request
        .at
        .as_deref()
        .map(|at| parse_time("at", at, state.timezone))
        .transpose()?;
    let comment = request.comment.as_deref().filter(|c| !c.trim().is_empty());
    let detail = state.service.approve(id, comment, at).await?;
    Ok(Json(post_view(&state, detail).await?))
}
