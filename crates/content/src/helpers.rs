//! Handlebars helpers for per-platform text: `truncate`, `hashtags`, `plain`.
//!
//! `eq` (and `ne`, `and`, `or`, `not`) are built into handlebars 6, so
//! `{{#if (eq channel.markup "markdown")}}` works without a helper of ours.

use clarion_core::truncate_graphemes;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;

use crate::markdown;

pub(crate) fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("truncate", Box::new(truncate));
    registry.register_helper("hashtags", Box::new(hashtags));
    registry.register_helper("plain", Box::new(plain));
}

/// `{{truncate text 20}}`: at most 20 graphemes, ending with `…` when cut.
fn truncate(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let text = text_param(h, "truncate", 0)?;
    let max = param(h, "truncate", 1)?
        .as_u64()
        .and_then(|max| usize::try_from(max).ok())
        .ok_or(RenderErrorReason::InvalidParamType(
            "a whole number as the second parameter of `truncate`",
        ))?;
    out.write(&truncate_graphemes(&text, max))?;
    Ok(())
}

/// `{{hashtags tags}}`: `["launch", "rust lang", "#oss"]` -> `#launch #rustlang #oss`.
fn hashtags(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let tags = param(h, "hashtags", 0)?
        .as_array()
        .ok_or(RenderErrorReason::InvalidParamType(
            "an array of tags as the parameter of `hashtags`",
        ))?;
    let rendered: Vec<String> = tags.iter().filter_map(hashtag).collect();
    out.write(&rendered.join(" "))?;
    Ok(())
}

/// One tag: spaces removed (platforms end a hashtag at a space), one `#`.
fn hashtag(tag: &Value) -> Option<String> {
    let text = value_text(tag);
    let word: String = text
        .trim_start_matches('#')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (!word.is_empty()).then(|| format!("#{word}"))
}

/// `{{plain text}}`: Markdown marks stripped.
fn plain(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let text = text_param(h, "plain", 0)?;
    out.write(&markdown::to_plain(&text))?;
    Ok(())
}

/// A parameter's value. In strict mode a missing variable is reported by its
/// path, like a missing `{{variable}}`, rather than as a positional error.
fn param<'a>(h: &'a Helper, helper: &'static str, index: usize) -> Result<&'a Value, RenderError> {
    let param = h
        .param(index)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, index))?;
    if param.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
    }
    Ok(param.value())
}

fn text_param(h: &Helper, helper: &'static str, index: usize) -> Result<String, RenderError> {
    param(h, helper, index).map(value_text)
}

/// Strings as they are; numbers and booleans as written; null as nothing.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
