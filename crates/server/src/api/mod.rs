//! One file per API action.

pub mod approve_post;
pub mod assign_conversation;
pub mod audit_layer;
pub mod auth;
pub mod campaign_report;
pub mod cancel_post;
pub mod check_channel;
pub mod create_link;
pub mod create_order;
pub mod create_post;
pub mod create_posts_bulk;
pub mod edit_post;
pub mod follow_link;
pub mod import_posts;
pub mod label_conversation;
pub mod list_audit;
pub mod list_campaigns;
pub mod list_channels;
pub mod list_conversations;
pub mod list_links;
pub mod list_listeners;
pub mod list_posts;
pub mod note_conversation;
pub mod preview_post;
pub mod queue_status;
pub mod receive_push;
pub mod reject_post;
pub mod reply_conversation;
pub mod retry_post;
pub mod schedule_post;
pub mod set_conversation_status;
pub mod settle_post;
pub mod shop_webhook;
pub mod show_conversation;
pub mod show_post;
pub mod submit_post;
pub mod tokens;
pub mod upload_media;
pub mod users;

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Parses a JSON body. serde's message names the field ("missing field
/// `channels`", "unknown field `chanels`"), which is what the client needs.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Parses a time field: RFC 3339, or without offset in `zone` (the
/// `timezone` setting, [`crate::AppState::timezone`]).
pub(crate) fn parse_time(
    field: &str,
    value: &str,
    zone: clarion_core::time::Tz,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    parse_rfc3339(value, zone)
        .map_err(|message| ApiError::bad_request(format!("{field}: {message}")))
}

/// Parses a time with an offset, or a wall-clock time in `zone`; the error
/// says what is expected (and names a daylight-saving gap).
pub(crate) fn parse_rfc3339(
    value: &str,
    zone: clarion_core::time::Tz,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    clarion_core::time::parse_time(value, zone).map_err(|e| e.to_string())
}

pub(crate) async fn post_view(
    state: &crate::AppState,
    detail: clarion_store::PostDetail,
) -> Result<crate::PostView, ApiError> {
    let ids = detail.targets.iter().map(|t| t.id).collect();
    let attempts = state.service.store().attempts(ids).await?;
    Ok(crate::PostView::new(&detail, &attempts))
}
