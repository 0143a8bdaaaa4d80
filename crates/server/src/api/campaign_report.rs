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
    let found = report_for(&state, &name, params.model, params.window_days).await?;
    Ok(Json(found.report))
}

/// A report with what it was made under.
pub(crate) struct FoundReport<'a> {
    pub report: CampaignReport,
    pub campaign: &'a clarion_attribution::Campaign,
    pub model: String,
    pub window_days: u32,
}

/// A campaign's report under `model` and `window_days` (the campaign's own
/// when None): the one lookup the API and the dashboard share, so they take
/// the same defaults and name the same errors.
pub(crate) async fn report_for<'a>(
    state: &'a AppState,
    name: &str,
    model: Option<String>,
    window_days: Option<u32>,
) -> Result<FoundReport<'a>, ApiError> {
    let analytics = &state.analytics;
    let campaign = analytics.campaigns.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("campaign `{name}` not found (campaign files live in content/campaigns)"),
        )
    })?;
    let model = model.unwrap_or_else(|| campaign.model.to_string());
    let window_days = window_days.unwrap_or(campaign.window_days);
    let key = ModelKey::parse(&model, window_days).map_err(|e| {
        let message = e.to_string();
        // ModelKey names the window itself; an unknown model does not say "model".
        if message.starts_with("window") {
            ApiError::bad_request(message)
        } else {
            ApiError::bad_request(format!("model: {message}"))
        }
    })?;
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
    Ok(FoundReport {
        report,
        campaign,
        model,
        window_days,
    })
}
