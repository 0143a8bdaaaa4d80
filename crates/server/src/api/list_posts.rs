//! `GET /api/v1/posts?status=&campaign=&limit=`: newest posts first.

use axum::Json;
use axum::extract::{Query, State};
use clarion_core::TargetStatus;
use clarion_store::PostFilter;
use serde::Deserialize;

use crate::{ApiError, AppState, PostView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    campaign: Option<String>,
    limit: Option<u64>,
}

pub async fn handler(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<PostView>>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(TargetStatus::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("status: {e}")))?;
    let filter = PostFilter {
        status,
        campaign: query.campaign,
        limit: query.limit.unwrap_or(50).min(1000),
    };
    let posts = state.service.store().list_posts(&filter).await?;
    Ok(Json(posts.iter().map(|d| PostView::new(d, &[])).collect()))
}
