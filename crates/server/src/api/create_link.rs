//! `POST /api/v1/links`: registers a tracked link for use outside posts (a
//! bio link, a creator's link): `{"url", "campaign"?, "creator"?, "channel"?}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    url: String,
    campaign: Option<String>,
    creator: Option<String>,
    channel: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Body = super::parse_json(&body)?;
    let analytics = &state.analytics;
    let request = analytics.link_request(
        state.service.registry(),
        body.url,
        body.campaign,
        body.creator,
        body.channel,
    )?;
    let link = analytics.links.create(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(crate::link_view(&analytics.links, &link, 0, 0)),
    ))
}
