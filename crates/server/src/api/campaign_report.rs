//! `GET /api/v1/campaigns/{name}/report[?model=&window_days=]`: the
//! campaign report (per creator, channel, post and day) under a model.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use clarion_analytics::ModelKey;
use clarion_analytics::report::{CampaignReport, campaign_report};
use serde::Deserialize;

use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    model: Option<String>,
    window_days: Option<u32>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<CampaignReport>, ApiError> {
    let analytics = &state.analytics;
    let campaign = analytics.campaigns.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("campaign `{name}` not found (campaign files live in content/campaigns)"),
        )
    })?;
    let model = params.model.unwrap_or_else(|| campaign.model.to_string());
    let key = ModelKey::parse(&model, params.window_days.unwrap_or(campaign.window_days))?;
    let today = chrono::Utc::now()
        .with_timezone(&state.timezone)
        .date_naive();
    let report = campaign_report(
        state.service.store(),
        analytics.attributor(),
        campaign,
        key,
        state.service.registry(),
        today,
    )
    .await?;
    Ok(Json(report))
}
