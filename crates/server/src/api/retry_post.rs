//! `POST /api/v1/posts/{id}/retry {"channel"?, "at"?, "force"?}`: send
//! `failed`/`outcome_unknown` targets again, with the same idempotency key.
//! A target of unknown outcome on a platform that would not deduplicate
//! the resend is refused (409) unless `force` is true: it may post twice.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use clarion_scheduler::RetryRequest;
use serde::{Deserialize, Serialize};

use super::{parse_json, parse_time, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retry {
    channel: Option<String>,
    /// RFC 3339; omitted = now.
    at: Option<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Serialize)]
pub struct RetryAnswer {
    pub post: PostView,
    /// Targets moved back to `scheduled`.
    pub retried: Vec<i32>,
    /// Of those, targets of unknown outcome resent on the caller's word.
    pub forced: Vec<i32>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<RetryAnswer>, ApiError> {
    // An empty body retries every failed target now.
    let request: Retry = if body.iter().all(u8::is_ascii_whitespace) {
        Retry::default()
    } else {
        parse_json(&body)?
    };
    let at = request
        .at
        .as_deref()
        .map(|at| parse_time("at", at, state.timezone))
        .transpose()?;
    let report = state
        .service
        .retry(
            id,
            RetryRequest {
                channel: request.channel,
                at,
                force: request.force,
            },
        )
        .await?;
    Ok(Json(RetryAnswer {
        post: post_view(&state, report.detail).await?,
        retried: report.retried,
        forced: report.forced,
    }))
}
