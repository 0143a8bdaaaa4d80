//! `clarion post import FILE`: many posts from a CSV or JSON Lines file, all
//! or none, through the same service call as `POST /api/v1/posts/bulk`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clarion_scheduler::{ItemError, PostInput, ValidPost};
use clarion_server::{FieldError, PostRequest, json_field_error};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::App;

/// Posts rendered and checked per step of the progress bar.
const CHECK_CHUNK: usize = 500;
/// Problems printed before the rest are only counted.
const MAX_SHOWN: usize = 50;

#[derive(Debug, clap::Args)]
#[command(after_long_help = IMPORT_HELP)]
pub struct ImportArgs {
    /// The file: `.csv`, or `.jsonl`/`.ndjson` (JSON Lines); `-` reads standard input.
    pub file: PathBuf,
    /// The file's format, when its name does not say.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Check every post and report, but store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

const IMPORT_HELP: &str = "\
Every post is parsed, rendered and checked against its channels first; if
any line is refused, nothing is stored and each problem is printed as
FILE:LINE: FIELD: MESSAGE. Otherwise all posts are stored in one transaction
and queued.

CSV: a header row, then one post per row. Columns (only body and channels
are required; empty cells mean \"not given\"):
  body         the post (Markdown, may use {{variables}})
  channels     channel names separated by spaces, commas or semicolons
  at           RFC 3339 time, e.g. 2026-12-01T09:00:00Z (empty: now)
  draft        true/false: store without a time
  thread       true/false: split into parts at lines that are exactly ---
  template     a template from content/templates
  campaign, author
  var.NAME     a template variable (one column per variable)
  override.CH  the body for channel CH instead of `body`

  body,channels,at,campaign,var.product
  \"{{product}} 2.0 is out\",mastodon bluesky,2026-12-01T09:00:00Z,launch,Clarion

JSON Lines: one JSON object per line, exactly what POST /api/v1/posts takes
(body, channels, at, draft, template, vars, campaign, author, overrides,
thread, media); blank lines are skipped.

  {\"body\": \"Hello\", \"channels\": [\"mastodon\"], \"at\": \"2026-12-01T09:00:00Z\"}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// A post read from the file, or why its line cannot be one.
struct Row {
    line: usize,
    post: Result<PostInput, FieldError>,
}

pub async fn run(args: ImportArgs, app: &App) -> anyhow::Result<()> {
    let started = Instant::now();
    let format = match args.format {
        Some(f) => f,
        None => format_of(&args.file)?,
    };
    let name = args.file.display().to_string();
    let text = read(&args.file)?;
    let rows = match format {
        Format::Csv => csv_rows(&text)?,
        Format::Jsonl => jsonl_rows(&text),
    };
    if rows.is_empty() {
        bail!("{name}: no posts in the file");
    }

    let total = rows.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("checking {bar:40} {pos}/{len} posts {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut problems: Vec<(usize, String, String)> = Vec::new();
    let mut valid: Vec<ValidPost> = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut inputs = Vec::with_capacity(CHECK_CHUNK);
        let mut lines = Vec::with_capacity(CHECK_CHUNK);
        for row in rows.by_ref().take(CHECK_CHUNK) {
            bar.inc(1);
            match row.post {
                Ok(input) => {
                    inputs.push(input);
                    lines.push(row.line);
                }
                Err(e) => problems.push((row.line, e.field, e.message)),
            }
        }
        match app.service.check_many(inputs) {
            Ok(ok) => valid.extend(ok),
            Err(errors) => problems.extend(errors.into_iter().map(
                |ItemError {
                     index,
                     field,
                     message,
                 }| (lines[index], field, message),
            )),
        }
    }
    bar.finish_and_clear();

    if !problems.is_empty() {
        problems.sort_by_key(|p| p.0);
        let refused = {
            let mut lines: Vec<usize> = problems.iter().map(|p| p.0).collect();
            lines.dedup();
            lines.len()
        };
        for (line, field, message) in problems.iter().take(MAX_SHOWN) {
            eprintln!("{name}:{line}: {field}: {message}");
        }
        if problems.len() > MAX_SHOWN {
            eprintln!("... and {} more", problems.len() - MAX_SHOWN);
        }
        bail!("{refused} of {total} posts are not valid; nothing was stored");
    }
    let count = valid.len();
    if args.dry_run {
        println!("{count} posts are valid; nothing was stored (--dry-run)");
        return Ok(());
    }

    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("storing {count} posts in one transaction"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let details = app
        .service
        .store_valid(valid)
        .await
        .map_err(super::service_error)?;
    spinner.finish_and_clear();

    let targets: usize = details.iter().map(|d| d.targets.len()).sum();
    let drafts = details
        .iter()
        .filter(|d| d.post.scheduled_at_ms.is_none())
        .count();
    let first = details.first().map_or(0, |d| d.post.id);
    let last = details.last().map_or(0, |d| d.post.id);
    println!(
        "imported {count} posts ({targets} targets, {drafts} drafts) as posts {first}..{last} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn format_of(path: &Path) -> anyhow::Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        _ => bail!(
            "{}: cannot tell the format from the name; give --format csv or --format jsonl",
            path.display()
        ),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn jsonl_rows(text: &str) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Row {
            line: i + 1,
            post: serde_json::from_str::<PostRequest>(line)
                .map_err(|e| json_field_error(&e))
                .and_then(|r| r.into_input_in(crate::time::zone())),
        })
        .collect()
}

/// What a CSV column feeds.
#[derive(Debug, Clone)]
enum Column {
    Body,
    Channels,
    At,
    Draft,
    Thread,
    Template,
    Campaign,
    Author,
    Var(String),
    Override(String),
}

fn csv_rows(text: &str) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader.headers().context("line 1: reading the CSV header")?;
    let columns = headers
        .iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("line 1: {e}"))?;
    for required in ["body", "channels"] {
        if !headers.iter().any(|h| h == required) {
            bail!("line 1: the header has no `{required}` column (it needs body and channels)");
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                rows.push(Row {
                    line,
                    post: Err(FieldError {
                        field: "(csv)".into(),
                        message: csv_message(&e),
                    }),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        rows.push(Row {
            line,
            post: csv_post(&columns, &record).and_then(|r| r.into_input_in(crate::time::zone())),
        });
    }
    Ok(rows)
}

fn column(name: &str) -> Result<Column, String> {
    Ok(match name {
        "body" => Column::Body,
        "channels" => Column::Channels,
        "at" => Column::At,
        "draft" => Column::Draft,
        "thread" => Column::Thread,
        "template" => Column::Template,
        "campaign" => Column::Campaign,
        "author" => Column::Author,
        _ => {
            if let Some(var) = name.strip_prefix("var.").filter(|v| !v.is_empty()) {
                Column::Var(var.to_owned())
            } else if let Some(ch) = name.strip_prefix("override.").filter(|c| !c.is_empty()) {
                Column::Override(ch.to_owned())
            } else {
                return Err(format!(
                    "unknown column `{name}` (known: body, channels, at, draft, thread, template, \
                     campaign, author, var.NAME, override.CHANNEL)"
                ));
            }
        }
    })
}

/// One record as the JSON a bulk request would carry for it.
fn csv_post(columns: &[Column], record: &csv::StringRecord) -> Result<PostRequest, FieldError> {
    let mut post = PostRequest {
        body: String::new(),
        channels: Vec::new(),
        at: None,
        draft: false,
        template: None,
        vars: serde_json::Map::new(),
        campaign: None,
        author: None,
        overrides: BTreeMap::new(),
        thread: false,
        media: Vec::new(),
    };
    let given = |cell: &str| (!cell.trim().is_empty()).then(|| cell.to_owned());
    for (column, cell) in columns.iter().zip(record.iter()) {
        match column {
            Column::Body => post.body = cell.to_owned(),
            Column::Channels => {
                post.channels = cell
                    .split([',', ';', ' ', '\t'])
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            Column::At => post.at = given(cell).map(|t| t.trim().to_owned()),
            Column::Draft => post.draft = flag("draft", cell)?,
            Column::Thread => post.thread = flag("thread", cell)?,
            Column::Template => post.template = given(cell),
            Column::Campaign => post.campaign = given(cell),
            Column::Author => post.author = given(cell),
            Column::Var(name) => {
                post.vars
                    .insert(name.clone(), serde_json::Value::String(cell.to_owned()));
            }
            Column::Override(channel) => {
                if let Some(body) = given(cell) {
                    post.overrides.insert(channel.clone(), body);
                }
            }
        }
    }
    Ok(post)
}

fn flag(field: &str, cell: &str) -> Result<bool, FieldError> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(FieldError {
            field: field.to_owned(),
            message: format!("`{other}` is not true or false"),
        }),
    }
}

fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header has {expected_len}"),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_carry_their_line_and_fields() {
        let text = "body,channels,at,draft,var.who,override.b\n\
                    \"hi {{who}}\nthere\",a; b,2026-12-01T09:00:00Z,,you,\n\
                    x,a,,maybe,,\n\
                    y,a,soon,,,\n\
                    z,a\n";
        let rows = csv_rows(text).unwrap();
        assert_eq!(rows.len(), 4);
        let first = rows[0].post.as_ref().unwrap();
        assert_eq!(rows[0].line, 2);
        assert_eq!(first.body, "hi {{who}}\nthere");
        assert_eq!(first.channels, ["a", "b"]);
        assert_eq!(first.vars["who"], "you");
        assert!(first.overrides.is_empty());
        // The quoted body spans two lines: the next record starts on line 4.
        assert_eq!(rows[1].line, 4);
        assert_eq!(
            rows[1].post.as_ref().unwrap_err().to_string(),
            "draft: `maybe` is not true or false"
        );
        assert!(
            rows[2]
                .post
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("at: `soon` is not an RFC 3339 time"),
        );
        assert_eq!(rows[3].line, 6);
        assert_eq!(
            rows[3].post.as_ref().unwrap_err().to_string(),
            "(csv): 2 fields, but the header has 6"
        );
    }

    #[test]
    fn csv_headers_are_checked() {
        let err = csv_rows("body,chanels\nx,y\n").err().unwrap().to_string();
        assert!(err.starts_with("line 1: unknown column `chanels`"), "{err}");
        let err = csv_rows("body\nx\n").err().unwrap().to_string();
        assert!(err.contains("no `channels` column"), "{err}");
    }

    #[test]
    fn jsonl_names_line_and_field() {
        let rows = jsonl_rows(
            "{\"body\": \"a\", \"channels\": [\"x\"]}\n\n{\"body\": \"b\"}\n{\"body\": \"c\", \"channels\": [], \"at\": \"later\"}\n",
        );
        assert_eq!(rows.len(), 3);
        assert!(rows[0].post.is_ok());
        assert_eq!(rows[1].line, 3);
        let e = rows[1].post.as_ref().unwrap_err();
        assert_eq!(e.field, "channels");
        assert_eq!(rows[2].post.as_ref().unwrap_err().field, "at");
    }
}
