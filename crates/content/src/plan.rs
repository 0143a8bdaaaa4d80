//! Rendering a post for each of its channels and checking the result against
//! each platform's limits, before anything is queued.

use clarion_core::{AdapterRegistry, OutboundPost, ThreadStyle};

use crate::{ChannelInfo, ContentError, ContentLibrary, PostFile, PostSource};

/// The final content for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTarget {
    pub channel: String,
    /// The whole rendered text.
    pub text: String,
    /// The messages to send: one, or a thread's parts in order.
    pub parts: Vec<String>,
    pub media: Vec<clarion_core::Media>,
}

/// A thread's parts: the text cut at lines that are exactly `---`, each part
/// trimmed, empty parts dropped.
pub fn split_thread(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    for line in text.lines() {
        if line.trim() == "---" {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Which step failed, so `plan_file` can point at the right line (and an
/// API can name the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The channel is not configured.
    Channel,
    /// The body or its template did not render.
    Render,
    /// The rendered text broke the platform's rules (length, media).
    Validate,
}

/// Renders and validates the post for every channel. Every problem is
/// reported, not just the first, each naming its channel.
pub fn render_targets(
    library: &ContentLibrary,
    source_for: impl Fn(&str) -> PostSource,
    channels: &[String],
    registry: &AdapterRegistry,
) -> Result<Vec<PlannedTarget>, Vec<ContentError>> {
    render_targets_by_step(library, source_for, channels, registry)
        .map_err(|problems| problems.into_iter().map(|(_, error)| error).collect())
}

/// [`render_targets`], each error with the step that failed.
pub fn render_targets_by_step(
    library: &ContentLibrary,
    source_for: impl Fn(&str) -> PostSource,
    channels: &[String],
    registry: &AdapterRegistry,
) -> Result<Vec<PlannedTarget>, Vec<(Step, ContentError)>> {
    let (targets, problems) = render_all(library, source_for, channels, registry);
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

/// [`render_targets`] for a post file, with every error located in the file:
/// an unknown channel at the `channels` line, a render error at its line in
/// the body, a limit violation at the start of the body.
pub fn plan_file(
    library: &ContentLibrary,
    file: &PostFile,
    registry: &AdapterRegistry,
) -> Result<Vec<PlannedTarget>, Vec<ContentError>> {
    let (targets, problems) = render_all(library, |c| file.source(c), &file.channels, registry);
    if problems.is_empty() {
        return Ok(targets);
    }
    Err(problems
        .into_iter()
        .map(|(step, error)| locate(file, step, error))
        .collect())
}

fn render_all(
    library: &ContentLibrary,
    source_for: impl Fn(&str) -> PostSource,
    channels: &[String],
    registry: &AdapterRegistry,
) -> (Vec<PlannedTarget>, Vec<(Step, ContentError)>) {
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for channel in channels {
        let source = source_for(channel);
        match render_one(library, &source, channel, registry) {
            Ok((text, parts)) => targets.push(PlannedTarget {
                channel: channel.clone(),
                text,
                parts,
                media: source.media.clone(),
            }),
            Err((step, error)) => problems.push((step, error.for_channel(channel))),
        }
    }
    (targets, problems)
}

fn render_one(
    library: &ContentLibrary,
    source: &PostSource,
    channel: &str,
    registry: &AdapterRegistry,
) -> Result<(String, Vec<String>), (Step, ContentError)> {
    let Some(adapter) = registry.get(channel) else {
        return Err((Step::Channel, unknown_channel(registry)));
    };
    let info = ChannelInfo {
        name: channel,
        kind: adapter.kind(),
        markup: adapter.markup(),
    };
    let text = library
        .render(source, &info)
        .map_err(|error| (Step::Render, error))?;
    let parts = if source.thread {
        split_thread(&text)
    } else {
        vec![text.clone()]
    };
    if parts.is_empty() {
        return Err((Step::Validate, ContentError::new("the post is empty")));
    }
    // A native thread is checked part by part; elsewhere the parts go out as one message.
    let messages = match adapter.thread_style() {
        ThreadStyle::Native => parts.clone(),
        ThreadStyle::Joined => vec![parts.join("\n\n")],
    };
    let count = messages.len();
    for (i, message) in messages.into_iter().enumerate() {
        let post = OutboundPost {
            text: message,
            campaign: source.campaign.clone(),
            media: if i == 0 {
                source.media.clone()
            } else {
                Vec::new()
            },
        };
        let checked = if source.reply {
            adapter.validate_reply(&post)
        } else {
            adapter.validate(&post)
        };
        checked.map_err(|error| {
            let message = if count > 1 {
                format!("part {} of {count}: {}", i + 1, error.message)
            } else {
                error.message
            };
            (Step::Validate, ContentError::new(message))
        })?;
    }
    Ok((text, parts))
}

fn unknown_channel(registry: &AdapterRegistry) -> ContentError {
    let names: Vec<&str> = registry.names().collect();
    let configured = if names.is_empty() {
        "no channels are configured".to_owned()
    } else {
        format!("configured: {}", names.join(", "))
    };
    ContentError::new(format!("unknown channel ({configured})"))
}

fn locate(file: &PostFile, step: Step, error: ContentError) -> ContentError {
    match step {
        Step::Channel => error.in_file(&file.path).at_line(file.channels_line),
        Step::Validate => error.in_file(&file.path).at_line(file.body_line),
        Step::Render => locate_render_error(file, error),
    }
}

/// A render error without a file is in the body: its line is counted from
/// the body's first line. One inside a template already names that file.
fn locate_render_error(file: &PostFile, mut error: ContentError) -> ContentError {
    if error.file.is_some() {
        error.message = format!("{} (rendering {})", error.message, file.path);
        return error;
    }
    let overridden = error
        .channel
        .as_ref()
        .is_some_and(|channel| file.overrides.contains_key(channel));
    match (error.line, overridden) {
        // Override bodies live inside the front matter; say where within them.
        (Some(line), true) => {
            error.message = format!("override body, line {line}: {}", error.message);
            error.in_file(&file.path).at_line(None)
        }
        (Some(line), false) => error.in_file(&file.path).at_line(file.body_line + line - 1),
        (None, _) => error.in_file(&file.path),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use clarion_core::{
        ChannelAdapter, ChannelCheck, ErrorClass, Idempotency, LengthRule, LengthUnit, Markup,
        PublishError, PublishReceipt, PublishRequest,
    };

    use super::*;
    use crate::parse_post_file;

    /// A channel that takes at most 10 characters; never publishes.
    #[derive(Debug)]
    struct Tiny(Markup);

    #[async_trait]
    impl ChannelAdapter for Tiny {
        fn kind(&self) -> &'static str {
            "tiny"
        }
        fn length_rule(&self) -> LengthRule {
            LengthRule::new(10, LengthUnit::Chars)
        }
        fn markup(&self) -> Markup {
            self.0
        }
        fn idempotency(&self) -> Idempotency {
            Idempotency::None
        }
        fn thread_style(&self) -> clarion_core::ThreadStyle {
            clarion_core::ThreadStyle::Native
        }
        /// Answers take 20 characters (as a platform's comments may differ
        /// from its posts).
        fn validate_reply(
            &self,
            post: &clarion_core::OutboundPost,
        ) -> Result<(), clarion_core::ValidationError> {
            LengthRule::new(20, LengthUnit::Chars).check(&post.text)
        }
        async fn publish(&self, _: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
            Err(PublishError::new(ErrorClass::Permanent, "test adapter"))
        }
        async fn check(&self) -> Result<ChannelCheck, PublishError> {
            Err(PublishError::new(ErrorClass::Permanent, "test adapter"))
        }
    }

    fn registry() -> AdapterRegistry {
        let mut registry = AdapterRegistry::default();
        registry.insert("plain", Arc::new(Tiny(Markup::Plain)));
        registry.insert("md", Arc::new(Tiny(Markup::Markdown)));
        registry
    }

    fn post(channels: &str, overrides: &str, body: &str) -> PostFile {
        let text = format!(
            "+++\nat = 2026-12-01T09:00:00Z\nchannels = {channels}\n[vars]\nname = \"Clarion\"\n{overrides}+++\n{body}\n"
        );
        parse_post_file("posts/a.md", "a.md", &text).unwrap()
    }

    fn messages(errors: Vec<ContentError>) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_channel_gets_its_own_flavour() {
        let file = post(r#"["plain", "md"]"#, "", "*{{name}}*");
        let targets = plan_file(&ContentLibrary::empty(), &file, &registry()).unwrap();
        assert_eq!(
            targets,
            [
                PlannedTarget {
                    channel: "plain".to_owned(),
                    text: "Clarion".to_owned(),
                    parts: vec!["Clarion".to_owned()],
                    media: vec![],
                },
                PlannedTarget {
                    channel: "md".to_owned(),
                    text: "*Clarion*".to_owned(),
                    parts: vec!["*Clarion*".to_owned()],
                    media: vec![],
                },
            ]
        );
    }

    #[test]
    fn plan_file_reports_every_problem_at_its_line() {
        // Lines 1-8 are `+++`, at, channels, [vars], name, [overrides.md], body, `+++`.
        let file = post(
            r#"["plain", "nope", "md"]"#,
            "[overrides.md]\nbody = \"{{name}} is out\"\n",
            "{{name}}\n\n{{tagline}}",
        );
        assert_eq!(file.body_line, 9);
        let errors = plan_file(&ContentLibrary::empty(), &file, &registry()).unwrap_err();
        assert_eq!(
            messages(errors),
            [
                "posts/a.md:11: channel `plain`: missing variable `tagline`",
                "posts/a.md:3: channel `nope`: unknown channel (configured: md, plain)",
                "posts/a.md:9: channel `md`: text is 14 characters long; the limit is 10",
            ]
        );
    }

    #[test]
    fn a_render_error_in_an_override_says_where_within_it() {
        let file = post(
            r#"["md"]"#,
            "[overrides.md]\nbody = \"\"\"\nhi\n{{missing}}\"\"\"\n",
            "body",
        );
        let errors = plan_file(&ContentLibrary::empty(), &file, &registry()).unwrap_err();
        assert_eq!(
            messages(errors),
            ["posts/a.md: channel `md`: override body, line 2: missing variable `missing`"]
        );
    }

    #[test]
    fn a_render_error_in_a_template_names_the_template() {
        let mut library = ContentLibrary::empty();
        library
            .add_template("launch", "{{body}}\n{{missing}}")
            .unwrap();
        let mut file = post(r#"["md"]"#, "", "hi");
        file.template = Some("launch".to_owned());
        let errors = plan_file(&library, &file, &registry()).unwrap_err();
        assert_eq!(
            messages(errors),
            ["launch:2: channel `md`: missing variable `missing` (rendering posts/a.md)"]
        );
    }

    #[test]
    fn render_targets_sets_the_channel_but_no_file() {
        let source = |_: &str| PostSource {
            body: "0123456789ab".to_owned(),
            ..PostSource::default()
        };
        let channels = ["md".to_owned(), "gone".to_owned()];
        let errors =
            render_targets(&ContentLibrary::empty(), source, &channels, &registry()).unwrap_err();
        assert_eq!(
            messages(errors),
            [
                "channel `md`: text is 12 characters long; the limit is 10",
                "channel `gone`: unknown channel (configured: md, plain)",
            ]
        );

        let ok = render_targets(
            &ContentLibrary::empty(),
            |_: &str| PostSource {
                body: "short".to_owned(),
                ..PostSource::default()
            },
            &["plain".to_owned()],
            &registry(),
        )
        .unwrap();
        assert_eq!(ok[0].text, "short");
    }

    #[test]
    fn a_reply_is_checked_by_the_channels_rules_for_answers() {
        let source = |reply: bool| {
            move |_: &str| PostSource {
                body: "twelve chars".to_owned(),
                reply,
                ..PostSource::default()
            }
        };
        let channels = ["md".to_owned()];
        let library = ContentLibrary::empty();
        let as_post = render_targets(&library, source(false), &channels, &registry());
        assert_eq!(
            messages(as_post.unwrap_err()),
            ["channel `md`: text is 12 characters long; the limit is 10"]
        );
        let as_reply = render_targets(&library, source(true), &channels, &registry()).unwrap();
        assert_eq!(as_reply[0].text, "twelve chars");
    }

    #[test]
    fn threads_split_at_dashes_and_each_part_is_checked() {
        assert_eq!(
            split_thread("one\n---\n\ntwo\n---\n---\nthree\n"),
            ["one", "two", "three"]
        );
        assert_eq!(split_thread("a --- b"), ["a --- b"]);
        // The test adapter counts 10 characters and threads natively.
        let thread = |body: &str| PostSource {
            body: body.to_owned(),
            thread: true,
            ..PostSource::default()
        };
        let ok = render_targets(
            &ContentLibrary::empty(),
            |_: &str| thread("first\n---\nsecond"),
            &["md".to_owned()],
            &registry(),
        )
        .unwrap();
        assert_eq!(ok[0].parts, ["first", "second"]);
        let errors = render_targets(
            &ContentLibrary::empty(),
            |_: &str| thread("short\n---\nfar too long"),
            &["md".to_owned()],
            &registry(),
        )
        .unwrap_err();
        assert_eq!(
            messages(errors),
            ["channel `md`: part 2 of 2: text is 12 characters long; the limit is 10"]
        );
    }
}
