//! The small Markdown subset posts are written in, converted for channels
//! that do not render Markdown.
//!
//! This is deliberately not a Markdown parser: it knows headings, emphasis,
//! code spans, links and backslash escapes, one line at a time, so a stray
//! `*` can never swallow a paragraph. Anything it does not recognise is kept
//! as written.

/// What a recognised mark turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Plain,
    Html,
}

/// Strips Markdown marks: `**b**` -> `b`, `[l](u)` -> `l (u)`, `# T` -> `T`.
pub fn to_plain(text: &str) -> String {
    convert(text, Target::Plain)
}

/// Turns Markdown marks into the HTML subset chat platforms accept (`<b>`,
/// `<i>`, `<code>`, `<a>`), after escaping the text itself.
pub fn to_html(text: &str) -> String {
    convert(&escape_html(text), Target::Html)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn convert(text: &str, target: Target) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        match heading_text(line) {
            Some(title) => {
                let title = inline(title, target);
                match target {
                    Target::Plain => out.push_str(&title),
                    // Chat HTML has no headings; bold is the closest.
                    Target::Html => out.push_str(&format!("<b>{title}</b>")),
                }
            }
            None => out.push_str(&inline(line, target)),
        }
    }
    out
}

/// The text of an ATX heading (`# Title` .. `###### Title`). A hashtag such
/// as `#launch` is not a heading because the `#` is not followed by a space.
fn heading_text(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches('#');
    let level = line.len() - rest.len();
    if (1..=6).contains(&level) && rest.starts_with(' ') {
        Some(rest.trim())
    } else {
        None
    }
}

/// Converts the inline marks of one line.
fn inline(line: &str, target: Target) -> String {
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    while let Some(ch) = line[at..].chars().next() {
        if let Some((consumed, rendered)) = mark_at(line, at, target) {
            out.push_str(&rendered);
            at += consumed;
        } else {
            out.push(ch);
            at += ch.len_utf8();
        }
    }
    out
}

/// A mark starting at byte `at`: how many bytes it spans and what it becomes.
fn mark_at(line: &str, at: usize, target: Target) -> Option<(usize, String)> {
    let rest = &line[at..];
    match rest.as_bytes().first()? {
        b'\\' => escaped(rest),
        b'`' => code_span(rest, target),
        b'[' => link(rest, target),
        b'*' | b'_' => emphasis(line, at, target),
        _ => None,
    }
}

/// `\*` is a literal `*`: the way to write a mark character on purpose.
fn escaped(rest: &str) -> Option<(usize, String)> {
    let next = rest[1..].chars().next()?;
    next.is_ascii_punctuation()
        .then(|| (1 + next.len_utf8(), next.to_string()))
}

fn code_span(rest: &str, target: Target) -> Option<(usize, String)> {
    let len = rest[1..].find('`')?;
    if len == 0 {
        return None;
    }
    let code = &rest[1..1 + len];
    let rendered = match target {
        Target::Plain => code.to_owned(),
        Target::Html => format!("<code>{code}</code>"),
    };
    Some((len + 2, rendered))
}

/// `[label](url)`; the URL may not contain whitespace, so prose in brackets
/// followed by a parenthesis is left alone.
fn link(rest: &str, target: Target) -> Option<(usize, String)> {
    let close = rest.find(']')?;
    let label = &rest[1..close];
    let after = rest[close + 1..].strip_prefix('(')?;
    let url_len = after.find(')')?;
    let url = &after[..url_len];
    if label.is_empty() || url.is_empty() || url.contains(char::is_whitespace) {
        return None;
    }
    let label = inline(label, target);
    let rendered = match target {
        // A bare link written as `[https://x](https://x)` need not repeat itself.
        Target::Plain if label == url => url.to_owned(),
        Target::Plain => format!("{label} ({url})"),
        Target::Html => format!("<a href=\"{}\">{label}</a>", url.replace('"', "&quot;")),
    };
    Some((close + 2 + url_len + 1, rendered))
}

/// `**strong**`, `__strong__`, `*em*`, `_em_`.
///
/// Follows the CommonMark flanking rules closely enough for prose: the opener
/// is followed and the closer preceded by non-whitespace (so `2 * 3` stays),
/// and `_` never works inside a word (so `snake_case` and URLs stay).
fn emphasis(line: &str, at: usize, target: Target) -> Option<(usize, String)> {
    let rest = &line[at..];
    let mark = rest.chars().next()?;
    let strong = rest[1..].starts_with(mark);
    let delim = if strong { &rest[..2] } else { &rest[..1] };
    let underscore = mark == '_';

    let before_open = line[..at].chars().next_back();
    let after_open = rest[delim.len()..].chars().next()?;
    if after_open.is_whitespace() || (underscore && before_open.is_some_and(char::is_alphanumeric))
    {
        return None;
    }

    let inner_start = at + delim.len();
    let close = line[inner_start..]
        .match_indices(delim)
        .map(|(offset, _)| inner_start + offset)
        .find(|&close| is_closer(line, inner_start, close, delim, mark))?;
    let inner = inline(&line[inner_start..close], target);
    let rendered = match (target, strong) {
        (Target::Plain, _) => inner,
        (Target::Html, true) => format!("<b>{inner}</b>"),
        (Target::Html, false) => format!("<i>{inner}</i>"),
    };
    Some((close + delim.len() - at, rendered))
}

fn is_closer(line: &str, inner_start: usize, close: usize, delim: &str, mark: char) -> bool {
    let before = line[..close].chars().next_back();
    let after = line[close + delim.len()..].chars().next();
    if close == inner_start || before.is_none_or(char::is_whitespace) {
        return false;
    }
    // A single mark must not be half of a double one (`*a **b** c*`).
    if delim.len() == 1 && (before == Some(mark) || after == Some(mark)) {
        return false;
    }
    !(mark == '_' && after.is_some_and(char::is_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_strips_emphasis_code_links_and_headings() {
        assert_eq!(
            to_plain(
                "# Launch day\n**Clarion** is *out*, see [the docs](https://x.io/d) or `clarion help`."
            ),
            "Launch day\nClarion is out, see the docs (https://x.io/d) or clarion help."
        );
        assert_eq!(to_plain("__bold__ and _it_"), "bold and it");
        assert_eq!(to_plain("### Small heading"), "Small heading");
    }

    #[test]
    fn plain_leaves_things_that_only_look_like_marks() {
        let text =
            "2 * 3 = 6, snake_case_name, https://x.io/a_b_c, #launch, [not a](link here), ** x **";
        assert_eq!(to_plain(text), text);
        assert_eq!(
            to_plain("unclosed *star and `tick"),
            "unclosed *star and `tick"
        );
    }

    #[test]
    fn plain_handles_nesting_escapes_and_bare_links() {
        assert_eq!(to_plain("*a **b** c*"), "a b c");
        assert_eq!(to_plain(r"\*not emphasis\*"), "*not emphasis*");
        assert_eq!(to_plain("[https://x.io](https://x.io)"), "https://x.io");
        assert_eq!(to_plain("[**bold** label](u)"), "bold label (u)");
    }

    #[test]
    fn emphasis_does_not_cross_lines() {
        assert_eq!(to_plain("a *b\nc* d"), "a *b\nc* d");
    }

    #[test]
    fn html_escapes_then_converts() {
        assert_eq!(
            to_html("**Big** & *small* <tags> [site](https://x.io/?a=1&b=2) `x<y`"),
            "<b>Big</b> &amp; <i>small</i> &lt;tags&gt; \
             <a href=\"https://x.io/?a=1&amp;b=2\">site</a> <code>x&lt;y</code>"
        );
        assert_eq!(to_html("# Title"), "<b>Title</b>");
        assert_eq!(to_html("[q](u\"v)"), "<a href=\"u&quot;v\">q</a>");
    }
}
