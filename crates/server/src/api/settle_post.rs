//! `POST /api/v1/posts/{id}/settle`: record what a person checked on the
//! platform for a `failed`/`outcome_unknown` target:
//! `{"channel", "published": URL, "platform_post_id"?}` or
//! `{"channel", "not_published": true}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use clarion_store::Settlement;
use serde::Deserialize;

use super::{parse_json, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settle {
    channel: String,
    /// The post's URL on the platform.
    published: Option<String>,
    platform_post_id: Option<String>,
    #[serde(default)]
    not_published: bool,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<PostView>, ApiError> {
    let request: Settle = parse_json(&body)?;
    let settlement = match (request.published, request.not_published) {
        (Some(url), false) => Settlement::Published {
            url,
            platform_post_id: request.platform_post_id,
        },
        (None, true) if request.platform_post_id.is_none() => Settlement::NotPublished,
        (None, true) => {
            return Err(ApiError::bad_request(
                "platform_post_id: only with `published`",
            ));
        }
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "give either `published` (the URL) or `not_published`, not both",
            ));
        }
        (None, false) => {
            return Err(ApiError::bad_request(
                "give `published` (the post's URL) or `\"not_published\": true`",
            ));
        }
    };
    let detail = state
        .service
        .settle(id, &request.channel, settlement, "api")
        .await?;
    Ok(Json(post_view(&state, detail).await?))
}
