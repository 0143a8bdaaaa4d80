//! `/audit`: who did what, newest first, with a CSV export
//! (`/api/v1/audit?format=csv`).

use axum::Extension;
use axum::extract::State;
use maud::html;

use super::{PageResult, layout, local_time};
use crate::AppState;
use crate::team::Actor;

/// Entries shown on the page; the export has more.
const SHOWN: u64 = 200;

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let entries = state.service.store().audit_entries(SHOWN).await?;
    let body = html! {
        p { a.button href="/api/v1/audit?format=csv&limit=50000" download { "Export CSV" } }
        table {
            caption.muted { "The newest " (entries.len()) " entries" }
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Did" } th scope="col" { "To" } th scope="col" { "Details" } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (local_time(e.at_ms, state.timezone)) }
                        td { (e.actor) }
                        td { code { (e.action) } }
                        td { (e.subject) }
                        td.muted { (e.detail) }
                    }
                }
            }
        }
    };
    Ok(layout("Audit log", &actor, "/audit", &[], body))
}
