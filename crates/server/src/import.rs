//! Imports, shared by `clarion post import FILE` and
//! `POST /api/v1/posts:import`: reading CSV or JSON Lines into posts line by
//! line, sorting out rows imported before and rows repeated in the file, and
//! checking the rest — every problem named by line and column before
//! anything is stored.
//!
//! A row's identity is the fingerprint of its content
//! ([`clarion_scheduler::import_key`]), stored with the post: a row whose
//! fingerprint is stored is *already imported* and skipped (not checked
//! again: its time may have passed), and a row that repeats an earlier row
//! of the same file is a *duplicate line*, stored once.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use clarion_core::time::Tz;
use clarion_scheduler::{ImportPost, PostInput, PostService, ServiceError, ValidPost};
use clarion_store::PostDetail;

use crate::{FieldError, PostRequest, json_field_error};

/// Posts rendered and checked per step (one progress step, one blocking task).
const CHECK_CHUNK: usize = 500;

/// How the posts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header row naming the columns, then a post per record.
    Csv,
    /// One JSON object per line, what `POST /api/v1/posts` takes.
    Jsonl,
}

/// A post read from one line (the first line of a CSV record), or why it
/// cannot be one.
#[derive(Debug)]
pub struct Row {
    pub line: usize,
    pub post: Result<PostInput, FieldError>,
}

/// One problem of an import: `line 17: channels: channel `ghost`: unknown channel`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {message}")]
pub struct LineError {
    pub line: usize,
    /// The column (CSV) or field (JSON Lines) at fault.
    pub field: String,
    pub message: String,
}

/// A line that repeats an earlier line of the same import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    pub line: usize,
    pub same_as: usize,
}

impl std::fmt::Display for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: the same post as line {}; imported once",
            self.line, self.same_as
        )
    }
}

/// An import that passed every check, ready to store.
#[derive(Debug)]
pub struct Checked {
    /// The new posts, in line order.
    pub valid: Vec<ValidPost>,
    /// Lines whose post was imported before (skipped, not checked).
    pub already_imported: Vec<usize>,
    pub duplicates: Vec<Duplicate>,
    /// Posts read (every row).
    pub rows: usize,
}

/// Why an import was not checked through.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Checking itself failed (a rendering task panicked): not the rows' fault.
    #[error("checking the posts failed: {0}")]
    Internal(String),
}

/// Rows refused: every problem by line; nothing is stored.
#[derive(Debug, thiserror::Error)]
#[error("{refused} of {rows} posts are not valid; nothing was stored")]
pub struct Refused {
    /// In line order.
    pub problems: Vec<LineError>,
    /// Lines with at least one problem.
    pub refused: usize,
    /// Posts read (every row).
    pub rows: usize,
}

/// What storing an import did.
#[derive(Debug)]
pub struct Imported {
    /// The posts created, in line order.
    pub created: Vec<PostDetail>,
    /// Rows skipped because their post was imported before (also by an
    /// import that ran at the same moment).
    pub already_imported: usize,
    pub duplicates: Vec<Duplicate>,
}

/// Reads every row. The error (a bad header: `line 1: unknown column ...`)
/// means nothing could be read; a bad row is a [`Row`] with its error.
/// Times without an offset are in `zone`.
pub fn read_rows(text: &str, format: Format, zone: Tz) -> Result<Vec<Row>, String> {
    // Spreadsheets write a UTF-8 byte order mark; it is not part of the header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Csv => csv_rows(text, zone),
        Format::Jsonl => Ok(jsonl_rows(text, zone)),
    }
}

/// Sorts the rows into new, already imported and duplicate lines, then
/// renders and validates the new ones for their channels (`progress` is told
/// how many rows each step took). Any problem refuses the whole import.
pub async fn check(
    service: &PostService,
    rows: Vec<Row>,
    format: Format,
    mut progress: impl FnMut(usize),
) -> Result<Checked, CheckError> {
    let total = rows.len();
    let mut problems = Vec::new();
    let mut duplicates = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut fresh: Vec<(usize, ImportPost)> = Vec::with_capacity(rows.len());
    for row in rows {
        match row.post {
            Err(FieldError { field, message }) => problems.push(LineError {
                line: row.line,
                field,
                message,
            }),
            Ok(input) => {
                let post = ImportPost::new(input);
                match first_line.entry(post.key().to_owned()) {
                    Entry::Occupied(first) => duplicates.push(Duplicate {
                        line: row.line,
                        same_as: *first.get(),
                    }),
                    Entry::Vacant(slot) => {
                        slot.insert(row.line);
                        fresh.push((row.line, post));
                    }
                }
            }
        }
    }
    let keys: Vec<String> = fresh.iter().map(|(_, p)| p.key().to_owned()).collect();
    let stored = service.stored_import_keys(&keys).await?;
    let (old, fresh): (Vec<_>, Vec<_>) = fresh
        .into_iter()
        .partition(|(_, p)| stored.contains(p.key()));
    let already_imported: Vec<usize> = old.into_iter().map(|(line, _)| line).collect();
    progress(total - fresh.len());

    let mut valid = Vec::with_capacity(fresh.len());
    let mut fresh = fresh.into_iter().peekable();
    while fresh.peek().is_some() {
        let (chunk_lines, chunk): (Vec<usize>, Vec<ImportPost>) =
            fresh.by_ref().take(CHECK_CHUNK).unzip();
        let count = chunk.len();
        // Rendering is CPU work: keep it off the I/O threads.
        let service = service.clone();
        let checked = tokio::task::spawn_blocking(move || service.check_import(chunk))
            .await
            .map_err(|e| CheckError::Internal(e.to_string()))?;
        match checked {
            Ok(ok) => valid.extend(ok),
            Err(errors) => problems.extend(errors.into_iter().map(|e| LineError {
                line: chunk_lines[e.index],
                field: e.field,
                message: e.message,
            })),
        }
        progress(count);
    }

    if !problems.is_empty() {
        // Stable: a line's problems keep their order.
        problems.sort_by_key(|p| p.line);
        if format == Format::Csv {
            for p in &mut problems {
                p.field = csv_column(&p.field);
            }
        }
        let mut refused: Vec<usize> = problems.iter().map(|p| p.line).collect();
        refused.dedup();
        return Err(CheckError::Refused(Refused {
            problems,
            refused: refused.len(),
            rows: total,
        }));
    }
    Ok(Checked {
        valid,
        already_imported,
        duplicates,
        rows: total,
    })
}

/// Stores a checked import (all or none) and queues it; returns after the
/// commit. A row imported meanwhile by someone else is counted as already
/// imported, not stored twice.
pub async fn store(service: &PostService, checked: Checked) -> Result<Imported, ServiceError> {
    let written = service.store_import(checked.valid).await?;
    let raced = written.iter().filter(|w| w.is_none()).count();
    Ok(Imported {
        created: written.into_iter().flatten().collect(),
        already_imported: checked.already_imported.len() + raced,
        duplicates: checked.duplicates,
    })
}

/// The CSV column a post field is read from (`overrides.x` is `override.x`).
fn csv_column(field: &str) -> String {
    match field.strip_prefix("overrides.") {
        Some(channel) => format!("override.{channel}"),
        None => field.to_owned(),
    }
}

fn jsonl_rows(text: &str, zone: Tz) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Row {
            line: i + 1,
            post: serde_json::from_str::<PostRequest>(line)
                .map_err(|e| json_field_error(&e))
                .and_then(|r| r.into_input_in(zone)),
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
    /// The A/B variant the whole post is (a test over time slots).
    Variant,
    /// Files in the media folder, `;`-separated; each `path` or `path|alt text`.
    Media,
    Var(String),
    Override(String),
}

fn csv_rows(text: &str, zone: Tz) -> Result<Vec<Row>, String> {
    if text.trim().is_empty() {
        return Err(
            "line 1: no header: give a header row (at least body,channels), then a post per line"
                .to_owned(),
        );
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("line 1: reading the CSV header: {}", csv_message(&e)))?;
    let columns = headers
        .iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("line 1: {e}"))?;
    for required in ["body", "channels"] {
        if !headers.iter().any(|h| h == required) {
            return Err(format!(
                "line 1: the header has no `{required}` column (it needs body and channels)"
            ));
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
            post: csv_post(&columns, &record).and_then(|r| r.into_input_in(zone)),
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
        "variant" => Column::Variant,
        "media" => Column::Media,
        _ => {
            if let Some(var) = name.strip_prefix("var.").filter(|v| !v.is_empty()) {
                Column::Var(var.to_owned())
            } else if let Some(ch) = name.strip_prefix("override.").filter(|c| !c.is_empty()) {
                Column::Override(ch.to_owned())
            } else {
                return Err(format!(
                    "unknown column `{name}` (known: body, channels, at, draft, thread, template, \
                     campaign, author, variant, media, var.NAME, override.CHANNEL)"
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
        track_links: None,
        variants: BTreeMap::new(),
        variant: None,
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
            Column::Variant => post.variant = given(cell),
            Column::Author => post.author = given(cell),
            Column::Media => {
                post.media = cell
                    .split(';')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        let (path, alt) = m.split_once('|').unwrap_or((m, ""));
                        crate::api::create_post::MediaRequest {
                            path: path.trim().to_owned(),
                            alt: alt.trim().to_owned(),
                        }
                    })
                    .collect();
            }
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

    fn csv_rows(text: &str) -> Result<Vec<Row>, String> {
        read_rows(text, Format::Csv, Tz::UTC)
    }

    #[test]
    fn a_csv_media_column_names_files_and_their_alt_text() {
        let text = "body,channels,media\n\
                    launch,a,cover.png|The new logo; chart.jpg\n\
                    plain,a,\n";
        let rows = csv_rows(text).unwrap();
        let first = rows[0].post.as_ref().unwrap();
        let names: Vec<_> = first
            .media
            .iter()
            .map(|m| (m.path.to_string_lossy().into_owned(), m.alt.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("cover.png".to_owned(), "The new logo".to_owned()),
                ("chart.jpg".to_owned(), String::new())
            ]
        );
        assert!(rows[1].post.as_ref().unwrap().media.is_empty());
    }

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
        let err = csv_rows("body,chanels\nx,y\n").err().unwrap();
        assert!(err.starts_with("line 1: unknown column `chanels`"), "{err}");
        let err = csv_rows("body\nx\n").err().unwrap();
        assert!(err.contains("no `channels` column"), "{err}");
        let err = csv_rows(" \n").err().unwrap();
        assert!(err.starts_with("line 1: no header"), "{err}");
        // A spreadsheet's byte order mark is not part of the first column's name.
        let rows = csv_rows("\u{feff}body,channels\nx,a\n").unwrap();
        assert_eq!(rows[0].post.as_ref().unwrap().body, "x");
    }

    #[test]
    fn jsonl_names_line_and_field() {
        let rows = read_rows(
            "{\"body\": \"a\", \"channels\": [\"x\"]}\n\n{\"body\": \"b\"}\n{\"body\": \"c\", \"channels\": [], \"at\": \"later\"}\n",
            Format::Jsonl,
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].post.is_ok());
        assert_eq!(rows[1].line, 3);
        let e = rows[1].post.as_ref().unwrap_err();
        assert_eq!(e.field, "channels");
        assert_eq!(rows[2].post.as_ref().unwrap_err().field, "at");
    }

    #[test]
    fn a_csv_row_and_its_json_line_are_the_same_post() {
        let csv =
            csv_rows("body,channels,at,var.n\nhi {{n}},b a,2027-01-01T10:00:00+01:00,1\n").unwrap();
        let jsonl = read_rows(
            r#"{"body": "hi {{n}}", "channels": ["a", "b"], "vars": {"n": "1"}, "at": "2027-01-01T09:00:00Z"}"#,
            Format::Jsonl,
            Tz::UTC,
        )
        .unwrap();
        let key = |rows: Vec<Row>| {
            clarion_scheduler::import_key(&rows.into_iter().next().unwrap().post.unwrap())
        };
        assert_eq!(key(csv), key(jsonl));
    }

    #[test]
    fn problems_name_the_csv_column() {
        assert_eq!(csv_column("overrides.sky"), "override.sky");
        assert_eq!(csv_column("channels"), "channels");
    }
}
