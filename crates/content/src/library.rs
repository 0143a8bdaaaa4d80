//! Templates and per-channel rendering.

use std::collections::BTreeMap;
use std::path::Path;

use clarion_core::Markup;
use handlebars::{Handlebars, RenderError, RenderErrorReason, TemplateError};
use serde_json::{Map, Value};

use crate::{ContentError, files, helpers, markdown};

/// What to render for one channel: a body (itself a handlebars template),
/// optionally wrapped in a named template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostSource {
    pub body: String,
    pub template: Option<String>,
    pub vars: Map<String, Value>,
    pub campaign: Option<String>,
    /// Split the rendered text into thread parts at lines that are exactly `---`.
    pub thread: bool,
    /// Attachments, sent with the first part.
    pub media: Vec<clarion_core::Media>,
    /// An answer to someone (an inbox reply): checked with
    /// `ChannelAdapter::validate_reply`.
    pub reply: bool,
}

/// The channel being rendered for, as templates see it under `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub markup: Markup,
}

/// The loaded templates and helpers.
///
/// Strict mode is on so a misspelled variable fails the render instead of
/// silently publishing a post with a hole in it. HTML escaping is off because
/// most channels are not HTML; the `Html` flavour escapes on its own.
#[derive(Debug)]
pub struct ContentLibrary {
    registry: Handlebars<'static>,
    /// Template name -> the file it came from, for error messages.
    sources: BTreeMap<String, String>,
}

impl Default for ContentLibrary {
    fn default() -> Self {
        Self::empty()
    }
}

impl ContentLibrary {
    /// A library without templates: bodies still render, with the helpers.
    pub fn empty() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry);
        Self {
            registry,
            sources: BTreeMap::new(),
        }
    }

    /// Registers every `*.hbs` file under `dir` (recursively) by its file
    /// stem: `launch.hbs` -> `launch`. A missing directory is an empty library.
    pub fn load(dir: &Path) -> Result<Self, ContentError> {
        let mut library = Self::empty();
        if !dir.exists() {
            return Ok(library);
        }
        let (paths, mut errors) = files::find(dir, "hbs");
        if !errors.is_empty() {
            return Err(errors.remove(0));
        }
        for path in paths {
            let file = files::display(&path);
            let name = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ContentError::new(format!("cannot read template: {e}")).in_file(&file)
            })?;
            library.add_template_from(&name, &text, &file)?;
        }
        Ok(library)
    }

    /// Registers one template from a string; `name` stands in for the file in errors.
    pub fn add_template(&mut self, name: &str, text: &str) -> Result<(), ContentError> {
        self.add_template_from(name, text, name)
    }

    fn add_template_from(
        &mut self,
        name: &str,
        text: &str,
        file: &str,
    ) -> Result<(), ContentError> {
        if let Some(first) = self.sources.get(name) {
            return Err(ContentError::new(format!(
                "template `{name}` is defined twice (also in {first})"
            ))
            .in_file(file));
        }
        self.registry
            .register_template_string(name, text)
            .map_err(|e| syntax_error(&e).in_file(file))?;
        self.sources.insert(name.to_owned(), file.to_owned());
        Ok(())
    }

    /// Names of the loaded templates, sorted.
    pub fn template_names(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }

    /// Renders `source` for `channel` and converts it to the channel's markup.
    ///
    /// An error in the body carries no file and a line within the body; an
    /// error inside a template names the template's file and its line.
    pub fn render(
        &self,
        source: &PostSource,
        channel: &ChannelInfo,
    ) -> Result<String, ContentError> {
        // A body without `{{` is plain text to handlebars: it renders to
        // itself, so skip parsing it (and building a context) per post.
        if source.template.is_none() && !source.body.contains("{{") {
            return Ok(flavour(&source.body, channel.markup).trim_end().to_owned());
        }
        let mut context = context_for(source, channel);
        let body = if source.body.contains("{{") {
            self.registry
                .render_template(&source.body, &context)
                .map_err(|e| self.render_error(&e))?
        } else {
            source.body.clone()
        };
        let text = match &source.template {
            None => body,
            Some(name) => {
                self.check_template(name)?;
                context.insert("body".to_owned(), Value::String(body));
                self.registry
                    .render(name, &context)
                    .map_err(|e| self.render_error(&e))?
            }
        };
        Ok(flavour(&text, channel.markup).trim_end().to_owned())
    }

    fn check_template(&self, name: &str) -> Result<(), ContentError> {
        if self.sources.contains_key(name) {
            return Ok(());
        }
        let known = if self.sources.is_empty() {
            "no templates are loaded".to_owned()
        } else {
            format!("known: {}", self.template_names().join(", "))
        };
        Err(ContentError::new(format!(
            "unknown template `{name}` ({known})"
        )))
    }

    /// Locates a render error: inside a named template (or a partial) it is
    /// that template's file; otherwise it is the inline body.
    fn render_error(&self, error: &RenderError) -> ContentError {
        if let RenderErrorReason::TemplateError(syntax) = error.reason() {
            return syntax_error(syntax);
        }
        let located = ContentError::new(render_message(error.reason())).at_line(error.line_no);
        match error
            .template_name
            .as_ref()
            .and_then(|name| self.sources.get(name))
        {
            Some(file) => located.in_file(file),
            None => located,
        }
    }
}

/// The variables a body and its template see. `channel`, `campaign` (and
/// `body`, for templates) are set by Clarion and win over same-named vars.
fn context_for(source: &PostSource, channel: &ChannelInfo) -> Map<String, Value> {
    let mut context = source.vars.clone();
    let channel_value = serde_json::json!({
        "name": channel.name,
        "kind": channel.kind,
        "markup": markup_name(channel.markup),
    });
    context.insert("channel".to_owned(), channel_value);
    // Null rather than absent, so `{{#if campaign}}` works in strict mode.
    let campaign = source.campaign.clone().map_or(Value::Null, Value::String);
    context.insert("campaign".to_owned(), campaign);
    context
}

fn markup_name(markup: Markup) -> &'static str {
    match markup {
        Markup::Plain => "plain",
        Markup::Markdown => "markdown",
        Markup::Html => "html",
    }
}

/// Posts are written in Markdown; other channels get it converted. A
/// `---` line separates thread parts (split after rendering), and in
/// Markdown it would be a heading underline or a rule: each part is
/// converted on its own and the separators are kept.
fn flavour(text: &str, markup: Markup) -> String {
    let convert = match markup {
        Markup::Plain => markdown::to_plain,
        Markup::Markdown => return text.to_owned(),
        Markup::Html => markdown::to_html,
    };
    crate::split_thread(text)
        .iter()
        .map(|part| convert(part))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn syntax_error(error: &TemplateError) -> ContentError {
    ContentError::new(format!("template syntax error: {}", error.reason()))
        .at_line(error.pos().map(|(line, _)| line))
}

/// The reasons a post author can act on, in their words; the rest as
/// handlebars puts it.
fn render_message(reason: &RenderErrorReason) -> String {
    match reason {
        RenderErrorReason::MissingVariable(Some(path)) => format!("missing variable `{path}`"),
        RenderErrorReason::MissingVariable(None) => "missing variable".to_owned(),
        RenderErrorReason::HelperNotFound(name) => format!("unknown helper `{name}`"),
        RenderErrorReason::PartialNotFound(name) => format!("unknown partial `{name}`"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(markup: Markup) -> ChannelInfo<'static> {
        ChannelInfo {
            name: "team",
            kind: "webhook",
            markup,
        }
    }

    fn source(body: &str, vars: Value) -> PostSource {
        PostSource {
            body: body.to_owned(),
            vars: vars.as_object().cloned().unwrap_or_default(),
            ..PostSource::default()
        }
    }

    fn render(body: &str, vars: Value) -> Result<String, ContentError> {
        ContentLibrary::empty().render(&source(body, vars), &channel(Markup::Markdown))
    }

    #[test]
    fn a_body_without_mustaches_renders_as_handlebars_would() {
        let library = ContentLibrary::empty();
        for body in [
            "plain text",
            "a \\ backslash",
            "{ braces } and }}",
            "a\r\nb\n\n",
            "",
        ] {
            let mut context = Map::new();
            context.insert("x".to_owned(), Value::Null);
            let slow = library.registry.render_template(body, &context).unwrap();
            let fast = library
                .render(
                    &source(body, serde_json::json!({})),
                    &channel(Markup::Markdown),
                )
                .unwrap();
            assert_eq!(fast, slow.trim_end(), "{body:?}");
        }
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it_and_its_line() {
        let err = render("Hello\n\n{{product}} is out", serde_json::json!({})).unwrap_err();
        assert_eq!(err.message, "missing variable `product`");
        assert_eq!(err.line, Some(3));
        assert_eq!(err.file, None);

        let err = render("{{channel.nmae}}", serde_json::json!({})).unwrap_err();
        assert_eq!(err.message, "missing variable `channel.nmae`");
    }

    #[test]
    fn a_missing_helper_parameter_names_the_variable() {
        let err = render("x\n{{truncate tagline 5}}", serde_json::json!({})).unwrap_err();
        assert_eq!(err.to_string(), "line 2: missing variable `tagline`");
    }

    #[test]
    fn the_context_has_vars_channel_and_campaign() {
        let mut src = source(
            "{{product}} on {{channel.name}} ({{channel.kind}}, {{channel.markup}}) for {{campaign}}",
            serde_json::json!({ "product": "Clarion" }),
        );
        src.campaign = Some("winter".to_owned());
        let text = ContentLibrary::empty()
            .render(&src, &channel(Markup::Markdown))
            .unwrap();
        assert_eq!(text, "Clarion on team (webhook, markdown) for winter");
    }

    #[test]
    fn a_post_without_campaign_can_test_for_it() {
        let text = render(
            "a{{#if campaign}} {{campaign}}{{/if}}",
            serde_json::json!({}),
        )
        .unwrap();
        assert_eq!(text, "a");
    }

    #[test]
    fn truncate_cuts_graphemes_with_an_ellipsis() {
        let text = render(
            "{{truncate title 6}}|{{truncate title 50}}",
            serde_json::json!({ "title": "héllo wörld" }),
        )
        .unwrap();
        assert_eq!(text, "héllo…|héllo wörld");
    }

    #[test]
    fn hashtags_joins_cleaned_tags() {
        let text = render(
            "{{hashtags tags}}",
            serde_json::json!({ "tags": ["launch", "rust lang", "#oss", "##twice", " ", 2026] }),
        )
        .unwrap();
        assert_eq!(text, "#launch #rustlang #oss #twice #2026");
    }

    #[test]
    fn plain_helper_strips_markdown() {
        let text = render(
            "{{plain intro}}",
            serde_json::json!({ "intro": "**New**: [docs](https://x.io)" }),
        )
        .unwrap();
        assert_eq!(text, "New: docs (https://x.io)");
    }

    #[test]
    fn eq_selects_per_markup() {
        let body = r#"{{#if (eq channel.markup "markdown")}}**md**{{else}}other{{/if}}"#;
        let library = ContentLibrary::empty();
        let src = source(body, serde_json::json!({}));
        assert_eq!(
            library.render(&src, &channel(Markup::Markdown)).unwrap(),
            "**md**"
        );
        assert_eq!(
            library.render(&src, &channel(Markup::Html)).unwrap(),
            "other"
        );
    }

    #[test]
    fn output_is_not_html_escaped_and_trailing_space_is_trimmed() {
        let text = render("{{q}} \n\n", serde_json::json!({ "q": "a < b & \"c\"" })).unwrap();
        assert_eq!(text, "a < b & \"c\"");
    }

    #[test]
    fn thread_separators_survive_the_conversion() {
        let src = source(
            "Part **one**\n---\nPart _two_\n\n---\n\nthree",
            serde_json::json!({}),
        );
        let library = ContentLibrary::empty();
        let plain = library.render(&src, &channel(Markup::Plain)).unwrap();
        assert_eq!(plain, "Part one\n---\nPart two\n---\nthree");
        assert_eq!(
            crate::split_thread(&plain),
            ["Part one", "Part two", "three"]
        );
        assert_eq!(
            library.render(&src, &channel(Markup::Html)).unwrap(),
            "Part <b>one</b>\n---\nPart <i>two</i>\n---\nthree"
        );
    }

    #[test]
    fn plain_and_html_channels_get_converted_markup() {
        let src = source(
            "# News\n**{{name}}** is *out* & [here](https://x.io)",
            serde_json::json!({ "name": "<Clarion>" }),
        );
        let library = ContentLibrary::empty();
        assert_eq!(
            library.render(&src, &channel(Markup::Plain)).unwrap(),
            "News\n<Clarion> is out & here (https://x.io)"
        );
        assert_eq!(
            library.render(&src, &channel(Markup::Html)).unwrap(),
            "<b>News</b>\n<b>&lt;Clarion&gt;</b> is <i>out</i> &amp; <a href=\"https://x.io\">here</a>"
        );
        assert_eq!(
            library.render(&src, &channel(Markup::Markdown)).unwrap(),
            "# News\n**<Clarion>** is *out* & [here](https://x.io)"
        );
    }

    #[test]
    fn a_template_wraps_the_rendered_body() {
        let mut library = ContentLibrary::empty();
        library
            .add_template("launch", "🚀 {{body}}\n\n{{hashtags tags}}\n")
            .unwrap();
        let mut src = source(
            "{{product}} 1.0",
            serde_json::json!({ "product": "Clarion", "tags": ["oss"] }),
        );
        src.template = Some("launch".to_owned());
        let text = library.render(&src, &channel(Markup::Plain)).unwrap();
        assert_eq!(text, "🚀 Clarion 1.0\n\n#oss");
    }

    #[test]
    fn an_unknown_template_lists_the_known_ones() {
        let mut library = ContentLibrary::empty();
        library.add_template("launch", "{{body}}").unwrap();
        library.add_template("digest", "{{body}}").unwrap();
        let mut src = source("hi", serde_json::json!({}));
        src.template = Some("lunch".to_owned());
        let err = library.render(&src, &channel(Markup::Plain)).unwrap_err();
        assert_eq!(
            err.message,
            "unknown template `lunch` (known: digest, launch)"
        );

        let err = ContentLibrary::empty()
            .render(&src, &channel(Markup::Plain))
            .unwrap_err();
        assert_eq!(
            err.message,
            "unknown template `lunch` (no templates are loaded)"
        );
    }

    #[test]
    fn an_error_inside_a_template_names_its_file_and_line() {
        let dir = temp_dir("template-error");
        std::fs::write(dir.join("launch.hbs"), "{{body}}\n{{missing}}\n").unwrap();
        let library = ContentLibrary::load(&dir).unwrap();
        let mut src = source("hi", serde_json::json!({}));
        src.template = Some("launch".to_owned());
        let err = library.render(&src, &channel(Markup::Plain)).unwrap_err();
        let file = dir.join("launch.hbs").display().to_string();
        assert_eq!(
            err.to_string(),
            format!("{file}:2: missing variable `missing`")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_registers_hbs_files_by_stem_recursively() {
        let dir = temp_dir("load");
        std::fs::create_dir_all(dir.join("social")).unwrap();
        std::fs::write(dir.join("launch.hbs"), "{{body}}").unwrap();
        std::fs::write(dir.join("social/digest.hbs"), "{{body}}").unwrap();
        std::fs::write(dir.join("notes.txt"), "{{").unwrap();
        let library = ContentLibrary::load(&dir).unwrap();
        assert_eq!(library.template_names(), ["digest", "launch"]);
        std::fs::remove_dir_all(dir).unwrap();

        let missing = ContentLibrary::load(Path::new("/surely/not/a/clarion/dir")).unwrap();
        assert!(missing.template_names().is_empty());
    }

    #[test]
    fn a_template_syntax_error_names_the_file_and_line() {
        let dir = temp_dir("syntax");
        std::fs::write(
            dir.join("broken.hbs"),
            "fine\nstill fine\n{{#if x}}closed wrong{{/each}}\n",
        )
        .unwrap();
        let err = ContentLibrary::load(&dir).unwrap_err();
        assert_eq!(err.file, Some(dir.join("broken.hbs").display().to_string()));
        assert_eq!(err.line, Some(3));
        assert_eq!(
            err.message,
            "template syntax error: helper \"if\" was opened, but \"each\" is closing"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_body_syntax_error_has_its_line() {
        let err = render(
            "ok\n{{#if x}}a{{/each}}\nmore",
            serde_json::json!({ "items": [] }),
        )
        .unwrap_err();
        assert!(err.message.starts_with("template syntax error"), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("clarion-content-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
