//! `GET /api/v1/campaigns`: the campaign files (`content/campaigns/*.toml`)
//! as loaded at start: dates, budget, model, creators with their terms.

use axum::Json;
use axum::extract::State;
use clarion_attribution::Campaign;

use crate::{ApiError, AppState};

pub async fn handler(State(state): State<AppState>) -> Result<Json<Vec<Campaign>>, ApiError> {
    Ok(Json(state.analytics.campaigns.iter().cloned().collect()))
}
