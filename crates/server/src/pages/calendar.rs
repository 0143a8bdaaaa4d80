//! `/calendar`: month and week views of the schedule (being built).

use axum::Extension;
use maud::html;

use super::{PageResult, layout};
use crate::team::Actor;

pub async fn page(Extension(actor): Extension<Actor>) -> PageResult {
    Ok(layout(
        "Calendar",
        &actor,
        "/calendar",
        &["calendar.js"],
        html! { p { "Calendar" } },
    ))
}
