//! "Content as code": post files with TOML front matter and a Markdown body.
//!
//! ```text
//! +++
//! id = "k3v9x2m7q4tz"
//! at = 2026-12-01T09:00:00Z
//! channels = ["team-webhook", "dry-run"]
//! template = "launch"
//! [vars]
//! product = "Clarion"
//! [overrides.team-webhook]
//! body = "A different body for this channel"
//! +++
//! Body text with {{product}}.
//! ```
//!
//! `id` is the post's identity: a post is found by it, so renaming or moving
//! the file updates the same post (`content sync` writes one into a file
//! that has none). Every key after `[vars]` is a template variable, so a
//! variable may not be named like a front-matter key: that is almost always
//! a setting written below `[vars]` by mistake.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use clarion_core::time::Tz;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use crate::{ContentError, PostSource, files};

const DELIMITER: &str = "+++";

/// One parsed post file.
#[derive(Debug, Clone, PartialEq)]
pub struct PostFile {
    /// The path as given, for messages.
    pub path: String,
    /// Path relative to the posts directory with `/` separators
    /// (`2026/launch.md`): where the post is kept now, not who it is.
    pub relative_path: String,
    /// `id = "..."`: the post's identity, which survives renames. None until
    /// `content sync` writes one into the file.
    pub id: Option<String>,
    /// 1-based line of the `id =` key, or 1 when it is missing.
    pub id_line: usize,
    pub at: DateTime<Utc>,
    /// 1-based line of the `at =` key (1 when it is missing).
    pub at_line: usize,
    pub channels: Vec<String>,
    pub template: Option<String>,
    pub campaign: Option<String>,
    pub author: Option<String>,
    pub vars: Map<String, Value>,
    /// Channel name -> body used instead of the file's body for that channel.
    pub overrides: BTreeMap<String, String>,
    pub body: String,
    /// 1-based line where the body starts.
    pub body_line: usize,
    /// 1-based line of the `channels =` key, or 1 when it is missing.
    pub channels_line: usize,
    /// `thread = true`: the body is split into parts at `---` lines.
    pub thread: bool,
    /// `media = [{ path = "img.png", alt = "..." }]`, paths relative to the file.
    pub media: Vec<clarion_core::Media>,
}

impl PostFile {
    /// What to render for `channel`: its override body when there is one.
    pub fn source(&self, channel: &str) -> PostSource {
        let body = self.overrides.get(channel).unwrap_or(&self.body);
        PostSource {
            body: body.clone(),
            template: self.template.clone(),
            vars: self.vars.clone(),
            campaign: self.campaign.clone(),
            thread: self.thread,
            media: self.media.clone(),
            reply: false,
        }
    }
}

/// The front matter as written. Spans locate errors found after parsing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: Option<Spanned<String>>,
    at: Option<Spanned<toml::Value>>,
    channels: Option<Spanned<Vec<String>>>,
    template: Option<String>,
    campaign: Option<String>,
    author: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    overrides: BTreeMap<String, Override>,
    #[serde(default)]
    thread: bool,
    #[serde(default)]
    media: Vec<Spanned<MediaSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaSpec {
    path: String,
    #[serde(default)]
    alt: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    body: Spanned<String>,
}

/// A post file cut at its delimiters.
struct Sections<'a> {
    front: &'a str,
    body: &'a str,
    body_line: usize,
}

/// The front matter starts on line 2, right after the opening `+++`.
const FRONT_FIRST_LINE: usize = 2;

/// The top-level front-matter keys. Under `[vars]` these names are refused:
/// `thread = true` written below `[vars]` would be a template variable, and
/// the post would silently not be a thread.
pub const FRONT_MATTER_KEYS: [&str; 10] = [
    "id",
    "at",
    "channels",
    "template",
    "campaign",
    "author",
    "vars",
    "overrides",
    "thread",
    "media",
];

/// Parses one post file, reading an `at` without offset in UTC. Errors
/// name `path` and the line.
pub fn parse_post_file(path: &str, source_key: &str, text: &str) -> Result<PostFile, ContentError> {
    parse_post_file_in(path, source_key, text, Tz::UTC)
}

/// Parses one post file, reading an `at` without offset in `zone`.
pub fn parse_post_file_in(
    path: &str,
    source_key: &str,
    text: &str,
    zone: Tz,
) -> Result<PostFile, ContentError> {
    let located =
        |(line, message): (usize, String)| ContentError::new(message).in_file(path).at_line(line);
    let sections = split(text).map_err(located)?;
    let front: FrontMatter = toml::from_str(sections.front).map_err(|e| {
        let line = e.span().map_or(1, |span| {
            FRONT_FIRST_LINE - 1 + line_of(sections.front, span.start)
        });
        located((line, format!("front matter: {}", e.message().trim_end())))
    })?;
    let line_at = |offset: usize| FRONT_FIRST_LINE - 1 + line_of(sections.front, offset);

    let (id, id_line) = check_id(front.id, &line_at).map_err(located)?;
    let at_line = front.at.as_ref().map_or(1, |at| line_at(at.span().start));
    let at = parse_at(front.at.as_ref(), &line_at, zone).map_err(located)?;
    check_vars(&front.vars, &line_at).map_err(located)?;
    let (channels, channels_line) = check_channels(front.channels, &line_at).map_err(located)?;
    let overrides = check_overrides(front.overrides, &channels, &line_at).map_err(located)?;
    let base = Path::new(path).parent().unwrap_or(Path::new("."));
    let media = front
        .media
        .into_iter()
        .map(|spec| {
            let line = line_at(spec.span().start);
            let spec = spec.into_inner();
            crate::media::describe(&base.join(&spec.path), spec.alt).map_err(|m| (line, m))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(located)?;
    Ok(PostFile {
        path: path.to_owned(),
        relative_path: source_key.to_owned(),
        id,
        id_line,
        at,
        at_line,
        channels,
        template: front.template,
        campaign: front.campaign,
        author: front.author,
        vars: front
            .vars
            .into_iter()
            .map(|(k, v)| (k, toml_to_json(v.into_inner())))
            .collect(),
        overrides,
        body: sections.body.to_owned(),
        body_line: sections.body_line,
        channels_line,
        thread: front.thread,
        media,
    })
}

/// Every `.md` file under `dir`, recursively, sorted by path. Files that
/// cannot be read or parsed become errors; the others are still returned so
/// one bad file does not hide the rest. A missing directory has no posts.
/// An `at` without offset is read in UTC.
pub fn load_post_dir(dir: &Path) -> (Vec<PostFile>, Vec<ContentError>) {
    load_post_dir_in(dir, Tz::UTC)
}

/// [`load_post_dir`], reading an `at` without offset in `zone`.
pub fn load_post_dir_in(dir: &Path, zone: Tz) -> (Vec<PostFile>, Vec<ContentError>) {
    if !dir.exists() {
        return (Vec::new(), Vec::new());
    }
    let (paths, mut errors) = files::find(dir, "md");
    let mut posts = Vec::new();
    for path in paths {
        let shown = files::display(&path);
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| ContentError::new(format!("cannot read post file: {e}")).in_file(&shown))
            .and_then(|text| parse_post_file_in(&shown, &source_key(dir, &path), &text, zone));
        match parsed {
            Ok(post) => posts.push(post),
            Err(e) => errors.push(e),
        }
    }
    (posts, errors)
}

/// `path` relative to `dir`, `/`-separated on every OS so keys stay stable.
fn source_key(dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Cuts the file at its `+++` lines. Leading blank lines of the body are
/// skipped (and counted) so `body_line` points at the first real line.
fn split(text: &str) -> Result<Sections<'_>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some(DELIMITER) {
        return Err((
            1,
            "a post file must start with a `+++` line opening its TOML front matter".to_owned(),
        ));
    }
    let front_start = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut offset = front_start;
    let mut line_no = 1;
    for line in lines {
        line_no += 1;
        if line.trim_end() == DELIMITER {
            let (body, skipped) = skip_blank_lines(&text[offset + line.len()..]);
            return Ok(Sections {
                front: &text[front_start..offset],
                body: body.trim_end(),
                body_line: line_no + 1 + skipped,
            });
        }
        offset += line.len();
    }
    Err((
        1,
        "the front matter opened here is never closed by a `+++` line".to_owned(),
    ))
}

fn skip_blank_lines(mut text: &str) -> (&str, usize) {
    let mut skipped = 0;
    while let Some(end) = text.find('\n') {
        if !text[..end].trim().is_empty() {
            break;
        }
        text = &text[end + 1..];
        skipped += 1;
    }
    (text, skipped)
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// `at` as a TOML date-time or an RFC 3339 string. Without an offset it is
/// a wall-clock time in `zone` (the `timezone` setting); a time the clocks
/// skip for daylight saving is refused, a repeated one is the earlier.
fn parse_at(
    at: Option<&Spanned<toml::Value>>,
    line_at: &impl Fn(usize) -> usize,
    zone: Tz,
) -> Result<DateTime<Utc>, (usize, String)> {
    let Some(at) = at else {
        return Err((
            1,
            "front matter has no `at` (when to publish, e.g. at = 2026-12-01T09:00:00Z)".to_owned(),
        ));
    };
    let line = line_at(at.span().start);
    let text = match at.get_ref() {
        toml::Value::Datetime(datetime) => datetime.to_string(),
        toml::Value::String(text) => text.clone(),
        _ => {
            return Err((
                line,
                "`at` must be a date-time such as 2026-12-01T09:00:00Z".to_owned(),
            ));
        }
    };
    clarion_core::time::parse_time(&text, zone).map_err(|e| (line, format!("`at`: {e}")))
}

/// `id` as written: letters, digits, `-` and `_`, at most 64 of them.
fn check_id(
    id: Option<Spanned<String>>,
    line_at: &impl Fn(usize) -> usize,
) -> Result<(Option<String>, usize), (usize, String)> {
    let Some(id) = id else {
        return Ok((None, 1));
    };
    let line = line_at(id.span().start);
    let id = id.into_inner();
    if !crate::ids::is_valid_id(&id) {
        return Err((
            line,
            format!(
                "`id` = {id:?} must be 1 to 64 letters, digits, `-` or `_` \
                 (or leave it out: `content sync` writes one)"
            ),
        ));
    }
    Ok((Some(id), line))
}

/// Refuses a variable named like a front-matter key: every key after
/// `[vars]` belongs to `[vars]`, so `thread = true` there would not make a
/// thread but a variable nobody uses.
fn check_vars(
    vars: &BTreeMap<String, Spanned<toml::Value>>,
    line_at: &impl Fn(usize) -> usize,
) -> Result<(), (usize, String)> {
    // The first one in the file, not in alphabetical order.
    match vars
        .iter()
        .filter(|(name, _)| FRONT_MATTER_KEYS.contains(&name.as_str()))
        .min_by_key(|(_, value)| value.span().start)
    {
        Some((name, value)) => Err((
            line_at(value.span().start),
            format!(
                "`{name}` is under `[vars]`, so it would be a template variable, not the \
                 post's `{name}`: move it above `[vars]` (every key after a `[table]` line \
                 belongs to that table), or rename the variable"
            ),
        )),
        None => Ok(()),
    }
}

fn check_channels(
    channels: Option<Spanned<Vec<String>>>,
    line_at: &impl Fn(usize) -> usize,
) -> Result<(Vec<String>, usize), (usize, String)> {
    let Some(channels) = channels else {
        return Err((
            1,
            "front matter has no `channels` (the channel names to publish to)".to_owned(),
        ));
    };
    let line = line_at(channels.span().start);
    let channels = channels.into_inner();
    if channels.is_empty() {
        return Err((
            line,
            "`channels` is empty; name at least one channel".to_owned(),
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = channels.iter().find(|name| !seen.insert(name.as_str())) {
        return Err((
            line,
            format!("channel `{twice}` is listed twice in `channels`"),
        ));
    }
    Ok((channels, line))
}

fn check_overrides(
    overrides: BTreeMap<String, Override>,
    channels: &[String],
    line_at: &impl Fn(usize) -> usize,
) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut bodies = BTreeMap::new();
    for (channel, entry) in overrides {
        if !channels.contains(&channel) {
            return Err((
                line_at(entry.body.span().start),
                format!("override for channel `{channel}`, which is not in `channels`"),
            ));
        }
        bodies.insert(channel, entry.body.into_inner());
    }
    Ok(bodies)
}

/// TOML values as template variables. Date-times become their TOML text
/// (serde would turn them into an internal wrapper object).
fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(text) => Value::String(text),
        toml::Value::Integer(number) => Value::from(number),
        toml::Value::Float(number) => {
            serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(flag) => Value::Bool(flag),
        toml::Value::Datetime(datetime) => Value::String(datetime.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAUNCH: &str = r#"+++
at = 2026-12-01T09:00:00Z
channels = ["team-webhook", "dry-run"]
template = "launch"
campaign = "winter-sale"
author = "ana"
[vars]
product = "Clarion"
version = 1
tags = ["oss", "rust"]
[overrides.team-webhook]
body = "Team: {{product}}"
+++

Body text with {{product}}.

"#;

    fn parse(text: &str) -> Result<PostFile, ContentError> {
        parse_post_file("content/posts/2026/launch.md", "2026/launch.md", text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_post_file_parses() {
        let post = parse(LAUNCH).unwrap();
        assert_eq!(post.path, "content/posts/2026/launch.md");
        assert_eq!(post.relative_path, "2026/launch.md");
        assert_eq!((post.id.as_deref(), post.id_line), (None, 1));
        assert_eq!(post.at_line, 2);
        assert_eq!(post.at.to_rfc3339(), "2026-12-01T09:00:00+00:00");
        assert_eq!(post.channels, ["team-webhook", "dry-run"]);
        assert_eq!(post.template.as_deref(), Some("launch"));
        assert_eq!(post.campaign.as_deref(), Some("winter-sale"));
        assert_eq!(post.author.as_deref(), Some("ana"));
        assert_eq!(
            Value::Object(post.vars.clone()),
            serde_json::json!({ "product": "Clarion", "version": 1, "tags": ["oss", "rust"] })
        );
        assert_eq!(post.overrides["team-webhook"], "Team: {{product}}");
        assert_eq!(post.body, "Body text with {{product}}.");
        assert_eq!(post.body_line, 15, "the blank line after `+++` is skipped");
        assert_eq!(post.channels_line, 3);
    }

    #[test]
    fn the_override_body_replaces_the_body_for_its_channel_only() {
        let post = parse(LAUNCH).unwrap();
        let team = post.source("team-webhook");
        assert_eq!(team.body, "Team: {{product}}");
        assert_eq!(team.template.as_deref(), Some("launch"));
        assert_eq!(team.campaign.as_deref(), Some("winter-sale"));
        assert_eq!(team.vars["product"], "Clarion");
        assert_eq!(post.source("dry-run").body, "Body text with {{product}}.");
    }

    #[test]
    fn at_may_be_an_rfc3339_string_in_any_offset() {
        let post = parse("+++\nat = \"2026-12-01T10:30:00+02:00\"\nchannels = [\"x\"]\n+++\nhi\n")
            .unwrap();
        assert_eq!(post.at.to_rfc3339(), "2026-12-01T08:30:00+00:00");
        assert_eq!((post.body.as_str(), post.body_line), ("hi", 5));
        assert!(post.vars.is_empty() && post.overrides.is_empty() && post.template.is_none());
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let post = parse("+++\r\nat = 2026-12-01T09:00:00Z\r\nchannels = [\"x\"]\r\n+++\r\nhi\r\n")
            .unwrap();
        assert_eq!((post.body.as_str(), post.body_line), ("hi", 5));
    }

    #[test]
    fn a_file_must_open_and_close_its_front_matter() {
        assert_eq!(
            error("at = 2026-12-01T09:00:00Z\n"),
            "content/posts/2026/launch.md:1: a post file must start with a `+++` line opening its TOML front matter"
        );
        assert_eq!(
            error("+++\nat = 2026-12-01T09:00:00Z\nbody\n"),
            "content/posts/2026/launch.md:1: the front matter opened here is never closed by a `+++` line"
        );
    }

    #[test]
    fn toml_errors_carry_their_line() {
        let err = parse("+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"\ncampaign = 1\n+++\n")
            .unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.starts_with("front matter: "), "{err}");

        let err = parse(
            "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\nschedule = \"daily\"\n+++\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.contains("unknown field `schedule`"), "{err}");
    }

    #[test]
    fn at_is_required_and_must_be_a_time() {
        assert_eq!(
            error("+++\nchannels = [\"x\"]\n+++\n"),
            "content/posts/2026/launch.md:1: front matter has no `at` (when to publish, e.g. at = 2026-12-01T09:00:00Z)"
        );
        let err = parse("+++\nat = \"next tuesday\"\nchannels = [\"x\"]\n+++\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.message
                .starts_with("`at`: `next tuesday` is not an RFC 3339 time"),
            "{err}"
        );
    }

    #[test]
    fn at_without_offset_is_read_in_the_configured_zone() {
        let paris = clarion_core::time::parse_zone("Europe/Paris").unwrap();
        let in_zone = |text: &str| parse_post_file_in("p.md", "p.md", text, paris);
        // A TOML local date-time and a string, both read in Europe/Paris.
        let post = in_zone("+++\nchannels = [\"x\"]\nat = 2027-03-01T09:00:00\n+++\n").unwrap();
        assert_eq!(post.at.to_rfc3339(), "2027-03-01T08:00:00+00:00");
        let post = in_zone("+++\nchannels = [\"x\"]\nat = \"2027-07-01 09:00\"\n+++\n").unwrap();
        assert_eq!(post.at.to_rfc3339(), "2027-07-01T07:00:00+00:00");
        // An explicit offset wins; without a zone configured, UTC.
        let post = in_zone("+++\nchannels = [\"x\"]\nat = 2027-03-01T09:00:00Z\n+++\n").unwrap();
        assert_eq!(post.at.to_rfc3339(), "2027-03-01T09:00:00+00:00");
        let post = parse("+++\nchannels = [\"x\"]\nat = 2027-03-01T09:00:00\n+++\n").unwrap();
        assert_eq!(post.at.to_rfc3339(), "2027-03-01T09:00:00+00:00");
        // The hour the clocks skip is refused on its line, naming zone and time.
        let err =
            in_zone("+++\nchannels = [\"x\"]\n\nat = 2027-03-28T02:30:00\n+++\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.md:4: `at`: 2027-03-28T02:30:00 does not exist in Europe/Paris: the clocks \
             skip it for daylight saving time; pick another time or give an offset"
        );
    }

    #[test]
    fn channels_must_be_given_and_not_empty() {
        assert_eq!(
            error("+++\nat = 2026-12-01T09:00:00Z\n+++\n"),
            "content/posts/2026/launch.md:1: front matter has no `channels` (the channel names to publish to)"
        );
        assert_eq!(
            error("+++\nat = 2026-12-01T09:00:00Z\n# who\nchannels = []\n+++\n"),
            "content/posts/2026/launch.md:4: `channels` is empty; name at least one channel"
        );
        assert_eq!(
            error("+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"a\", \"a\"]\n+++\n"),
            "content/posts/2026/launch.md:3: channel `a` is listed twice in `channels`"
        );
    }

    #[test]
    fn an_override_must_be_for_a_listed_channel() {
        let text = "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"a\"]\n[overrides.b]\nbody = \"x\"\n+++\n";
        assert_eq!(
            error(text),
            "content/posts/2026/launch.md:5: override for channel `b`, which is not in `channels`"
        );
    }

    #[test]
    fn a_setting_written_under_vars_is_refused_at_its_line() {
        // The README's old example: `thread` and `media` after `[vars]` were
        // template variables, so the thread was not split and the missing
        // image was not reported.
        let text = "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\n[vars]\ntitle = \"Hi\"\n\
                    thread = true\nmedia = [{ path = \"gone.png\", alt = \"\" }]\n+++\nhi\n";
        assert_eq!(
            error(text),
            "content/posts/2026/launch.md:6: `thread` is under `[vars]`, so it would be a \
             template variable, not the post's `thread`: move it above `[vars]` (every key \
             after a `[table]` line belongs to that table), or rename the variable"
        );
        let text =
            "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\n[vars]\nthread = true\n+++\n";
        assert_eq!(parse(text).unwrap_err().line, Some(5));
        // Above `[vars]` they are settings: the missing image is reported.
        let text = "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\nthread = true\n\
                    media = [{ path = \"gone.png\", alt = \"\" }]\n[vars]\ntitle = \"Hi\"\n+++\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, Some(5), "{err}");
        assert!(err.message.starts_with("media "), "{err}");
    }

    #[test]
    fn front_matter_keys_are_exactly_the_accepted_ones() {
        let err = error("+++\nbogus = 1\n+++\n");
        let expected = FRONT_MATTER_KEYS
            .iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            err.contains(&format!("expected one of {expected}")),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_key_and_line() {
        for (text, key, line) in [
            (
                "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\n\ntheme = \"dark\"\n+++\n",
                "theme",
                5,
            ),
            (
                "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\n[overrides.x]\nbody = \"b\"\ntitle = \"t\"\n+++\n",
                "title",
                6,
            ),
            (
                "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\nmedia = [{ path = \"a.png\", caption = \"c\" }]\n+++\n",
                "caption",
                4,
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, Some(line), "{err}");
            assert!(
                err.message.contains(&format!("unknown field `{key}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn load_post_dir_reads_md_files_recursively_with_stable_keys() {
        let dir =
            std::env::temp_dir().join(format!("clarion-content-posts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("2026")).unwrap();
        let ok = "+++\nat = 2026-12-01T09:00:00Z\nchannels = [\"x\"]\n+++\nhi\n";
        std::fs::write(dir.join("2026/launch.md"), ok).unwrap();
        std::fs::write(dir.join("a.md"), ok).unwrap();
        std::fs::write(dir.join("broken.md"), "no front matter").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();

        let (posts, errors) = load_post_dir(&dir);
        let keys: Vec<&str> = posts.iter().map(|p| p.relative_path.as_str()).collect();
        assert_eq!(keys, ["2026/launch.md", "a.md"]);
        assert_eq!(
            posts[0].path,
            dir.join("2026/launch.md").display().to_string()
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].file,
            Some(dir.join("broken.md").display().to_string())
        );
        assert_eq!(errors[0].line, Some(1));
        std::fs::remove_dir_all(&dir).unwrap();

        let (posts, errors) = load_post_dir(&dir);
        assert!(posts.is_empty() && errors.is_empty());
    }
}
