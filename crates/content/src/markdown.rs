//! Markdown, the language posts are written in, converted for channels that
//! do not take it as is: plain text, the small HTML subset chat platforms
//! accept (Telegram: `<b>`, `<i>`, `<s>`, `<code>`, `<pre>`, `<a>`,
//! `<blockquote>`, literal line breaks), and block HTML (email, Matrix:
//! paragraphs, headings, lists, `<br>`).
//!
//! Parsing is pulldown-cmark's (CommonMark plus `~~strikethrough~~`); this
//! module only decides what each element becomes. Rules for every output:
//!
//! - a link or image keeps its target only when the scheme is on the one
//!   allowlist, [`ALLOWED_SCHEMES`] (http, https, mailto): `javascript:`,
//!   `data:`, `vbscript:` or relative targets are dropped and the text kept;
//! - raw HTML in the source is text: shown as written in plain text,
//!   escaped in HTML, never passed through;
//! - a line break inside a paragraph stays a line break (posts are written
//!   line by line), and plain text keeps the source's blank lines between
//!   blocks (one or none).

use pulldown_cmark::{Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};

/// The only URL schemes a link or image may point to.
pub const ALLOWED_SCHEMES: [&str; 3] = ["http", "https", "mailto"];

/// Strips Markdown marks: `**b**` -> `b`, `[l](u)` -> `l (u)`, `# T` -> `T`.
pub fn to_plain(text: &str) -> String {
    render(text, Style::Plain)
}

/// The HTML subset chat platforms accept (`<b>`, `<i>`, `<code>`, `<a>`, ...),
/// with line breaks as newlines and headings in bold.
pub fn to_html(text: &str) -> String {
    render(text, Style::Chat)
}

/// Block HTML for email and Matrix: `<p>`, `<h1>`, `<ul>`, `<br>`,
/// `<strong>`, `<em>`; bare `http(s)://` URLs become links.
pub fn to_html_blocks(text: &str) -> String {
    render(text, Style::Blocks)
}

/// The URL to use for a link or image, if its scheme is allowed. Browsers
/// drop tabs and newlines anywhere in a URL and leading control characters
/// and spaces (`java\tscript:` is `javascript:`), so the check, and the URL
/// returned, are on the cleaned form.
pub fn allowed_url(url: &str) -> Option<String> {
    let cleaned: String = url
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let cleaned = cleaned.trim_start_matches(|c: char| c <= ' ');
    let (scheme, rest) = cleaned.split_once(':')?;
    (ALLOWED_SCHEMES
        .iter()
        .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
        && !rest.is_empty())
    .then(|| cleaned.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Chat,
    Blocks,
}

fn render(text: &str, style: Style) -> String {
    let mut writer = Writer::new(text, style);
    let parser = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH).into_offset_iter();
    for (event, range) in parser {
        writer.event(event, range);
    }
    writer.out.trim_end().to_owned()
}

fn escape_into(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

/// A link or image being written.
struct OpenLink {
    /// The target, when allowed.
    url: Option<String>,
    /// The target as written (an email autolink's has no `mailto:`).
    dest: String,
    /// Where its text starts in the output.
    start: usize,
}

/// A block whose text is collected first: code (its final newline is
/// dropped) and raw HTML (shown as text).
enum Collect {
    Code(String),
    Html(String),
}

struct Writer<'s> {
    style: Style,
    src: &'s str,
    out: String,
    /// Plain and chat: what each new line inside open quotes and list items
    /// starts with.
    prefix: Vec<String>,
    /// Open lists: the next item's number (`None`: bullets).
    lists: Vec<Option<u64>>,
    links: Vec<OpenLink>,
    collect: Option<Collect>,
    /// Nothing written since the last block started.
    fresh: bool,
    /// Where the last block ended in the source.
    last_end: usize,
}

impl<'s> Writer<'s> {
    fn new(src: &'s str, style: Style) -> Self {
        Self {
            style,
            src,
            out: String::with_capacity(src.len() + src.len() / 4),
            prefix: Vec::new(),
            lists: Vec::new(),
            links: Vec::new(),
            collect: None,
            fresh: true,
            last_end: 0,
        }
    }

    fn html(&self) -> bool {
        self.style != Style::Plain
    }

    fn push(&mut self, s: &str) {
        self.out.push_str(s);
        self.fresh = false;
    }

    /// A new line, with the prefixes of the open quotes and items.
    fn newline(&mut self) {
        self.out.push('\n');
        for p in &self.prefix {
            self.out.push_str(p);
        }
    }

    /// Text as written in the source (already unescaped by the parser).
    fn text(&mut self, text: &str) {
        if let Some(Collect::Code(buf) | Collect::Html(buf)) = &mut self.collect {
            buf.push_str(text);
            return;
        }
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.line_break();
            }
            match self.style {
                Style::Plain => self.out.push_str(line),
                Style::Blocks if self.links.is_empty() => linkify_into(&mut self.out, line),
                _ => escape_into(&mut self.out, line, false),
            }
        }
        self.fresh = false;
    }

    fn line_break(&mut self) {
        match self.style {
            Style::Blocks => self.out.push_str("<br>\n"),
            _ => self.newline(),
        }
        self.fresh = false;
    }

    /// Before a block: plain and chat keep the source's blank line (or its
    /// absence) between blocks; block HTML starts a new line.
    fn separate(&mut self, start: usize) {
        if self.out.is_empty() || self.fresh {
            return;
        }
        if self.style == Style::Blocks {
            if !self.out.ends_with('\n') {
                self.out.push('\n');
            }
        } else {
            let before = self.src[..self.last_end.min(start)].trim_end().len();
            let blank = self.src[before..start].matches('\n').count() > 1;
            if blank {
                self.out.push('\n');
                for p in &self.prefix {
                    self.out.push_str(p.trim_end());
                }
            }
            self.newline();
        }
        self.fresh = true;
    }

    fn event(&mut self, event: Event<'_>, range: std::ops::Range<usize>) {
        match event {
            Event::Start(tag) => {
                self.start(tag, range.start);
                return;
            }
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => match self.style {
                Style::Plain => self.push(&code),
                _ => {
                    self.push("<code>");
                    escape_into(&mut self.out, &code, false);
                    self.push("</code>");
                }
            },
            // Raw HTML is text: never passed through.
            Event::Html(html) | Event::InlineHtml(html) => {
                if let Some(Collect::Html(buf)) = &mut self.collect {
                    buf.push_str(&html);
                } else if self.html() {
                    escape_into(&mut self.out, &html, false);
                    self.fresh = false;
                } else {
                    self.push(&html);
                }
            }
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.separate(range.start);
                // Not `---`: that line separates thread parts.
                self.push(if self.style == Style::Blocks {
                    "<hr>"
                } else {
                    "* * *"
                });
            }
            // Not enabled in the parser options.
            Event::InlineMath(text) | Event::DisplayMath(text) | Event::FootnoteReference(text) => {
                self.text(&text)
            }
            Event::TaskListMarker(done) => self.push(if done { "[x] " } else { "[ ] " }),
        }
        // Where the source written so far ends, for `separate`.
        self.last_end = self.last_end.max(range.end);
    }

    fn start(&mut self, tag: Tag<'_>, at: usize) {
        let blocks = self.style == Style::Blocks;
        match tag {
            Tag::Paragraph => {
                self.separate(at);
                if blocks {
                    self.push("<p>");
                }
            }
            Tag::Heading { level, .. } => {
                self.separate(at);
                match self.style {
                    Style::Plain => {}
                    Style::Chat => self.push("<b>"),
                    Style::Blocks => self.push(&format!("<{}>", heading(level))),
                }
            }
            Tag::BlockQuote(_) => {
                self.separate(at);
                match self.style {
                    Style::Plain => {
                        self.prefix.push("> ".to_owned());
                        self.out.push_str("> ");
                    }
                    Style::Chat => self.out.push_str("<blockquote>"),
                    Style::Blocks => self.out.push_str("<blockquote>\n"),
                }
                self.fresh = true;
            }
            Tag::CodeBlock(_) => {
                self.separate(at);
                self.collect = Some(Collect::Code(String::new()));
            }
            Tag::HtmlBlock => {
                self.separate(at);
                self.collect = Some(Collect::Html(String::new()));
            }
            Tag::List(first) => {
                self.separate(at);
                self.lists.push(first);
                if blocks {
                    let open = match first {
                        None => "<ul>\n".to_owned(),
                        Some(1) => "<ol>\n".to_owned(),
                        Some(n) => format!("<ol start=\"{n}\">\n"),
                    };
                    self.out.push_str(&open);
                }
            }
            Tag::Item => {
                self.separate(at);
                if blocks {
                    self.out.push_str("<li>");
                    self.fresh = true;
                    return;
                }
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "- ".to_owned(),
                };
                self.out.push_str(&marker);
                self.prefix.push(" ".repeat(marker.len()));
                self.fresh = true;
            }
            Tag::Emphasis => self.mark("<i>", "<em>"),
            Tag::Strong => self.mark("<b>", "<strong>"),
            Tag::Strikethrough => self.mark("<s>", "<del>"),
            Tag::Link {
                link_type,
                dest_url,
                ..
            }
            | Tag::Image {
                link_type,
                dest_url,
                ..
            } => {
                let url = if link_type == LinkType::Email {
                    allowed_url(&format!("mailto:{dest_url}"))
                } else {
                    allowed_url(&dest_url)
                };
                if self.html()
                    && let Some(url) = &url
                {
                    self.out.push_str("<a href=\"");
                    escape_into(&mut self.out, url, true);
                    self.out.push_str("\">");
                }
                self.fresh = false;
                self.links.push(OpenLink {
                    url,
                    dest: dest_url.to_string(),
                    start: self.out.len(),
                });
            }
            // Tables, footnotes, definition lists, metadata, super- and
            // subscript are not enabled: their text still comes through.
            _ => {}
        }
    }

    /// An inline mark: nothing in plain text, a tag in HTML.
    fn mark(&mut self, chat: &str, blocks: &str) {
        match self.style {
            Style::Plain => {}
            Style::Chat => self.push(chat),
            Style::Blocks => self.push(blocks),
        }
    }

    fn end(&mut self, tag: TagEnd) {
        let blocks = self.style == Style::Blocks;
        match tag {
            TagEnd::Paragraph if blocks => self.out.push_str("</p>\n"),
            TagEnd::Heading(level) => match self.style {
                Style::Plain => {}
                Style::Chat => self.out.push_str("</b>"),
                Style::Blocks => self.out.push_str(&format!("</{}>\n", heading(level))),
            },
            TagEnd::BlockQuote(_) => match self.style {
                Style::Plain => {
                    self.prefix.pop();
                }
                Style::Chat => {
                    trim_newlines(&mut self.out);
                    self.out.push_str("</blockquote>");
                }
                Style::Blocks => self.out.push_str("</blockquote>\n"),
            },
            TagEnd::CodeBlock => {
                let Some(Collect::Code(code)) = self.collect.take() else {
                    return;
                };
                let code = code.strip_suffix('\n').unwrap_or(&code);
                match self.style {
                    Style::Plain => self.text(code),
                    Style::Chat => {
                        self.out.push_str("<pre>");
                        escape_into(&mut self.out, code, false);
                        self.out.push_str("</pre>");
                    }
                    Style::Blocks => {
                        self.out.push_str("<pre><code>");
                        escape_into(&mut self.out, code, false);
                        self.out.push_str("</code></pre>\n");
                    }
                }
                self.fresh = false;
            }
            TagEnd::HtmlBlock => {
                let Some(Collect::Html(html)) = self.collect.take() else {
                    return;
                };
                if blocks {
                    self.out.push_str("<p>");
                }
                // Shown as text, line by line, like a paragraph.
                let lines: Vec<&str> = html.trim_end().split('\n').collect();
                for (i, line) in lines.iter().enumerate() {
                    if i > 0 {
                        self.line_break();
                    }
                    if self.html() {
                        escape_into(&mut self.out, line, false);
                    } else {
                        self.out.push_str(line);
                    }
                }
                if blocks {
                    self.out.push_str("</p>\n");
                }
                self.fresh = false;
            }
            TagEnd::List(ordered) => {
                self.lists.pop();
                if blocks {
                    self.out
                        .push_str(if ordered { "</ol>\n" } else { "</ul>\n" });
                }
            }
            TagEnd::Item => {
                if blocks {
                    trim_newlines(&mut self.out);
                    self.out.push_str("</li>\n");
                } else {
                    self.prefix.pop();
                }
            }
            TagEnd::Emphasis => self.mark("</i>", "</em>"),
            TagEnd::Strong => self.mark("</b>", "</strong>"),
            TagEnd::Strikethrough => self.mark("</s>", "</del>"),
            TagEnd::Link | TagEnd::Image => {
                let Some(link) = self.links.pop() else {
                    return;
                };
                let Some(url) = link.url else {
                    // Not an allowed target: the text stays, the link goes.
                    return;
                };
                let label = self.out[link.start..].to_owned();
                if self.html() {
                    if label.is_empty() {
                        escape_into(&mut self.out, &url, false);
                    }
                    self.out.push_str("</a>");
                } else if label.is_empty() {
                    self.out.push_str(&url);
                } else if label != url && label != link.dest {
                    // A bare link written as `[https://x](https://x)` need
                    // not repeat itself.
                    self.out.push_str(&format!(" ({url})"));
                }
                self.fresh = false;
            }
            _ => {}
        }
    }
}

fn heading(level: HeadingLevel) -> &'static str {
    match level {
        HeadingLevel::H1 => "h1",
        HeadingLevel::H2 => "h2",
        HeadingLevel::H3 => "h3",
        HeadingLevel::H4 => "h4",
        HeadingLevel::H5 => "h5",
        HeadingLevel::H6 => "h6",
    }
}

fn trim_newlines(out: &mut String) {
    while out.ends_with('\n') {
        out.pop();
    }
}

/// Escaped text with bare `http(s)://` URLs made links; trailing
/// punctuation stays outside the link.
fn linkify_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = find_url(rest) {
        escape_into(out, &rest[..at], false);
        let tail = &rest[at..];
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
        let scheme_len = if url.starts_with("https://") { 8 } else { 7 };
        match allowed_url(url).filter(|_| url.len() > scheme_len) {
            Some(href) => {
                out.push_str("<a href=\"");
                escape_into(out, &href, true);
                out.push_str("\">");
                escape_into(out, url, false);
                out.push_str("</a>");
            }
            None => escape_into(out, url, false),
        }
        rest = &tail[url.len().max(1)..];
    }
    escape_into(out, rest, false);
}

/// Where the next bare URL starts: `http://` or `https://` at the start of
/// a word.
fn find_url(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("http") {
        let at = from + found;
        let word_start = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '(' | '<' | '"' | '\''));
        let rest = &text[at..];
        if word_start && (rest.starts_with("http://") || rest.starts_with("https://")) {
            return Some(at);
        }
        from = at + 4;
    }
    None
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
        assert_eq!(
            to_plain("[**bold** label](https://u.test)"),
            "bold label (https://u.test)"
        );
    }

    #[test]
    fn emphasis_does_not_cross_paragraphs() {
        // A stray `*` never swallows the next paragraph; within one
        // paragraph CommonMark lets emphasis span a line break.
        assert_eq!(to_plain("a *b\n\nc* d"), "a *b\n\nc* d");
        assert_eq!(to_plain("a *b\nc* d"), "a b\nc d");
    }

    #[test]
    fn html_escapes_then_converts() {
        assert_eq!(
            to_html("**Big** & *small* <tags> [site](https://x.io/?a=1&b=2) `x<y`"),
            "<b>Big</b> &amp; <i>small</i> &lt;tags&gt; \
             <a href=\"https://x.io/?a=1&amp;b=2\">site</a> <code>x&lt;y</code>"
        );
        assert_eq!(to_html("# Title"), "<b>Title</b>");
        assert_eq!(
            to_html("[q](https://u.test/\"v)"),
            "<a href=\"https://u.test/&quot;v\">q</a>"
        );
    }

    #[test]
    fn only_http_https_and_mailto_targets_survive_and_the_text_stays() {
        let md = "[a](javascript:alert(1)) [b](JavaScript:x) [c](data:text/html;base64,PHN) \
                  [d](vbscript:msgbox) [e](relative/path) ![f](data:image/png;base64,iVBO)";
        assert_eq!(to_plain(md), "a b c d e f");
        assert_eq!(to_html(md), "a b c d e f");
        assert_eq!(to_html_blocks(md), "<p>a b c d e f</p>");
        assert_eq!(
            to_html(
                "[m](mailto:a@b.test) <https://x.test/a> <a@b.test> ![p](https://x.test/p.png)"
            ),
            "<a href=\"mailto:a@b.test\">m</a> <a href=\"https://x.test/a\">https://x.test/a</a> \
             <a href=\"mailto:a@b.test\">a@b.test</a> <a href=\"https://x.test/p.png\">p</a>"
        );
        assert_eq!(
            to_plain("<https://x.test/a> <a@b.test> ![](https://x.test/p.png)"),
            "https://x.test/a a@b.test https://x.test/p.png"
        );
        assert_eq!(allowed_url("java\tscript:alert(1)"), None);
        assert_eq!(allowed_url(" \u{1}javascript:alert(1)"), None);
        assert_eq!(allowed_url("mailto:"), None);
        assert_eq!(
            allowed_url("HTTPS://X.test").as_deref(),
            Some("HTTPS://X.test")
        );
        assert_eq!(
            allowed_url("ht\ntps://x.test").as_deref(),
            Some("https://x.test")
        );
    }

    #[test]
    fn raw_html_is_escaped_never_passed_through() {
        let md = "<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> there";
        let chat = to_html(md);
        let blocks = to_html_blocks(md);
        for html in [&chat, &blocks] {
            assert!(
                !html.contains("<script") && !html.contains("<img"),
                "{html}"
            );
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{html}"
            );
        }
        assert_eq!(
            blocks,
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n<p>hi &lt;img src=x onerror=alert(1)&gt; there</p>"
        );
        // Plain text shows it as written.
        assert_eq!(to_plain(md), md);
    }

    #[test]
    fn block_html_has_paragraphs_headings_lists_and_line_breaks() {
        let md = "# Title\n\nline *one*\nline _two_ and **bold**, see https://x.test/a.\n\n\
                  - a\n- b\n\n3. c\n4. d\n\n> quoted\n\n```\nx < y\n```";
        assert_eq!(
            to_html_blocks(md),
            "<h1>Title</h1>\n\
             <p>line <em>one</em><br>\nline <em>two</em> and <strong>bold</strong>, \
             see <a href=\"https://x.test/a\">https://x.test/a</a>.</p>\n\
             <ul>\n<li>a</li>\n<li>b</li>\n</ul>\n\
             <ol start=\"3\">\n<li>c</li>\n<li>d</li>\n</ol>\n\
             <blockquote>\n<p>quoted</p>\n</blockquote>\n\
             <pre><code>x &lt; y</code></pre>"
        );
    }

    #[test]
    fn plain_and_chat_keep_the_shape_of_the_source() {
        let md = "Intro\nsecond line\n\n- one\n- two\n  - nested\n\n1. first\n2. second\n\n\
                  > quoted\n> more\n\n~~old~~ new";
        assert_eq!(
            to_plain(md),
            "Intro\nsecond line\n\n- one\n- two\n  - nested\n\n1. first\n2. second\n\n\
             > quoted\n> more\n\nold new"
        );
        assert_eq!(
            to_html(md),
            "Intro\nsecond line\n\n- one\n- two\n  - nested\n\n1. first\n2. second\n\n\
             <blockquote>quoted\nmore</blockquote>\n\n<s>old</s> new"
        );
    }
}
