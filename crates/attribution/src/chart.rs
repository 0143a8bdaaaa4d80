//! Server-rendered SVG charts for reports: the CLI's `--format svg` and the
//! web dashboard.
//!
//! Plain SVG strings, no script and no external resource, so a chart can be
//! saved as a file, inlined in HTML or mailed. Every chart has `role="img"`
//! and an `aria-label`, every bar, point and cell a `<title>` with its exact
//! value (a browser shows it on hover), and empty data draws a readable
//! "No data yet" chart rather than failing. Text from callers (titles,
//! series names, labels) is escaped with [`escape_xml`].
//!
//! Text widths are estimated (no font metrics here), on the generous side,
//! so labels are thinned or truncated before they could overlap.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One named series: `(x label, value)` in display order. Values are
/// integers: minor units of money, or counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(String, i64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 320.0;
const MARGIN: f64 = 16.0;
const TITLE_SIZE: f64 = 15.0;
const LABEL_SIZE: f64 = 11.0;
const LEGEND_SIZE: f64 = 12.0;
/// At most this many x labels, however wide the chart.
const MAX_X_LABELS: usize = 12;

const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'DejaVu Sans', sans-serif";
const INK: &str = "#1f2937";
const MUTED: &str = "#6b7280";
const GRID: &str = "#e5e7eb";
const AXIS: &str = "#9ca3af";
const BAR: &str = "#4e79a7";
const LINE: &str = "#e15759";
const LINE_TEXT: &str = "#b91c1c";
const BEST: &str = "#f59e0b";
const EMPTY_CELL: &str = "#f3f4f6";

/// The heatmap's colour scale, light to dark (ColorBrewer "Blues").
const SCALE: [(u8, u8, u8); 5] = [
    (0xef, 0xf3, 0xff),
    (0xbd, 0xd7, 0xe7),
    (0x6b, 0xae, 0xd6),
    (0x31, 0x82, 0xbd),
    (0x08, 0x51, 0x9c),
];

/// Escapes text for XML content and attribute values (both quote kinds),
/// and drops the control characters XML 1.0 cannot hold at all.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Evenly spaced "nice" tick values (steps of 1, 2 or 5 x 10^n) from at or
/// below `min` to at or above `max`: usually 4 or 5 ticks, 3 to 6 at most
/// (`nice_ticks(0, 1234)` is `[0, 500, 1000, 1500]`). A range of one value
/// is widened by 1 so the axis has some height.
pub fn nice_ticks(min: i64, max: i64) -> Vec<i64> {
    let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
    let (lo, hi) = (i128::from(lo), i128::from(hi).max(i128::from(lo) + 1));
    let span = |step: i128| {
        let first = lo.div_euclid(step) * step;
        let last = -((-hi).div_euclid(step)) * step;
        (first, (last - first) / step)
    };
    let mut chosen = (1_i128, span(1));
    let mut previous = None;
    let mut step: i128 = 1;
    loop {
        let (first, intervals) = span(step);
        if intervals <= 4 {
            chosen = match previous {
                Some((prev_step, (prev_first, prev_intervals)))
                    if intervals < 3 && prev_intervals <= 5 =>
                {
                    (prev_step, (prev_first, prev_intervals))
                }
                _ => (step, (first, intervals)),
            };
            break;
        }
        previous = Some((step, (first, intervals)));
        // 1, 2, 5, 10, 20, 50, ...
        let mantissa = step / 10_i128.pow(step.ilog10());
        step = if mantissa == 2 {
            step / 2 * 5
        } else {
            step * 2
        };
        if step > i128::from(i64::MAX) * 4 {
            break;
        }
    }
    let (step, (first, intervals)) = chosen;
    (0..=intervals)
        .filter_map(|i| i64::try_from(first + i * step).ok())
        .collect()
}

/// Revenue-style bars with an optional line (orders, clicks) on its own
/// right-hand axis, over shared x labels: a 720 x 320 SVG.
///
/// The x labels are the bars' labels in order, then any of the line's that
/// the bars lack; a label in ISO date form (`2026-03-02`) is shown as
/// `Mar 2` when all are dates of one year, and the labels shown are thinned
/// so they never overlap (12 at most). `bar_format` writes the left axis and
/// the bars' hover values (`$12.30`); the line's values are whole numbers.
pub fn bar_and_line(
    title: &str,
    bars: &Series,
    bar_format: &dyn Fn(i64) -> String,
    line: Option<&Series>,
) -> String {
    let line = line.filter(|l| !l.points.is_empty());
    let mut categories: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (label, _) in bars
        .points
        .iter()
        .chain(line.iter().flat_map(|l| &l.points))
    {
        index.entry(label.as_str()).or_insert_with(|| {
            categories.push(label.as_str());
            categories.len() - 1
        });
    }
    let mut svg = Svg::new(WIDTH, HEIGHT, title);
    if categories.is_empty() {
        svg.no_data(WIDTH, HEIGHT);
        return svg.finish();
    }

    // Legend beside the title, or on its own row when they would touch.
    let mut legend: Vec<(Swatch, &str)> = Vec::new();
    if !bars.points.is_empty() {
        legend.push((Swatch::Bar(BAR), &bars.name));
    }
    if let Some(line) = line {
        legend.push((Swatch::Line, &line.name));
    }
    let legend_width = legend_width(&legend);
    let beside =
        MARGIN + text_width(title, TITLE_SIZE, true) + 24.0 + legend_width <= WIDTH - MARGIN;
    let (legend_y, top) = if beside { (25.0, 48.0) } else { (47.0, 68.0) };
    let legend_x = if beside {
        WIDTH - MARGIN - legend_width
    } else {
        MARGIN
    };
    svg.legend(legend_x, legend_y, &legend);

    // Left axis: the bars' values (0 always on it).
    let bar_values = bars.points.iter().map(|(_, v)| *v);
    let left_ticks = nice_ticks(
        bar_values.clone().min().unwrap_or(0).min(0),
        bar_values.max().unwrap_or(0).max(0),
    );
    let left_labels: Vec<String> = left_ticks.iter().map(|t| bar_format(*t)).collect();
    // Right axis: the line's values, on the left axis's gridlines when both
    // start at 0.
    let right_ticks = line.map(|line| {
        let min = line.points.iter().map(|(_, v)| *v).min().unwrap_or(0);
        let max = line.points.iter().map(|(_, v)| *v).max().unwrap_or(0);
        aligned_ticks(&left_ticks, min, max)
    });
    // Labelled from the line's lowest value (or 0) up: an axis of counts
    // shows no negative numbers just because the bars go below 0.
    let right_floor = line
        .and_then(|l| l.points.iter().map(|(_, v)| *v).min())
        .unwrap_or(0)
        .min(0);
    let right_labels: Vec<String> = right_ticks
        .iter()
        .flatten()
        .map(|t| {
            if *t >= right_floor {
                group_thousands(*t)
            } else {
                String::new()
            }
        })
        .collect();

    let widest = |labels: &[String]| {
        labels
            .iter()
            .map(|l| text_width(l, LABEL_SIZE, false))
            .fold(0.0, f64::max)
    };
    let left = MARGIN + widest(&left_labels).max(12.0) + 8.0;
    let right = if right_ticks.is_some() {
        WIDTH - MARGIN - widest(&right_labels) - 8.0
    } else {
        WIDTH - MARGIN
    };
    let bottom = HEIGHT - 34.0;
    let plot_width = right - left;

    let scale = |ticks: &[i64], value: i64| {
        let lo = ticks.first().copied().unwrap_or(0) as f64;
        let hi = ticks.last().copied().unwrap_or(1) as f64;
        let range = if hi > lo { hi - lo } else { 1.0 };
        bottom - (value as f64 - lo) / range * (bottom - top)
    };

    // Gridlines and the left axis labels.
    for (tick, label) in left_ticks.iter().zip(&left_labels) {
        let y = scale(&left_ticks, *tick);
        let colour = if *tick == 0 { AXIS } else { GRID };
        svg.line(left, y, right, y, colour, 1.0);
        svg.text(left - 8.0, y + 4.0, "end", LABEL_SIZE, MUTED, label);
    }
    if let Some(ticks) = &right_ticks {
        for (tick, label) in ticks.iter().zip(&right_labels) {
            let y = scale(ticks, *tick);
            if !left_ticks
                .iter()
                .any(|t| (scale(&left_ticks, *t) - y).abs() < 0.5)
            {
                svg.line(left, y, right, y, GRID, 1.0);
            }
            if !label.is_empty() {
                svg.text(right + 8.0, y + 4.0, "start", LABEL_SIZE, LINE_TEXT, label);
            }
        }
    }

    // x labels, thinned to fit.
    let shown = axis_labels(&categories);
    let slot = plot_width / categories.len() as f64;
    let widest_x = shown
        .iter()
        .map(|l| text_width(l, LABEL_SIZE, false))
        .fold(0.0, f64::max);
    let stride = label_stride(categories.len(), plot_width, widest_x);
    let centre = |i: usize| left + slot * (i as f64 + 0.5);
    for (i, label) in shown.iter().enumerate() {
        if i % stride != 0 {
            continue;
        }
        let half = text_width(label, LABEL_SIZE, false) / 2.0;
        let x = centre(i).clamp(half + 2.0, WIDTH - half - 2.0);
        svg.line(centre(i), bottom, centre(i), bottom + 4.0, AXIS, 1.0);
        svg.text_class(
            x,
            bottom + 17.0,
            "middle",
            LABEL_SIZE,
            MUTED,
            "x-label",
            label,
        );
    }

    // Bars.
    let bar_width = (slot * 0.72).clamp(1.0, 56.0);
    let zero = scale(&left_ticks, 0);
    for (label, value) in &bars.points {
        let Some(i) = index.get(label.as_str()) else {
            continue;
        };
        let y = scale(&left_ticks, *value);
        let (y, height) = if y <= zero {
            (y, zero - y)
        } else {
            (zero, y - zero)
        };
        let tip = format!("{label} · {}: {}", bars.name, bar_format(*value));
        let _ = write!(
            svg.body,
            r#"<rect class="bar" x="{}" y="{}" width="{}" height="{}" rx="1.5" fill="{BAR}"><title>{}</title></rect>"#,
            num(centre(*i) - bar_width / 2.0),
            num(y),
            num(bar_width),
            num(height),
            escape_xml(&tip)
        );
    }

    // The line, broken where a label has no point, with a dot per point.
    if let (Some(line), Some(ticks)) = (line, &right_ticks) {
        let mut by_slot: Vec<Option<i64>> = vec![None; categories.len()];
        for (label, value) in &line.points {
            if let Some(i) = index.get(label.as_str()) {
                by_slot[*i] = Some(*value);
            }
        }
        let mut path = String::new();
        let mut pen_down = false;
        for (i, value) in by_slot.iter().enumerate() {
            match value {
                Some(v) => {
                    let command = if pen_down { 'L' } else { 'M' };
                    let _ = write!(
                        path,
                        "{command}{} {} ",
                        num(centre(i)),
                        num(scale(ticks, *v))
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg.body,
            r#"<path class="line" d="{}" fill="none" stroke="{LINE}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>"#,
            path.trim_end()
        );
        let radius = if slot >= 10.0 { 3.0 } else { 1.8 };
        for (label, value) in &line.points {
            let Some(i) = index.get(label.as_str()) else {
                continue;
            };
            let tip = format!("{label} · {}: {}", line.name, group_thousands(*value));
            let _ = write!(
                svg.body,
                r##"<circle class="dot" cx="{}" cy="{}" r="{radius}" fill="#fff" stroke="{LINE}" stroke-width="1.5"><title>{}</title></circle>"##,
                num(centre(*i)),
                num(scale(ticks, *value)),
                escape_xml(&tip)
            );
        }
    }
    svg.finish()
}

/// One horizontal bar per row (revenue by creator, say) in the order given,
/// the formatted value at each bar's end. 720 wide; 26 px more per row.
/// Long names are cut with "…" (the whole name is in the hover title).
pub fn horizontal_bars(
    title: &str,
    rows: &[(String, i64)],
    format: &dyn Fn(i64) -> String,
) -> String {
    const ROW: f64 = 26.0;
    const BAR_HEIGHT: f64 = 16.0;
    const TOP: f64 = 44.0;
    const MAX_NAME_CHARS: usize = 28;
    let height = if rows.is_empty() {
        140.0
    } else {
        TOP + ROW * rows.len() as f64 + 14.0
    };
    let mut svg = Svg::new(WIDTH, height, title);
    if rows.is_empty() {
        svg.no_data(WIDTH, height);
        return svg.finish();
    }
    let names: Vec<String> = rows
        .iter()
        .map(|(name, _)| truncate(name, MAX_NAME_CHARS))
        .collect();
    let values: Vec<String> = rows.iter().map(|(_, value)| format(*value)).collect();
    let widest = |texts: &[String]| {
        texts
            .iter()
            .map(|t| text_width(t, LABEL_SIZE, false))
            .fold(0.0, f64::max)
    };
    let names_end = MARGIN + widest(&names).min(220.0);
    let value_room = widest(&values) + 8.0;
    let most = rows.iter().map(|(_, v)| *v).max().unwrap_or(0).max(0) as f64;
    let least = rows.iter().map(|(_, v)| *v).min().unwrap_or(0).min(0) as f64;
    let left_room = if least < 0.0 { value_room } else { 0.0 };
    let bars_start = names_end + 10.0 + left_room;
    let available = (WIDTH - MARGIN - value_room - bars_start).max(10.0);
    let range = most - least;
    let per_unit = if range > 0.0 { available / range } else { 0.0 };
    let zero = bars_start - least * per_unit;
    let bottom = TOP + ROW * rows.len() as f64;
    svg.line(zero, TOP - 4.0, zero, bottom, AXIS, 1.0);
    for (i, ((name, value), (shown_name, shown_value))) in
        rows.iter().zip(names.iter().zip(&values)).enumerate()
    {
        let row_top = TOP + ROW * i as f64;
        let centre = row_top + ROW / 2.0;
        if i % 2 == 1 {
            let _ = write!(
                svg.body,
                r##"<rect class="stripe" x="{MARGIN}" y="{}" width="{}" height="{ROW}" fill="#f9fafb"/>"##,
                num(row_top),
                num(WIDTH - 2.0 * MARGIN)
            );
        }
        svg.text(names_end, centre + 4.0, "end", LABEL_SIZE, INK, shown_name);
        let length = (*value as f64).abs() * per_unit;
        let (x, anchor, label_x) = if *value < 0 {
            (zero - length, "end", zero - length - 6.0)
        } else {
            (zero, "start", zero + length + 6.0)
        };
        let tip = format!("{name}: {shown_value}");
        let _ = write!(
            svg.body,
            r#"<rect class="bar" x="{}" y="{}" width="{}" height="{BAR_HEIGHT}" rx="2" fill="{BAR}"><title>{}</title></rect>"#,
            num(x),
            num(centre - BAR_HEIGHT / 2.0),
            num(length),
            escape_xml(&tip)
        );
        svg.text(label_x, centre + 4.0, anchor, LABEL_SIZE, INK, shown_value);
    }
    svg.finish()
}

/// A rows x columns grid (weekdays x hours for "best time to post"),
/// shaded light to dark by value; `None` cells are grey, cells marked in
/// `low_sample` are faded and hatched (too few posts to trust), and the
/// best trusted cell is outlined. `cells[r][c]` and `low_sample[r][c]` may
/// be shorter than the labels: what is missing is `None` and trusted.
pub fn heatmap(
    title: &str,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<f64>>],
    low_sample: &[Vec<bool>],
) -> String {
    let value = |r: usize, c: usize| {
        cells
            .get(r)
            .and_then(|row| row.get(c))
            .copied()
            .flatten()
            .filter(|v| v.is_finite())
    };
    let is_low = |r: usize, c: usize| {
        low_sample
            .get(r)
            .and_then(|row| row.get(c))
            .copied()
            .unwrap_or(false)
    };
    let all: Vec<(usize, usize, f64)> = (0..rows.len())
        .flat_map(|r| (0..cols.len()).map(move |c| (r, c)))
        .filter_map(|(r, c)| value(r, c).map(|v| (r, c, v)))
        .collect();
    if all.is_empty() {
        let mut svg = Svg::new(WIDTH, 200.0, title);
        svg.no_data(WIDTH, 200.0);
        return svg.finish();
    }
    let lo = all.iter().map(|(_, _, v)| *v).fold(f64::INFINITY, f64::min);
    let hi = all
        .iter()
        .map(|(_, _, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    let best = all.iter().filter(|(r, c, _)| !is_low(*r, *c)).fold(
        None::<(usize, usize, f64)>,
        |best, cell| match best {
            Some(b) if b.2 >= cell.2 => Some(b),
            _ => Some(*cell),
        },
    );

    let row_labels: Vec<String> = rows.iter().map(|r| truncate(r, 16)).collect();
    let left = MARGIN
        + row_labels
            .iter()
            .map(|l| text_width(l, LABEL_SIZE, false))
            .fold(0.0, f64::max)
        + 8.0;
    let cell_width = ((WIDTH - MARGIN - left) / cols.len() as f64).min(44.0);
    let cell_height = cell_width.clamp(18.0, 26.0);
    let top = 62.0;
    let grid_bottom = top + cell_height * rows.len() as f64;
    let height = grid_bottom + 58.0;
    let mut svg = Svg::new(WIDTH, height, title);
    svg.body.push_str(concat!(
        r#"<defs><pattern id="clarion-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">"#,
        r##"<line x1="0" y1="0" x2="0" y2="6" stroke="#374151" stroke-width="1.2" stroke-opacity="0.45"/></pattern>"##,
        r#"<linearGradient id="clarion-scale" x1="0" x2="1" y1="0" y2="0">"#,
    ));
    for (i, (r, g, b)) in SCALE.iter().enumerate() {
        let offset = i as f64 / (SCALE.len() - 1) as f64;
        let _ = write!(
            svg.body,
            r##"<stop offset="{}" stop-color="#{r:02x}{g:02x}{b:02x}"/>"##,
            num(offset)
        );
    }
    svg.body.push_str("</linearGradient></defs>");

    // Column labels, thinned to fit the cells.
    let col_labels: Vec<String> = cols.iter().map(|c| truncate(c, 10)).collect();
    let widest_col = col_labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE, false))
        .fold(0.0, f64::max);
    let col_stride = ((widest_col + 4.0) / cell_width).ceil().max(1.0) as usize;
    for (c, label) in col_labels.iter().enumerate() {
        if c % col_stride == 0 {
            let x = left + cell_width * (c as f64 + 0.5);
            svg.text_class(
                x,
                top - 7.0,
                "middle",
                LABEL_SIZE,
                MUTED,
                "col-label",
                label,
            );
        }
    }
    for (r, label) in row_labels.iter().enumerate() {
        let y = top + cell_height * (r as f64 + 0.5) + 4.0;
        svg.text(left - 8.0, y, "end", LABEL_SIZE, INK, label);
    }

    // Cells.
    for (r, row_name) in rows.iter().enumerate() {
        for (c, col_name) in cols.iter().enumerate() {
            let x = left + cell_width * c as f64 + 1.0;
            let y = top + cell_height * r as f64 + 1.0;
            let (w, h) = (cell_width - 2.0, cell_height - 2.0);
            let low = is_low(r, c);
            let (fill, opacity, shown) = match value(r, c) {
                Some(v) => {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    (colour_at(t), if low { 0.45 } else { 1.0 }, format_value(v))
                }
                None => (EMPTY_CELL.to_owned(), 1.0, "no data".to_owned()),
            };
            let note = if low { " (few samples)" } else { "" };
            let tip = format!("{row_name} {col_name}: {shown}{note}");
            let _ = write!(
                svg.body,
                r#"<rect class="cell" x="{}" y="{}" width="{}" height="{}" rx="2" fill="{fill}" fill-opacity="{}"><title>{}</title></rect>"#,
                num(x),
                num(y),
                num(w),
                num(h),
                num(opacity),
                escape_xml(&tip)
            );
            if low {
                let _ = write!(
                    svg.body,
                    r#"<rect class="hatch" x="{}" y="{}" width="{}" height="{}" rx="2" fill="url(#clarion-hatch)" pointer-events="none"/>"#,
                    num(x),
                    num(y),
                    num(w),
                    num(h)
                );
            }
        }
    }
    if let Some((r, c, _)) = best {
        let _ = write!(
            svg.body,
            r#"<rect class="best" x="{}" y="{}" width="{}" height="{}" rx="3" fill="none" stroke="{BEST}" stroke-width="2.5" pointer-events="none"/>"#,
            num(left + cell_width * c as f64 + 0.5),
            num(top + cell_height * r as f64 + 0.5),
            num(cell_width - 1.0),
            num(cell_height - 1.0)
        );
    }

    // Legend: the scale with its ends, then the markings.
    let y = grid_bottom + 22.0;
    let mut x = left;
    let low_label = format_value(lo);
    svg.text(x, y + 9.0, "start", LABEL_SIZE, MUTED, &low_label);
    x += text_width(&low_label, LABEL_SIZE, false) + 6.0;
    let _ = write!(
        svg.body,
        r##"<rect class="legend-scale" x="{}" y="{}" width="140" height="10" rx="2" fill="url(#clarion-scale)" stroke="#d1d5db" stroke-width="0.5"/>"##,
        num(x),
        num(y)
    );
    x += 146.0;
    let high_label = format_value(hi);
    svg.text(x, y + 9.0, "start", LABEL_SIZE, MUTED, &high_label);
    x += text_width(&high_label, LABEL_SIZE, false) + 24.0;
    let swatches = [
        (
            format!(r#"fill="{}" fill-opacity="0.45""#, colour_at(0.6)),
            true,
            "few samples",
        ),
        (format!(r#"fill="{EMPTY_CELL}""#), false, "no data"),
        (
            format!(r#"fill="none" stroke="{BEST}" stroke-width="2""#),
            false,
            "best",
        ),
    ];
    for (paint, hatched, label) in swatches {
        let _ = write!(
            svg.body,
            r#"<rect class="legend-swatch" x="{}" y="{}" width="14" height="14" rx="2" {paint}/>"#,
            num(x),
            num(y - 2.0)
        );
        if hatched {
            let _ = write!(
                svg.body,
                r#"<rect class="legend-swatch" x="{}" y="{}" width="14" height="14" rx="2" fill="url(#clarion-hatch)"/>"#,
                num(x),
                num(y - 2.0)
            );
        }
        svg.text(x + 19.0, y + 9.0, "start", LABEL_SIZE, MUTED, label);
        x += 19.0 + text_width(label, LABEL_SIZE, false) + 18.0;
    }
    svg.finish()
}

// --- Drawing helpers ---------------------------------------------------------

/// An SVG document being written: the header, then `body`.
struct Svg {
    body: String,
}

enum Swatch {
    Bar(&'static str),
    Line,
}

impl Svg {
    fn new(width: f64, height: f64, title: &str) -> Self {
        let title = escape_xml(title);
        let mut body = String::with_capacity(16 * 1024);
        let _ = write!(
            body,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{title}" font-family="{FONT}">"#,
            w = num(width),
            h = num(height),
        );
        let _ = write!(
            body,
            "<title>{title}</title><style>.bar:hover,.cell:hover{{opacity:.8}}.dot:hover{{stroke-width:3}}</style>"
        );
        let _ = write!(
            body,
            r##"<rect class="background" width="100%" height="100%" fill="#fff"/>"##
        );
        let _ = write!(
            body,
            r#"<text x="{MARGIN}" y="25" font-size="{TITLE_SIZE}" font-weight="600" fill="{INK}">{title}</text>"#
        );
        Self { body }
    }

    fn no_data(&mut self, width: f64, height: f64) {
        let y = (height + 30.0) / 2.0;
        let _ = write!(
            self.body,
            r#"<line x1="{MARGIN}" y1="{}" x2="{}" y2="{}" stroke="{GRID}" stroke-width="1" stroke-dasharray="4 4"/>"#,
            num(y + 18.0),
            num(width - MARGIN),
            num(y + 18.0)
        );
        self.text(width / 2.0, y, "middle", 14.0, MUTED, "No data yet");
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, colour: &str, width: f64) {
        let _ = write!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="{}" shape-rendering="crispEdges"/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2),
            num(width)
        );
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, size: f64, colour: &str, text: &str) {
        let _ = write!(
            self.body,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" font-size="{}" fill="{colour}">{}</text>"#,
            num(x),
            num(y),
            num(size),
            escape_xml(text)
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn text_class(
        &mut self,
        x: f64,
        y: f64,
        anchor: &str,
        size: f64,
        colour: &str,
        class: &str,
        text: &str,
    ) {
        let _ = write!(
            self.body,
            r#"<text class="{class}" x="{}" y="{}" text-anchor="{anchor}" font-size="{}" fill="{colour}">{}</text>"#,
            num(x),
            num(y),
            num(size),
            escape_xml(text)
        );
    }

    fn legend(&mut self, mut x: f64, y: f64, items: &[(Swatch, &str)]) {
        for (swatch, name) in items {
            match swatch {
                Swatch::Bar(colour) => {
                    let _ = write!(
                        self.body,
                        r#"<rect class="legend-swatch" x="{}" y="{}" width="12" height="12" rx="2" fill="{colour}"/>"#,
                        num(x),
                        num(y - 10.0)
                    );
                }
                Swatch::Line => {
                    self.line(x - 1.0, y - 4.0, x + 13.0, y - 4.0, LINE, 2.0);
                    let _ = write!(
                        self.body,
                        r##"<circle cx="{}" cy="{}" r="3" fill="#fff" stroke="{LINE}" stroke-width="1.5"/>"##,
                        num(x + 6.0),
                        num(y - 4.0)
                    );
                }
            }
            let _ = write!(
                self.body,
                r#"<text class="legend" x="{}" y="{}" font-size="{LEGEND_SIZE}" fill="{INK}">{}</text>"#,
                num(x + 18.0),
                num(y),
                escape_xml(name)
            );
            x += legend_item_width(name);
        }
    }

    fn finish(mut self) -> String {
        self.body.push_str("</svg>\n");
        self.body
    }
}

fn legend_item_width(name: &str) -> f64 {
    18.0 + text_width(name, LEGEND_SIZE, false) + 16.0
}

fn legend_width(items: &[(Swatch, &str)]) -> f64 {
    let total: f64 = items.iter().map(|(_, name)| legend_item_width(name)).sum();
    (total - 16.0).max(0.0)
}

/// A coordinate with at most one decimal, no trailing ".0".
fn num(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded == rounded.trunc() {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// A generous estimate of rendered text width in px (average glyph 0.62 em,
/// bold 0.66 em; CJK and other wide glyphs count double).
fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let em = if bold { 0.66 } else { 0.62 };
    let units: f64 = text
        .chars()
        .map(|c| if (c as u32) >= 0x1100 { 1.7 } else { 1.0 })
        .sum();
    units * size * em
}

/// `text` cut to `max` characters with "…".
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// 1234567 -> "1,234,567".
fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// About three significant digits, trailing zeros dropped.
fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    let text = if magnitude >= 1000.0 {
        return group_thousands(value.round() as i64);
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The scale's colour at `t` in 0..=1, as `#rrggbb`.
fn colour_at(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let position = t * (SCALE.len() - 1) as f64;
    let i = (position.floor() as usize).min(SCALE.len() - 2);
    let f = position - i as f64;
    let (a, b) = (SCALE[i], SCALE[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// Ticks for the right axis, one per left tick so both share gridlines
/// and 0 sits at the same height: the smallest nice step that fits the
/// line's values on the left axis's intervals above and below 0. When they
/// cannot fit (the left axis has no room above 0 for a positive line), the
/// line's own nice ticks.
fn aligned_ticks(left: &[i64], min: i64, max: i64) -> Vec<i64> {
    let zero = left.iter().position(|t| *t == 0);
    if let Some(zero) = zero {
        let below = zero as i128;
        let above = (left.len() - 1 - zero) as i128;
        let (min, max) = (i128::from(min.min(0)), i128::from(max.max(0)));
        if (above > 0 || max == 0) && (below > 0 || min == 0) {
            let mut step: i128 = 1;
            while step * above < max || step * below < -min {
                let mantissa = step / 10_i128.pow(step.ilog10());
                step = if mantissa == 2 {
                    step / 2 * 5
                } else {
                    step * 2
                };
            }
            let ticks: Vec<i64> = (0..left.len() as i128)
                .filter_map(|i| i64::try_from((i - below) * step).ok())
                .collect();
            if ticks.len() == left.len() {
                return ticks;
            }
        }
    }
    nice_ticks(min.min(0), max.max(0))
}

/// Every `stride`-th label is drawn so at most [`MAX_X_LABELS`] are, each
/// `label_width` wide with room between them.
fn label_stride(count: usize, plot_width: f64, label_width: f64) -> usize {
    let fit = (plot_width / (label_width + 12.0)).floor().max(1.0) as usize;
    let most = fit.min(MAX_X_LABELS);
    count.div_ceil(most).max(1)
}

/// The labels as shown on the x axis: ISO dates of one year as "Mar 2".
fn axis_labels(labels: &[&str]) -> Vec<String> {
    let dates: Option<Vec<chrono::NaiveDate>> = labels
        .iter()
        .map(|l| {
            (l.len() == 10)
                .then(|| chrono::NaiveDate::parse_from_str(l, "%Y-%m-%d").ok())
                .flatten()
        })
        .collect();
    match dates {
        Some(dates)
            if dates
                .windows(2)
                .all(|w| chrono::Datelike::year(&w[0]) == chrono::Datelike::year(&w[1])) =>
        {
            dates
                .iter()
                .map(|d| d.format("%b %-d").to_string())
                .collect()
        }
        _ => labels.iter().map(|l| (*l).to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use quick_xml::Reader;
    use quick_xml::events::Event;

    use super::*;

    /// What a parsed SVG holds.
    #[derive(Default, Debug)]
    struct Parsed {
        /// Element name -> count.
        elements: BTreeMap<String, usize>,
        /// Class -> count.
        classes: BTreeMap<String, usize>,
        /// Text of each element with a class, by class.
        texts: BTreeMap<String, Vec<String>>,
        /// All character data, entities resolved.
        all_text: String,
        root_attributes: BTreeMap<String, String>,
    }

    /// Parses `svg` fully as XML (panics on any well-formedness error,
    /// mismatched end tag or unknown entity) and counts what is in it.
    fn parse(svg: &str) -> Parsed {
        let mut reader = Reader::from_str(svg);
        reader.config_mut().check_end_names = true;
        let mut parsed = Parsed::default();
        let mut depth = 0_usize;
        let mut roots = 0;
        let mut open_class: Vec<Option<String>> = Vec::new();
        let mut open_text: Vec<String> = Vec::new();
        loop {
            let event = reader.read_event().unwrap_or_else(|e| {
                panic!(
                    "not well-formed at {}: {e}\n{svg}",
                    reader.buffer_position()
                )
            });
            let start = match &event {
                Event::Start(e) | Event::Empty(e) => Some(e.clone()),
                _ => None,
            };
            if let Some(e) = start {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if depth == 0 {
                    roots += 1;
                    assert_eq!(name, "svg");
                }
                *parsed.elements.entry(name).or_default() += 1;
                let mut class = None;
                for attribute in e.attributes() {
                    let attribute = attribute.unwrap();
                    let key = String::from_utf8(attribute.key.as_ref().to_vec()).unwrap();
                    let value = attribute.unescape_value().unwrap().into_owned();
                    if depth == 0 {
                        parsed.root_attributes.insert(key.clone(), value.clone());
                    }
                    if key == "class" {
                        *parsed.classes.entry(value.clone()).or_default() += 1;
                        class = Some(value);
                    }
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                    open_class.push(class);
                    open_text.push(String::new());
                } else if let Some(class) = class {
                    parsed.texts.entry(class).or_default().push(String::new());
                }
            }
            let mut add_text = |text: &str| {
                parsed.all_text.push_str(text);
                if let Some(open) = open_text.last_mut() {
                    open.push_str(text);
                }
            };
            match event {
                Event::Text(t) => add_text(&t.decode().unwrap()),
                Event::GeneralRef(r) => {
                    let name = r.decode().unwrap();
                    let resolved = match name.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => match r.resolve_char_ref().unwrap() {
                            Some(c) => c,
                            None => panic!("unknown entity &{other};"),
                        },
                    };
                    add_text(&resolved.to_string());
                }
                Event::End(_) => {
                    depth -= 1;
                    let text = open_text.pop().unwrap();
                    if let Some(Some(class)) = open_class.pop() {
                        parsed.texts.entry(class).or_default().push(text);
                    }
                }
                Event::Eof => break,
                Event::Start(_) | Event::Empty(_) | Event::Comment(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(depth, 0);
        assert_eq!(roots, 1);
        assert_eq!(parsed.root_attributes["role"], "img");
        assert!(!parsed.root_attributes["aria-label"].is_empty());
        parsed
    }

    fn dollars(minor: i64) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let minor = minor.unsigned_abs();
        format!(
            "{sign}${}.{:02}",
            group_thousands((minor / 100) as i64),
            minor % 100
        )
    }

    /// `days` days of revenue (minor units) and orders from 2026-03-01.
    fn daily(days: u32) -> (Series, Series) {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let mut revenue = Series {
            name: "Revenue".into(),
            points: Vec::new(),
        };
        let mut orders = Series {
            name: "Orders".into(),
            points: Vec::new(),
        };
        for day in 0..days {
            let label = (start + chrono::Days::new(u64::from(day))).to_string();
            let wave = i64::from((day * 37 + 11) % 23);
            let weekend = if day % 7 >= 5 { 2 } else { 1 };
            orders
                .points
                .push((label.clone(), (wave / 2 + 3) * weekend));
            revenue
                .points
                .push((label, (wave * 4_150 + 12_000) * weekend));
        }
        (revenue, orders)
    }

    /// Weekday labels, hour labels, values and low-sample marks.
    type Grid = (
        Vec<String>,
        Vec<String>,
        Vec<Vec<Option<f64>>>,
        Vec<Vec<bool>>,
    );

    fn week_heatmap() -> Grid {
        let rows: Vec<String> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .map(|d| (*d).to_owned())
            .collect();
        let cols: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
        let mut cells = Vec::new();
        let mut low = Vec::new();
        for r in 0..7 {
            let mut row = Vec::new();
            let mut row_low = Vec::new();
            for c in 0..24_i32 {
                let evening = f64::from(-(c - 19).pow(2)).exp2().max(0.0) * 0.05;
                let morning = f64::from(-(c - 8).pow(2) / 4).exp2() * 0.025;
                let weekend = if r >= 5 { 1.3 } else { 1.0 };
                let night = (2..6).contains(&c);
                row.push((!(night && r < 5)).then_some((0.008 + evening + morning) * weekend));
                row_low.push(night || c == 23 || (r == 6 && c == 19));
            }
            cells.push(row);
            low.push(row_low);
        }
        (rows, cols, cells, low)
    }

    #[test]
    fn nice_ticks_use_1_2_5_steps() {
        assert_eq!(nice_ticks(0, 1234), [0, 500, 1000, 1500]);
        assert_eq!(nice_ticks(0, 1000), [0, 200, 400, 600, 800, 1000]);
        assert_eq!(nice_ticks(0, 7), [0, 2, 4, 6, 8]);
        assert_eq!(nice_ticks(0, 3), [0, 1, 2, 3]);
        assert_eq!(nice_ticks(0, 0), [0, 1]);
        assert_eq!(
            nice_ticks(0, 98_765),
            [0, 20_000, 40_000, 60_000, 80_000, 100_000]
        );
        assert_eq!(nice_ticks(-350, 820), [-500, 0, 500, 1000]);
        assert_eq!(nice_ticks(120, 180), [120, 140, 160, 180]);
        assert_eq!(nice_ticks(1234, 0), nice_ticks(0, 1234));
        for (lo, hi) in [
            (0, 1),
            (0, 5),
            (0, 17),
            (3, 9_999_999),
            (-7, 7),
            (0, i64::MAX / 2),
        ] {
            let ticks = nice_ticks(lo, hi);
            assert!((2..=6).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            assert!(
                ticks[0] <= lo && *ticks.last().unwrap() >= hi,
                "{lo}..{hi}: {ticks:?}"
            );
            let step = ticks[1] - ticks[0];
            let mantissa = step / 10_i64.pow(step.ilog10());
            assert!([1, 2, 5].contains(&mantissa) && step % 10_i64.pow(step.ilog10()) == 0);
            assert!(ticks.windows(2).all(|w| w[1] - w[0] == step));
        }
        // Extremes do not overflow.
        assert!(!nice_ticks(i64::MIN, i64::MAX).is_empty());
    }

    #[test]
    fn escapes_text_for_xml() {
        assert_eq!(
            escape_xml(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &apos;y&apos;)&lt;/script&gt;"
        );
        assert_eq!(escape_xml("a\u{0}b\u{1b}c\nd"), "abc\nd");
        assert_eq!(escape_xml("Café 🎉"), "Café 🎉");
    }

    #[test]
    fn bar_and_line_draws_a_bar_per_point_and_a_dot_per_point() {
        let (revenue, orders) = daily(14);
        let svg = bar_and_line("Revenue & orders", &revenue, &dollars, Some(&orders));
        let parsed = parse(&svg);
        assert_eq!(parsed.classes["bar"], 14);
        assert_eq!(parsed.classes["dot"], 14);
        assert_eq!(parsed.classes["line"], 1);
        assert_eq!(parsed.root_attributes["width"], "720");
        assert_eq!(parsed.root_attributes["height"], "320");
        assert_eq!(parsed.root_attributes["aria-label"], "Revenue & orders");
        // Every bar and dot has its exact value on hover.
        let (label, value) = &revenue.points[3];
        assert!(
            parsed
                .all_text
                .contains(&format!("{label} · Revenue: {}", dollars(*value)))
        );
        assert!(
            parsed
                .all_text
                .contains(&format!("{label} · Orders: {}", orders.points[3].1))
        );
        // Dates are shown short, and the legend names both series.
        assert_eq!(parsed.texts["x-label"][0], "Mar 1");
        assert_eq!(parsed.texts["legend"], ["Revenue", "Orders"]);

        let bars_only = parse(&bar_and_line("Revenue", &revenue, &dollars, None));
        assert_eq!(bars_only.classes["bar"], 14);
        assert!(!bars_only.classes.contains_key("dot"));
    }

    #[test]
    fn x_labels_are_thinned_so_they_do_not_overlap() {
        for days in [1, 7, 12, 13, 31, 90, 365] {
            let (revenue, orders) = daily(days);
            let parsed = parse(&bar_and_line("Revenue", &revenue, &dollars, Some(&orders)));
            let shown = parsed.texts["x-label"].len();
            assert!(shown <= MAX_X_LABELS, "{days} days: {shown} labels");
            assert!(shown >= days.min(6) as usize, "{days} days: {shown} labels");
            assert_eq!(parsed.classes["bar"], days as usize);
        }
        // Long labels are thinned harder than 12.
        let long = Series {
            name: "Clicks".into(),
            points: (0..40)
                .map(|i| (format!("campaign-number-{i:03}"), i))
                .collect(),
        };
        let parsed = parse(&bar_and_line("Clicks", &long, &|v| v.to_string(), None));
        let shown = parsed.texts["x-label"].len();
        let width = text_width("campaign-number-000", LABEL_SIZE, false) + 12.0;
        assert!((shown as f64) * width <= WIDTH, "{shown} labels");
        assert_eq!(label_stride(90, 600.0, 30.0), 8);
        assert!(90_usize.div_ceil(label_stride(90, 600.0, 30.0)) <= 12);
    }

    #[test]
    fn labels_are_escaped() {
        let evil = Series {
            name: "<script>alert(1)</script>".into(),
            points: vec![("<b>day</b>".into(), 100), ("a & b \"quoted\"".into(), 200)],
        };
        let svg = bar_and_line(
            "<script>x</script>",
            &evil,
            &|v| format!("<{v}>"),
            Some(&evil),
        );
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let parsed = parse(&svg);
        assert!(!parsed.elements.contains_key("script"));
        assert!(parsed.all_text.contains("<script>alert(1)</script>"));
        assert!(
            parsed
                .all_text
                .contains("a & b \"quoted\" · <script>alert(1)</script>: <200>")
        );
        assert_eq!(parsed.root_attributes["aria-label"], "<script>x</script>");

        let rows = vec![("<script>bob</script>".to_owned(), 5)];
        let svg = horizontal_bars("t", &rows, &|v| v.to_string());
        assert!(!svg.contains("<script>"));
        parse(&svg);
        let svg = heatmap(
            "<t>",
            &["<r>".to_owned()],
            &["<c>".to_owned()],
            &[vec![Some(1.0)]],
            &[],
        );
        assert!(!svg.contains("<r>") && !svg.contains("<c>"));
        parse(&svg);
    }

    #[test]
    fn empty_data_says_so() {
        let empty = Series {
            name: "Revenue".into(),
            points: Vec::new(),
        };
        for svg in [
            bar_and_line("Revenue", &empty, &dollars, None),
            bar_and_line("Revenue", &empty, &dollars, Some(&empty)),
            horizontal_bars("By creator", &[], &dollars),
            heatmap("Best times", &[], &[], &[], &[]),
            heatmap(
                "Best times",
                &["Mon".into()],
                &["09".into()],
                &[vec![None]],
                &[],
            ),
        ] {
            let parsed = parse(&svg);
            assert!(parsed.all_text.contains("No data yet"), "{svg}");
            assert!(!parsed.classes.contains_key("bar"));
        }
        // A line without bars still draws.
        let (_, orders) = daily(5);
        let parsed = parse(&bar_and_line("Orders", &empty, &dollars, Some(&orders)));
        assert_eq!(parsed.classes["dot"], 5);
        assert!(!parsed.all_text.contains("No data yet"));
    }

    #[test]
    fn negative_and_zero_values_draw() {
        let series = Series {
            name: "Net".into(),
            points: vec![("a".into(), -500), ("b".into(), 0), ("c".into(), 1_200)],
        };
        let parsed = parse(&bar_and_line("Net", &series, &dollars, None));
        assert_eq!(parsed.classes["bar"], 3);
        let rows = vec![
            ("ann".to_owned(), 1_500),
            ("bob".to_owned(), -300),
            ("cat".to_owned(), 0),
        ];
        let parsed = parse(&horizontal_bars("Profit", &rows, &dollars));
        assert_eq!(parsed.classes["bar"], 3);
    }

    #[test]
    fn horizontal_bars_grow_with_rows_and_label_values() {
        let rows: Vec<(String, i64)> = (0..10)
            .map(|i| (format!("creator-{i}"), 100_000 - i * 9_000))
            .collect();
        let three = parse(&horizontal_bars("Revenue by creator", &rows[..3], &dollars));
        let ten = parse(&horizontal_bars("Revenue by creator", &rows, &dollars));
        assert_eq!(three.classes["bar"], 3);
        assert_eq!(ten.classes["bar"], 10);
        let h3: f64 = three.root_attributes["height"].parse().unwrap();
        let h10: f64 = ten.root_attributes["height"].parse().unwrap();
        assert!(h10 > h3 + 150.0, "{h3} {h10}");
        assert!(ten.all_text.contains("$1,000.00") && ten.all_text.contains("$190.00"));
        let long = vec![(
            "a-creator-with-a-really-very-long-name-indeed".to_owned(),
            1,
        )];
        let parsed = parse(&horizontal_bars("t", &long, &dollars));
        assert!(parsed.all_text.contains("a-creator-with-a-really-ver…"));
        assert!(
            parsed
                .all_text
                .contains("a-creator-with-a-really-very-long-name-indeed: $0.01")
        );
    }

    #[test]
    fn heatmap_draws_every_cell_and_marks_low_samples() {
        let (rows, cols, cells, low) = week_heatmap();
        let parsed = parse(&heatmap("Best times to post", &rows, &cols, &cells, &low));
        assert_eq!(parsed.classes["cell"], 7 * 24);
        let low_count = low.iter().flatten().filter(|l| **l).count();
        assert_eq!(parsed.classes["hatch"], low_count);
        assert_eq!(parsed.classes["best"], 1);
        assert!(parsed.all_text.contains("Tue 03: no data (few samples)"));
        assert!(parsed.all_text.contains("few samples") && parsed.all_text.contains("no data"));
        // Ragged input: missing cells are "no data".
        let parsed = parse(&heatmap(
            "Ragged",
            &rows[..2],
            &cols[..3],
            &[vec![Some(1.0)], vec![]],
            &[vec![true]],
        ));
        assert_eq!(parsed.classes["cell"], 6);
        assert_eq!(parsed.classes["hatch"], 1);
        // The only value is low-sample: nothing is "best".
        assert!(!parsed.classes.contains_key("best"));
        assert!(parsed.all_text.contains("Mon 00: 1 (few samples)"));
    }

    #[test]
    fn helpers() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(-1_234_567), "-1,234,567");
        assert_eq!(group_thousands(i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(format_value(0.04512), "0.045");
        assert_eq!(format_value(3.2), "3.2");
        assert_eq!(format_value(12.34), "12.3");
        assert_eq!(format_value(1234.5), "1,235");
        assert_eq!(colour_at(0.0), "#eff3ff");
        assert_eq!(colour_at(1.0), "#08519c");
        assert_eq!(colour_at(f64::NAN), "#eff3ff");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(
            axis_labels(&["2026-03-02", "2026-03-10"]),
            ["Mar 2", "Mar 10"]
        );
        assert_eq!(
            axis_labels(&["2025-12-31", "2026-01-01"]),
            ["2025-12-31", "2026-01-01"]
        );
        assert_eq!(axis_labels(&["week 1"]), ["week 1"]);
        assert_eq!(aligned_ticks(&[0, 500, 1000, 1500], 0, 37), [0, 20, 40, 60]);
        assert_eq!(aligned_ticks(&[-1000, 0, 1000, 2000], 0, 4), [-2, 0, 2, 4]);
        assert_eq!(
            aligned_ticks(&[-1000, 0, 1000, 2000], -3, 1),
            [-5, 0, 5, 10]
        );
        // No room above 0 on the left: the line's own ticks.
        assert_eq!(aligned_ticks(&[-1000, -500, 0], 0, 4), nice_ticks(0, 4));
    }

    /// Writes one chart of each kind to `<temp>/clarion-charts/` for a
    /// person to look at.
    #[test]
    fn writes_sample_charts() {
        let dir = std::env::temp_dir().join("clarion-charts");
        std::fs::create_dir_all(&dir).unwrap();
        let (revenue, orders) = daily(30);
        let (revenue90, orders90) = daily(90);
        let creators: Vec<(String, i64)> = [
            ("ann", 412_350),
            ("bob", 298_000),
            ("chef-carla", 154_920),
            ("dave.makes.things", 61_500),
            ("eve", 0),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), *v))
        .collect();
        let (rows, cols, cells, low) = week_heatmap();
        let empty = Series::default();
        let charts = [
            (
                "bar-and-line.svg",
                bar_and_line(
                    "Spring sale: revenue and orders by day",
                    &revenue,
                    &dollars,
                    Some(&orders),
                ),
            ),
            (
                "bar-and-line-90.svg",
                bar_and_line("Last 90 days", &revenue90, &dollars, Some(&orders90)),
            ),
            (
                "horizontal-bars.svg",
                horizontal_bars("Attributed revenue by creator", &creators, &dollars),
            ),
            (
                "heatmap.svg",
                heatmap(
                    "Best times to post: engagement rate (UTC)",
                    &rows,
                    &cols,
                    &cells,
                    &low,
                ),
            ),
            ("empty.svg", bar_and_line("Revenue", &empty, &dollars, None)),
            (
                "edge-cases.svg",
                bar_and_line(
                    "Net revenue after refunds for the whole spring sale, week by week (USD)",
                    &Series {
                        name: "Net revenue".into(),
                        points: vec![
                            ("week 9".into(), 154_000),
                            ("week 10".into(), -23_050),
                            ("week 11".into(), 0),
                        ],
                    },
                    &dollars,
                    Some(&Series {
                        name: "Refunded orders".into(),
                        points: vec![("week 9".into(), 1), ("week 11".into(), 4)],
                    }),
                ),
            ),
            (
                "horizontal-bars-negative.svg",
                horizontal_bars(
                    "Profit by creator",
                    &[
                        ("ann".to_owned(), 120_000),
                        (
                            "a-creator-with-a-really-very-long-name-indeed".to_owned(),
                            -45_000,
                        ),
                        ("cat".to_owned(), 3_000),
                    ],
                    &dollars,
                ),
            ),
        ];
        for (name, svg) in charts {
            parse(&svg);
            std::fs::write(dir.join(name), svg).unwrap();
        }
    }
}
