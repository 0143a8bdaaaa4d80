//! `/campaigns` and `/campaigns/{name}`: campaign list and report (being built).

use axum::Extension;
use axum::extract::Path;
use maud::html;

use super::{PageResult, layout};
use crate::team::Actor;

pub async fn page(Extension(actor): Extension<Actor>) -> PageResult {
    Ok(layout(
        "Campaigns",
        &actor,
        "/campaigns",
        &[],
        html! { p { "Campaigns" } },
    ))
}

pub async fn report_page(
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> PageResult {
    Ok(layout(
        &name,
        &actor,
        "/campaigns",
        &[],
        html! { p { "Report" } },
    ))
}
