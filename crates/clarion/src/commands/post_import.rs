//! `clarion post import FILE`: many posts from a CSV or JSON Lines file, all
//! or none, read and checked by `clarion_server::import` (what
//! `POST /api/v1/posts:import` uses too). Importing a file again creates
//! nothing new: a row imported before is skipped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clarion_server::import::{self, CheckError};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::App;

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
    /// Check every post and say how many would be created, but store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

const IMPORT_HELP: &str = "\
Every post is parsed, rendered and checked against its channels first; if
any line is refused, nothing is stored and each problem is printed as
FILE:LINE: FIELD: MESSAGE. Otherwise all posts are stored in one transaction
and queued.

Importing the same file again is safe: each row is known by a fingerprint of
its content, stored with its post, so a row imported before is skipped
(\"N created, M already imported\") and a row repeated in the file is stored
once. Edit a row and it is a new post.

CSV: a header row, then one post per row. Columns (only body and channels
are required; empty cells mean \"not given\"):
  body         the post (Markdown, may use {{variables}})
  channels     channel names separated by spaces, commas or semicolons
  at           RFC 3339 time, e.g. 2026-12-01T09:00:00Z (empty: now)
  draft        true/false: store without a time
  thread       true/false: split into parts at lines that are exactly ---
  template     a template from content/templates
  campaign, author
  media        files in the media folder, separated by ;  (name|alt text)
  var.NAME     a template variable (one column per variable)
  override.CH  the body for channel CH instead of `body`

  body,channels,at,campaign,var.product
  \"{{product}} 2.0 is out\",mastodon bluesky,2026-12-01T09:00:00Z,launch,Clarion

JSON Lines: one JSON object per line, exactly what POST /api/v1/posts takes
(body, channels, at, draft, template, vars, campaign, author, overrides,
thread, media); blank lines are skipped.

  {\"body\": \"Hello\", \"channels\": [\"mastodon\"], \"at\": \"2026-12-01T09:00:00Z\"}

The same file can be sent to the API: POST /api/v1/posts:import with
Content-Type: text/csv or application/x-ndjson.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl From<Format> for import::Format {
    fn from(format: Format) -> Self {
        match format {
            Format::Csv => Self::Csv,
            Format::Jsonl => Self::Jsonl,
        }
    }
}

pub async fn run(args: ImportArgs, app: &App) -> anyhow::Result<()> {
    let started = Instant::now();
    let format: import::Format = match args.format {
        Some(f) => f,
        None => format_of(&args.file)?,
    }
    .into();
    let name = args.file.display().to_string();
    let text = read(&args.file)?;
    let rows = import::read_rows(&text, format, crate::time::zone())
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if rows.is_empty() {
        bail!("{name}: no posts in the file");
    }

    let bar = ProgressBar::new(rows.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("checking {bar:40} {pos}/{len} posts {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let checked = import::check(&app.service, rows, format, |n| bar.inc(n as u64)).await;
    bar.finish_and_clear();
    let checked = match checked {
        Ok(checked) => checked,
        Err(CheckError::Refused(refused)) => {
            for p in refused.problems.iter().take(MAX_SHOWN) {
                eprintln!("{name}:{}: {}: {}", p.line, p.field, p.message);
            }
            if refused.problems.len() > MAX_SHOWN {
                eprintln!("... and {} more", refused.problems.len() - MAX_SHOWN);
            }
            bail!("{refused}");
        }
        Err(CheckError::Service(e)) => return Err(super::service_error(e)),
        Err(e @ CheckError::Internal(_)) => return Err(e.into()),
    };
    for d in &checked.duplicates {
        eprintln!(
            "{name}:{}: the same post as line {}; imported once",
            d.line, d.same_as
        );
    }
    let duplicates = match checked.duplicates.len() {
        0 => String::new(),
        1 => ", 1 duplicate line".to_owned(),
        n => format!(", {n} duplicate lines"),
    };
    if args.dry_run {
        println!(
            "{} posts read: {} would be created, {} already imported{duplicates}; nothing was stored (--dry-run)",
            checked.rows,
            checked.valid.len(),
            checked.already_imported.len(),
        );
        return Ok(());
    }

    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!(
        "storing {} posts in one transaction",
        checked.valid.len()
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let imported = import::store(&app.service, checked)
        .await
        .map_err(super::service_error)?;
    spinner.finish_and_clear();

    let created = &imported.created;
    let summary = format!(
        "{} created, {} already imported{duplicates}",
        created.len(),
        imported.already_imported
    );
    if created.is_empty() {
        println!("{summary}: nothing new to import");
        return Ok(());
    }
    let targets: usize = created.iter().map(|d| d.targets.len()).sum();
    let drafts = created
        .iter()
        .filter(|d| d.post.scheduled_at_ms.is_none())
        .count();
    let first = created.first().map_or(0, |d| d.post.id);
    let last = created.last().map_or(0, |d| d.post.id);
    println!(
        "imported {} posts ({targets} targets, {drafts} drafts) as posts {first}..{last} in {:.1}s: {summary}",
        created.len(),
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
