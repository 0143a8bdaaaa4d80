//! Previewing a post: each channel's rendered text and its length against
//! the platform's limit, and every problem creating it would meet, without
//! storing or queueing anything. The verdict comes from the creating path
//! itself (`prepare`, `render_targets_by_step`), so a preview that says
//! "ok" is a post `create` accepts, and one that refuses says the same words.

use std::collections::BTreeMap;
use std::sync::Arc;

use clarion_content::{ChannelInfo, PostSource, RenderStep, render_targets_by_step, split_thread};
use clarion_core::{ChannelAdapter, LengthRule, LengthUnit, ThreadStyle};
use serde::Serialize;

use super::{PostInput, PostService, Refusal, spread_variants};

/// One channel's preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelPreview {
    pub channel: String,
    /// The whole rendered text, in the channel's markup.
    pub text: String,
    /// The messages as written: one, or a thread's parts.
    pub parts: Vec<String>,
    /// The count of the longest message checked against the limit.
    pub length: usize,
    /// Each message's count as the platform checks it: one per part of a
    /// native thread, else one for the whole (joined) text.
    pub message_lengths: Vec<usize>,
    /// None: the platform has no practical limit.
    pub limit: Option<usize>,
    /// What `length` counts ("characters", "graphemes", ...).
    pub unit: &'static str,
    /// Whether this channel accepts the post as it is.
    pub ok: bool,
    /// Why it does not (too long, media refused, a variable missing).
    pub error: Option<String>,
}

/// A problem with a field of the request (`channels`, `at`, `vars`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewFieldError {
    pub field: String,
    pub message: String,
}

/// What [`PostService::preview`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PostPreview {
    /// The known channels of the request, in its order.
    pub channels: Vec<ChannelPreview>,
    pub errors: Vec<PreviewFieldError>,
}

impl PostPreview {
    fn push_error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let error = PreviewFieldError {
            field: field.into(),
            message: message.into(),
        };
        // Several channels meet the same missing variable: say it once.
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    /// True when creating this post would succeed.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.channels.iter().all(|c| c.ok)
    }
}

impl PostService {
    /// The named templates (`content/templates/*.hbs`), sorted.
    pub fn template_names(&self) -> Vec<String> {
        self.library.template_names()
    }

    /// Renders and checks `input` for each of its channels as
    /// [`Self::create`] would, storing nothing. Every channel is previewed
    /// even when another refuses the post, so an author sees all of it.
    pub fn preview(&self, input: PostInput) -> PostPreview {
        let mut preview = PostPreview::default();
        // What each channel shows: variants spread as creating spreads
        // them; media that cannot be used left out (`prepare` names it).
        let shown = spread_variants(input.clone()).map_or_else(|_| input.clone(), |(i, _)| i);
        let media: Vec<_> = (shown.media.iter())
            .filter_map(|m| self.media.resolve(m).ok())
            .collect();
        let source_for = |channel: &str| PostSource {
            body: (shown.overrides.get(channel).cloned()).unwrap_or_else(|| shown.body.clone()),
            template: shown.template.clone(),
            vars: shown.vars.clone(),
            campaign: shown.campaign.clone(),
            thread: shown.thread,
            media: media.clone(),
            reply: shown.reply_to.is_some(),
        };
        let mut failed_at = BTreeMap::new();
        for (i, channel) in shown.channels.iter().enumerate() {
            if shown.channels[..i].contains(channel) {
                continue;
            }
            let Some(adapter) = self.registry.get(channel) else {
                let names: Vec<&str> = self.registry.names().collect();
                preview.push_error(
                    "channels",
                    format!(
                        "channel `{channel}`: unknown channel (configured: {})",
                        names.join(", ")
                    ),
                );
                continue;
            };
            let (channel_preview, step) =
                self.preview_channel(channel, adapter, source_for(channel));
            if let Some(step) = step {
                failed_at.insert(channel.clone(), step);
            }
            preview.channels.push(channel_preview);
        }
        // The verdict on the whole post, exactly as creating decides it.
        match self.prepare(input, None) {
            Ok(post) => {
                // Campaign links are now tracked links: show what is sent.
                for target in post.targets {
                    let Some(p) =
                        (preview.channels.iter_mut()).find(|p| p.channel == target.channel)
                    else {
                        continue;
                    };
                    if p.text != target.rendered_text || p.parts != target.parts {
                        p.text = target.rendered_text;
                        p.parts = target.parts;
                        if let Some(adapter) = self.registry.get(&p.channel) {
                            measure_into(p, adapter.as_ref());
                        }
                    }
                }
            }
            Err(Refusal::Field { field, message }) => preview.push_error(field, message),
            Err(Refusal::Content(problems)) => {
                for (field, error) in problems {
                    let step = error.channel.as_ref().and_then(|c| failed_at.get(c));
                    match step {
                        // Unknown channels are already named above, and a
                        // channel's own limits show in its preview.
                        _ if field == "channels" => {}
                        Some(RenderStep::Validate) => {}
                        _ if error.message.starts_with("missing variable") => {
                            preview.push_error("vars", error.message)
                        }
                        _ => {
                            let message = match error.line {
                                Some(line) if error.file.is_none() => {
                                    format!("line {line}: {}", error.message)
                                }
                                _ => error.message,
                            };
                            preview.push_error(field, message)
                        }
                    }
                }
            }
        }
        preview
    }

    /// One channel's text, lengths and verdict, and the step that refused it.
    fn preview_channel(
        &self,
        channel: &str,
        adapter: &Arc<dyn ChannelAdapter>,
        source: PostSource,
    ) -> (ChannelPreview, Option<RenderStep>) {
        let rule = adapter.length_rule();
        let mut p = ChannelPreview {
            channel: channel.to_owned(),
            text: String::new(),
            parts: Vec::new(),
            length: 0,
            message_lengths: Vec::new(),
            limit: (rule.max != usize::MAX).then_some(rule.max),
            unit: unit_name(rule.unit),
            ok: true,
            error: None,
        };
        let info = ChannelInfo {
            name: channel,
            kind: adapter.kind(),
            markup: adapter.markup(),
        };
        match self.library.render(&source, &info) {
            Ok(text) => {
                p.parts = if source.thread {
                    split_thread(&text)
                } else {
                    vec![text.clone()]
                };
                p.text = text;
                measure_into(&mut p, adapter.as_ref());
            }
            Err(error) => {
                p.ok = false;
                p.error = Some(error.message);
                return (p, Some(RenderStep::Render));
            }
        }
        // The check is the one creating runs, so the words are the same.
        let checked = render_targets_by_step(
            &self.library,
            |_| source.clone(),
            &[channel.to_owned()],
            &self.registry,
        );
        if let Err(problems) = checked
            && let Some((step, error)) = problems.into_iter().next()
        {
            p.ok = false;
            p.error = Some(error.message);
            return (p, Some(step));
        }
        (p, None)
    }
}

/// Sets `message_lengths` and `length` from `parts` as the platform counts
/// them: a native thread part by part, otherwise the parts joined.
fn measure_into(p: &mut ChannelPreview, adapter: &dyn ChannelAdapter) {
    p.message_lengths = measure(adapter.length_rule(), adapter.thread_style(), &p.parts);
    p.length = p.message_lengths.iter().copied().max().unwrap_or(0);
}

fn measure(rule: LengthRule, style: ThreadStyle, parts: &[String]) -> Vec<usize> {
    match style {
        ThreadStyle::Native => parts.iter().map(|m| rule.count(m)).collect(),
        ThreadStyle::Joined => vec![rule.count(&parts.join("\n\n"))],
    }
}

/// The unit a limit is counted in, as people read it.
fn unit_name(unit: LengthUnit) -> &'static str {
    match unit {
        LengthUnit::Chars => "characters",
        LengthUnit::Graphemes => "graphemes",
        LengthUnit::Utf16 => "UTF-16 units",
        LengthUnit::CharsUrl23 => "characters (URLs count 23)",
        LengthUnit::XWeighted => "weighted characters",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_counts_native_threads_per_part_and_joined_ones_whole() {
        let rule = LengthRule::new(10, LengthUnit::Chars);
        let parts = vec!["abc".to_owned(), "defgh".to_owned()];
        assert_eq!(measure(rule, ThreadStyle::Native, &parts), vec![3, 5]);
        // Joined with a blank line: 3 + 2 + 5.
        assert_eq!(measure(rule, ThreadStyle::Joined, &parts), vec![10]);
        let urls = LengthRule::new(500, LengthUnit::CharsUrl23);
        let long_url = format!("see https://example.com/{}", "x".repeat(80));
        assert_eq!(
            measure(urls, ThreadStyle::Joined, &[long_url]),
            vec![4 + 23]
        );
    }

    #[test]
    fn preview_field_errors_are_said_once() {
        let mut p = PostPreview::default();
        p.push_error("vars", "missing variable `who`");
        p.push_error("vars", "missing variable `who`");
        p.push_error("at", "in the past");
        assert_eq!(p.errors.len(), 2);
        assert!(!p.is_ok());
        assert!(PostPreview::default().is_ok());
    }
}
