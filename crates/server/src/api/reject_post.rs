//! `POST /api/v1/posts/{id}/reject {"comment"}`: an editor sends a post
//! back to its author; it stays a draft with the comment on it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{parse_json, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reject {
    comment: String,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<PostView>, ApiError> {
    let request: Reject = parse_json(&body)?;
    let detail = state.service.reject(id, &request.comment).await?;
    Ok(Json(post_view(&state, detail).await?))
}
