//! A campaign report as the CLI, the API and the dashboard all give it: the
//! revenue/orders chart (SVG) and the CSV. One copy, so the three never
//! disagree.

use clarion_attribution::{Currency, Money, Series, bar_and_line};

use crate::report::CampaignReport;

fn money(minor: i64, currency: Currency) -> String {
    Money { minor, currency }.to_string()
}

/// Revenue (bars) and orders (line) by day: one bar per day with credited
/// orders.
pub fn chart_svg(report: &CampaignReport, currency: Currency) -> String {
    let revenue = Series {
        name: format!("revenue ({})", report.currency),
        points: report
            .daily
            .iter()
            .map(|d| (d.date.to_string(), d.revenue_minor))
            .collect(),
    };
    let orders = Series {
        name: "orders".into(),
        points: report
            .daily
            .iter()
            .map(|d| (d.date.to_string(), d.orders))
            .collect(),
    };
    bar_and_line(
        &format!("{} · {}", report.campaign, report.model),
        &revenue,
        &|minor| money(minor, currency),
        Some(&orders),
    )
}

/// The report as CSV: a row per group (total, creator, channel, post,
/// variant) and key; amounts in decimal units of the campaign's currency.
pub fn write_csv<W: std::io::Write>(
    report: &CampaignReport,
    currency: Currency,
    out: W,
) -> Result<(), csv::Error> {
    let mut out = csv::Writer::from_writer(out);
    out.write_record([
        "group",
        "key",
        "clicks",
        "bot_fetches",
        "orders",
        "revenue",
        "cost",
        "currency",
        "conversion_rate",
        "aov",
        "cpa",
        "roi",
        "roas",
    ])?;
    let groups = std::iter::once(("total", std::slice::from_ref(&report.total))).chain([
        ("creator", report.by_creator.as_slice()),
        ("channel", report.by_channel.as_slice()),
        ("post", report.by_post.as_slice()),
        ("variant", report.by_variant.as_slice()),
    ]);
    let decimal = |minor: i64| {
        let m = money(minor, currency);
        m.split(' ').next().unwrap_or_default().to_owned()
    };
    for (group, rows) in groups {
        for row in rows {
            let t = &row.totals;
            out.write_record([
                group.to_owned(),
                row.key.clone(),
                t.clicks.to_string(),
                row.bot_fetches.to_string(),
                t.orders.to_string(),
                decimal(t.revenue_minor),
                decimal(t.cost_minor),
                report.currency.clone(),
                row.conversion_rate
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_default(),
                row.aov_minor.map(decimal).unwrap_or_default(),
                row.cpa_minor.map(decimal).unwrap_or_default(),
                row.roi.map(|v| format!("{v:.4}")).unwrap_or_default(),
                row.roas.map(|v| format!("{v:.4}")).unwrap_or_default(),
            ])?;
        }
    }
    out.flush()?;
    Ok(())
}
