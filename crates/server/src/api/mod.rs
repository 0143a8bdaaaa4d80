//! One file per API action.

pub mod auth;
pub mod cancel_post;
pub mod create_post;
pub mod create_posts_bulk;
pub mod list_posts;
pub mod queue_status;
pub mod schedule_post;
pub mod show_post;

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Parses a JSON body. serde's message names the field ("missing field
/// `channels`", "unknown field `chanels`"), which is what the client needs.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Parses an RFC 3339 time field.
pub(crate) fn parse_time(
    field: &str,
    value: &str,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    parse_rfc3339(value).map_err(|message| ApiError::bad_request(format!("{field}: {message}")))
}

/// Parses an RFC 3339 time; the error says what is expected.
pub(crate) fn parse_rfc3339(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!(
                "`{value}` is not an RFC 3339 time with an offset ({e}); e.g. 2026-12-01T09:00:00Z"
            )
        })
}

pub(crate) async fn post_view(
    state: &crate::AppState,
    detail: clarion_store::PostDetail,
) -> Result<crate::PostView, ApiError> {
    let ids = detail.targets.iter().map(|t| t.id).collect();
    let attempts = state.service.store().attempts(ids).await?;
    Ok(crate::PostView::new(&detail, &attempts))
}
