//! `GET /api/v1/links[?campaign=]`: tracked links with their counted clicks
//! and bot fetches.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    campaign: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let links = &state.analytics.links;
    let rows = links.list(filter.campaign.as_deref()).await?;
    Ok(Json(Value::Array(
        rows.iter()
            .map(|(link, clicks, bots)| crate::link_view(links, link, *clicks, *bots))
            .collect(),
    )))
}
