//! `GET /api/v1/inbox?status=&platform=&channel=&campaign=&label=&assignee=&limit=`

use axum::Json;
use axum::extract::{Query, State};
use clarion_engage::InboxQuery;
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, AppState, inbox_view};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    status: Option<String>,
    platform: Option<String>,
    channel: Option<String>,
    campaign: Option<String>,
    label: Option<String>,
    assignee: Option<String>,
    limit: Option<u64>,
}

pub async fn handler(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let list = state
        .inbox
        .list(&InboxQuery {
            status: p.status,
            platform: p.platform,
            channel: p.channel,
            campaign: p.campaign,
            label: p.label,
            assignee: p.assignee,
            limit: Some(p.limit.unwrap_or(50).min(500)),
        })
        .await?;
    Ok(Json(Value::Array(
        list.iter().map(inbox_view::summary).collect(),
    )))
}
