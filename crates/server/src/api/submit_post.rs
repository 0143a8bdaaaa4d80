//! `POST /api/v1/posts/{id}/submit`: send a draft (a rejected one, say)
//! for approval again; editors are told on the alerts channel.

use axum::Json;
use axum::extract::{Extension, Path, State};

use super::post_view;
use crate::team::Actor;
use crate::{ApiError, AppState, PostView};

pub async fn handler(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<i32>,
) -> Result<Json<PostView>, ApiError> {
    let detail = state.service.resubmit(id).await?;
    super::create_post::notify_editors(&state, &actor, &detail).await;
    Ok(Json(post_view(&state, detail).await?))
}
