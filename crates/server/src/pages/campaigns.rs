//! `/campaigns` (the campaign files and their creators) and
//! `/campaigns/{name}` (the report under a chosen model and window: summary,
//! creators, revenue/orders by day, best times, CSV export).
//!
//! The report is `clarion_analytics::report::campaign_report`, parsed and
//! defaulted as `GET /api/v1/campaigns/{name}/report` does; the chart and
//! the CSV columns are those of `clarion report campaign --format svg|csv`.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use clarion_analytics::best_times::{WEEKDAYS, best_times};
use clarion_analytics::report::{CampaignReport, ReportRow};
use clarion_attribution::{Currency, Money, heatmap};
use maud::html;

use super::{PageError, PageResult, encode_component, layout, svg};
use crate::team::Actor;
use crate::{ApiError, AppState};

/// The models the API accepts by name (`time-decay:<half-life>` too, typed
/// in the URL); the form offers these.
const MODELS: [&str; 5] = [
    "last-click",
    "first-click",
    "linear",
    "time-decay",
    "position-based",
];
/// Windows offered in the form (the API takes any 1..=365).
const WINDOWS: [u32; 6] = [1, 3, 7, 14, 30, 90];

fn money(minor: i64, currency: Currency) -> String {
    Money { minor, currency }.to_string()
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let all = &state.analytics.campaigns;
    let body = html! {
        @if all.is_empty() {
            p { "No campaigns: add a file to content/campaigns (see the README)." }
        } @else {
            table #campaigns {
                thead { tr {
                    th scope="col" { "Campaign" } th scope="col" { "Dates" }
                    th scope="col" { "Budget" } th scope="col" { "Model" }
                    th scope="col" { "Creators" }
                } }
                tbody {
                    @for c in all.iter() {
                        tr data-campaign=(c.name) {
                            th scope="row" {
                                a href=(format!("/campaigns/{}", encode_component(&c.name))) {
                                    (c.title.as_deref().unwrap_or(&c.name))
                                }
                            }
                            td { (c.starts) " to " (c.ends) }
                            td { (c.budget_minor.map(|b| money(b, c.currency)).unwrap_or_else(|| "–".into())) }
                            td { (c.model) " over " (c.window_days) " days" }
                            td { (c.creators.len()) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Campaigns", &actor, "/campaigns", &[], body))
}

/// The page's query: `model`, `window` (or the API's `window_days`), `format=csv`.
struct ReportQuery {
    model: Option<String>,
    window: Option<u32>,
    csv: bool,
}

fn bad(message: String) -> PageError {
    PageError(ApiError::bad_request(message))
}

fn parse_query(q: &HashMap<String, String>) -> Result<ReportQuery, PageError> {
    let mut out = ReportQuery {
        model: None,
        window: None,
        csv: false,
    };
    for (k, v) in q {
        match k.as_str() {
            "model" if !v.is_empty() => out.model = Some(v.clone()),
            "model" => {}
            "window" | "window_days" if !v.is_empty() => {
                out.window =
                    Some(v.parse().map_err(|_| {
                        bad(format!("{k}: `{v}` is not a number of days (1 to 365)"))
                    })?);
            }
            "window" | "window_days" => {}
            "format" => match v.as_str() {
                "csv" => out.csv = true,
                "html" | "" => {}
                _ => return Err(bad(format!("format: `{v}` is not html or csv"))),
            },
            _ => return Err(bad(format!("{k}: unknown parameter"))),
        }
    }
    Ok(out)
}

pub async fn report_page(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let query = parse_query(&raw)?;
    let found =
        crate::api::campaign_report::report_for(&state, &name, query.model, query.window).await?;
    let (report, campaign, model, window) =
        (found.report, found.campaign, found.model, found.window_days);
    let currency = campaign.currency;
    if query.csv {
        let body = csv_report(&report, currency).map_err(|e| crate::error::internal(&e))?;
        let filename = format!("{}-report.csv", encode_component(&report.campaign));
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            body,
        )
            .into_response());
    }

    let grid = best_times(state.service.store(), state.timezone, None).await?;
    let best_svg = {
        let rows: Vec<String> = WEEKDAYS.iter().map(|d| (*d).to_owned()).collect();
        let cols: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
        let cells: Vec<Vec<Option<f64>>> = grid
            .slots
            .iter()
            .map(|hours| hours.iter().map(|s| s.score()).collect())
            .collect();
        let low: Vec<Vec<bool>> = grid
            .slots
            .iter()
            .map(|hours| hours.iter().map(|s| s.posts > 0 && !s.enough()).collect())
            .collect();
        heatmap(
            &format!(
                "Engagements + clicks per post, by weekday and hour ({})",
                grid.timezone
            ),
            &rows,
            &cols,
            &cells,
            &low,
        )
    };
    let ranked = grid.ranked();
    let chart = clarion_analytics::report_output::chart_svg(&report, currency);
    let path = format!("/campaigns/{}", encode_component(&name));
    let model_name = model.clone();
    let t = &report.total;
    let row = |r: &ReportRow| {
        html! {
            td { (r.totals.clicks) }
            td { (r.totals.orders) }
            td { (money(r.totals.revenue_minor, currency)) }
            td { (money(r.totals.cost_minor, currency)) }
            td { (ratio(r.conversion_rate)) }
            td { (ratio(r.roi)) }
        }
    };
    let body = html! {
        p.muted {
            (campaign.starts) " to " (campaign.ends) " · " (report.currency)
            " · model " (report.model)
        }
        form #report-form method="get" action=(path) {
            label for="model" { "Attribution model" }
            select #model name="model" {
                @for m in MODELS {
                    option value=(m) selected[m == model_name] { (m) }
                }
                @if !MODELS.contains(&model_name.as_str()) {
                    option value=(model_name) selected { (model_name) }
                }
            }
            label for="window" { "Window (days)" }
            select #window name="window" {
                @for w in WINDOWS {
                    option value=(w) selected[w == window] { (w) }
                }
                @if !WINDOWS.contains(&window) {
                    option value=(window) selected { (window) }
                }
            }
            button type="submit" { "Show report" }
        }
        section aria-labelledby="summary-h" {
            h2 #summary-h { "Summary" }
            dl #summary .counts {
                dt { "Clicks" } dd data-total="clicks" { (t.totals.clicks) }
                dt { "Bot fetches" } dd data-total="bot_fetches" { (t.bot_fetches) }
                dt { "Orders" } dd data-total="orders" { (t.totals.orders) }
                dt { "Revenue" } dd data-total="revenue" { (money(t.totals.revenue_minor, currency)) }
                dt { "Cost" } dd data-total="cost" { (money(t.totals.cost_minor, currency)) }
                @if let Some(b) = report.budget_minor {
                    dt { "Budget" } dd data-total="budget" { (money(b, currency)) }
                }
                dt { "Conversion" } dd { (ratio(t.conversion_rate)) }
                dt { "ROI" } dd { (ratio(t.roi)) }
                dt { "ROAS" } dd { (t.roas.map_or_else(|| "–".into(), |v| format!("{v:.2}x"))) }
                @if let Some(emv) = t.emv_minor {
                    dt { "Earned media value" } dd { (money(emv, currency)) }
                }
            }
            @if report.other_currency_orders > 0 {
                p.muted { (report.other_currency_orders)
                    " orders in other currencies are not counted (amounts are never converted)." }
            }
            @if !report.overdue_creators.is_empty() {
                p.error { "Overdue (deadline passed, contracted posts missing): "
                    (report.overdue_creators.join(", ")) }
            }
            p { a #csv href=(format!("{path}?model={}&window={window}&format=csv", encode_component(&model)))
                download { "Export CSV" } }
        }
        section aria-labelledby="creators-h" {
            h2 #creators-h { "Creators" }
            table #creators {
                thead { tr {
                    th scope="col" { "Creator" } th scope="col" { "Clicks" }
                    th scope="col" { "Orders" } th scope="col" { "Revenue" }
                    th scope="col" { "Cost" } th scope="col" { "Conversion" }
                    th scope="col" { "ROI" }
                } }
                tbody {
                    @for r in &report.by_creator {
                        tr data-creator=(r.key) { th scope="row" { (r.key) } (row(r)) }
                    }
                }
            }
        }
        section aria-labelledby="chart-h" {
            h2 #chart-h { "Revenue and orders by day" }
            figure #revenue-chart {
                (svg(&chart))
                figcaption {
                    "Revenue (bars, " (report.currency) ") and orders (line) per day under "
                    (report.model) ": " (t.totals.orders) " orders, "
                    (money(t.totals.revenue_minor, currency)) " on "
                    (report.daily.len()) " days with orders."
                }
            }
        }
        section aria-labelledby="best-h" {
            h2 #best-h { "Best times to post" }
            figure #best-times {
                (svg(&best_svg))
                figcaption {
                    @if ranked.is_empty() {
                        "No published posts yet: best times come from your own posts' results."
                    } @else {
                        "Best slots (" (grid.timezone) "): "
                        @for (i, (day, hour, slot)) in ranked.iter().take(3).enumerate() {
                            @if i > 0 { ", " }
                            (WEEKDAYS[*day]) " " (format!("{hour:02}h")) " ("
                            (format!("{:.1}", slot.score().unwrap_or(0.0))) " per post)"
                        }
                        "."
                    }
                }
            }
        }
    };
    let title = report
        .title
        .clone()
        .unwrap_or_else(|| report.campaign.clone());
    Ok(layout(&title, &actor, "/campaigns", &[], body))
}

/// The CLI's `--format csv`, from the same code.
fn csv_report(report: &CampaignReport, currency: Currency) -> Result<String, csv::Error> {
    let mut bytes = Vec::new();
    clarion_analytics::report_output::write_csv(report, currency, &mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_named() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        let err = |k, v| parse_query(&q(k, v)).err().map(|e| e.0.message);
        assert!(err("window", "week").is_some_and(|m| m.starts_with("window:")));
        assert!(err("format", "pdf").is_some_and(|m| m.starts_with("format:")));
        assert!(err("colour", "red").is_some_and(|m| m.starts_with("colour:")));
        assert!(parse_query(&q("format", "csv")).is_ok_and(|r| r.csv));
    }
}
