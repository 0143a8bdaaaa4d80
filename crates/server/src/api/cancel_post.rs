//! `POST /api/v1/posts/{id}/cancel`: cancel every target not yet handed to a platform.

use axum::Json;
use axum::extract::{Path, State};

use super::post_view;
use crate::{ApiError, AppState, PostView};

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<PostView>, ApiError> {
    let detail = state.service.cancel(id).await?;
    Ok(Json(post_view(&state, detail).await?))
}
