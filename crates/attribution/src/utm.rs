//! Tracked links: UTM tagging, the click id, and finding links in post text.

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::{Url, form_urlencoded};

/// The query parameter that carries Clarion's click id to the shop (Dub's
/// equivalent is `dub_id`); the shop keeps it and sends it back on the order.
pub const CLICK_ID_PARAM: &str = "clarion_cid";

/// Why a destination cannot be tagged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    #[error("link {link:?} is not a valid URL: {source}")]
    Invalid {
        link: String,
        #[source]
        source: url::ParseError,
    },
    #[error("link {link:?}: scheme {scheme:?} is not http or https")]
    Scheme { link: String, scheme: String },
}

/// UTM parameters. All optional: an order's landing page may carry any
/// subset, and tagging adds only the ones that are set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utm {
    /// Where: `bluesky`, `newsletter`.
    pub source: Option<String>,
    /// Channel type: `social`, `kol`, `email`.
    pub medium: Option<String>,
    pub campaign: Option<String>,
    /// Which post or creative.
    pub content: Option<String>,
    /// Paid keyword.
    pub term: Option<String>,
}

impl Utm {
    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.params().all(|(_, value)| value.is_none())
    }

    /// `(utm_name, value)` in the conventional order.
    fn params(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> {
        [
            ("utm_source", &self.source),
            ("utm_medium", &self.medium),
            ("utm_campaign", &self.campaign),
            ("utm_content", &self.content),
            ("utm_term", &self.term),
        ]
        .into_iter()
        .map(|(name, value)| (name, value.as_deref()))
    }

    /// Sets the field named by a `utm_*` query parameter unless it is
    /// already set (the first occurrence wins) or `value` is empty. Returns
    /// false for a name that is not a UTM parameter.
    pub(crate) fn set_param(&mut self, name: &str, value: &str) -> bool {
        let field = match name {
            "utm_source" => &mut self.source,
            "utm_medium" => &mut self.medium,
            "utm_campaign" => &mut self.campaign,
            "utm_content" => &mut self.content,
            "utm_term" => &mut self.term,
            _ => return false,
        };
        if field.is_none() && !value.is_empty() {
            *field = Some(value.to_owned());
        }
        true
    }
}

fn parse_http(link: &str) -> Result<Url, LinkError> {
    let url = Url::parse(link).map_err(|source| LinkError::Invalid {
        link: link.to_owned(),
        source,
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        scheme => Err(LinkError::Scheme {
            link: link.to_owned(),
            scheme: scheme.to_owned(),
        }),
    }
}

/// Adds the set UTM parameters to `destination`.
///
/// Parameters the destination already has are kept and win over `utm`: a
/// shop or creator who wrote `utm_source` into the link meant it, and a
/// parameter given twice is read differently by different analytics tools.
/// Values are form-encoded (space as `+`), as analytics tools decode them.
/// The result is the URL as the WHATWG URL standard writes it (host lower
/// case, `/` path for a bare host).
pub fn tag(destination: &str, utm: &Utm) -> Result<String, LinkError> {
    let mut url = parse_http(destination)?;
    let present: HashSet<String> = url
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    let missing: Vec<(&str, &str)> = utm
        .params()
        .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, v)))
        .filter(|(name, _)| !present.contains(*name))
        .collect();
    if !missing.is_empty() {
        url.query_pairs_mut().extend_pairs(missing);
    }
    Ok(url.into())
}

/// Appends `clarion_cid=<click_id>` to `destination`, keeping its other
/// parameters byte for byte. Unlike UTM parameters, a `clarion_cid` already
/// there is replaced: it belongs to another click (a copied tracked link).
pub fn with_click_id(destination: &str, click_id: &str) -> Result<String, LinkError> {
    let mut url = parse_http(destination)?;
    let kept = url.query().map(|query| {
        query
            .split('&')
            .filter(|segment| {
                form_urlencoded::parse(segment.as_bytes())
                    .next()
                    .is_none_or(|(name, _)| name != CLICK_ID_PARAM)
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    url.set_query(kept.as_deref().filter(|q| !q.is_empty()));
    url.query_pairs_mut().append_pair(CLICK_ID_PARAM, click_id);
    Ok(url.into())
}

/// The http(s) links in post text, as byte ranges and the text they cover.
///
/// A link starts at `http://` or `https://` (any case) not glued to a
/// preceding letter or digit, and ends at whitespace, at any non-ASCII
/// character, or at `<>"`{}|\^`. Non-ASCII ends it because CJK text often
/// runs into a link with no space; a link with non-ASCII characters in it
/// must be written percent-encoded. A `)` or `]` that closes nothing opened
/// inside the link ends it (`(see https://a.b/c)`, `[x](https://a.b/c)`),
/// while `https://w.org/Rust_(lang)` keeps its balanced parentheses. Then
/// trailing `.,;:!?'` are dropped, as sentence punctuation.
pub fn find_links(text: &str) -> Vec<(Range<usize>, &str)> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut links = Vec::new();
    let mut from = 0;
    while let Some(offset) = lower[from..].find("http") {
        let start = from + offset;
        let rest = &lower[start..];
        let scheme_len = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            from = start + 4;
            continue;
        };
        let glued = start > 0 && bytes[start - 1].is_ascii_alphanumeric();
        let end = link_end(text, start + scheme_len);
        let candidate = &text[start..end];
        let is_link = !glued
            && end > start + scheme_len
            && Url::parse(candidate).is_ok_and(|url| url.host().is_some());
        if is_link {
            links.push((start..end, candidate));
            from = end;
        } else {
            from = start + scheme_len;
        }
    }
    links
}

/// Where a link whose host starts at `from` ends (see [`find_links`]).
fn link_end(text: &str, from: usize) -> usize {
    let mut parens = 0_usize;
    let mut brackets = 0_usize;
    let mut end = text.len();
    for (index, c) in text[from..].char_indices() {
        let stop = match c {
            c if !c.is_ascii() || c.is_ascii_whitespace() || c.is_ascii_control() => true,
            '<' | '>' | '"' | '`' | '{' | '}' | '|' | '\\' | '^' => true,
            '(' => {
                parens += 1;
                false
            }
            '[' => {
                brackets += 1;
                false
            }
            ')' if parens > 0 => {
                parens -= 1;
                false
            }
            ']' if brackets > 0 => {
                brackets -= 1;
                false
            }
            // Closes nothing opened inside the link.
            ')' | ']' => true,
            _ => false,
        };
        if stop {
            end = from + index;
            break;
        }
    }
    let trimmed = text[from..end].trim_end_matches(['.', ',', ';', ':', '!', '?', '\'']);
    from + trimmed.len()
}

/// Replaces each link [`find_links`] finds with what `replace` returns for
/// it; `None` leaves that link as it is. The text between links is kept.
pub fn rewrite_links(text: &str, mut replace: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (range, link) in find_links(text) {
        if let Some(new) = replace(link) {
            out.push_str(&text[copied..range.start]);
            out.push_str(&new);
            copied = range.end;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm(source: &str, medium: &str, campaign: &str) -> Utm {
        Utm {
            source: Some(source.into()),
            medium: Some(medium.into()),
            campaign: Some(campaign.into()),
            ..Utm::default()
        }
    }

    fn links(text: &str) -> Vec<&str> {
        find_links(text).into_iter().map(|(_, link)| link).collect()
    }

    #[test]
    fn tag_appends_missing_parameters_and_keeps_existing_ones() {
        let tagged = tag(
            "https://shop.example/p/x?color=red&utm_source=creator",
            &utm("bluesky", "kol", "spring sale"),
        )
        .unwrap();
        assert_eq!(
            tagged,
            "https://shop.example/p/x?color=red&utm_source=creator&utm_medium=kol&utm_campaign=spring+sale"
        );
        let all = Utm {
            content: Some("post-42".into()),
            term: Some("café & co".into()),
            ..utm("newsletter", "email", "launch")
        };
        assert_eq!(
            tag("http://Shop.Example", &all).unwrap(),
            "http://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=launch&utm_content=post-42&utm_term=caf%C3%A9+%26+co"
        );
    }

    #[test]
    fn tag_keeps_fragments_and_skips_empty_values() {
        let partial = Utm {
            source: Some("mastodon".into()),
            medium: Some(String::new()),
            ..Utm::default()
        };
        assert_eq!(
            tag("https://a.example/x#top", &partial).unwrap(),
            "https://a.example/x?utm_source=mastodon#top"
        );
        assert_eq!(
            tag("https://a.example/x?", &partial).unwrap(),
            "https://a.example/x?utm_source=mastodon"
        );
        assert_eq!(
            tag("https://a.example/x?a=%20b", &Utm::default()).unwrap(),
            "https://a.example/x?a=%20b"
        );
        assert!(Utm::default().is_empty());
        assert!(!partial.is_empty());
    }

    #[test]
    fn tag_refuses_other_schemes_and_garbage() {
        assert_eq!(
            tag("ftp://files.example/x", &Utm::default()),
            Err(LinkError::Scheme {
                link: "ftp://files.example/x".into(),
                scheme: "ftp".into()
            })
        );
        let error = tag("javascript:alert(1)", &Utm::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "link \"javascript:alert(1)\": scheme \"javascript\" is not http or https"
        );
        assert!(matches!(
            tag("/relative/path", &Utm::default()),
            Err(LinkError::Invalid { .. })
        ));
        assert!(matches!(
            tag("https://", &Utm::default()),
            Err(LinkError::Invalid { .. })
        ));
    }

    #[test]
    fn with_click_id_appends_and_replaces_only_its_own_parameter() {
        assert_eq!(
            with_click_id("https://a.example/x", "c1").unwrap(),
            "https://a.example/x?clarion_cid=c1"
        );
        assert_eq!(
            with_click_id("https://a.example/x?a=%20b&utm_source=x#f", "c 2").unwrap(),
            "https://a.example/x?a=%20b&utm_source=x&clarion_cid=c+2#f"
        );
        assert_eq!(
            with_click_id("https://a.example/x?clarion_cid=old&a=1", "new").unwrap(),
            "https://a.example/x?a=1&clarion_cid=new"
        );
        assert_eq!(
            with_click_id("https://a.example/?clarion_cid=old", "new").unwrap(),
            "https://a.example/?clarion_cid=new"
        );
        assert!(matches!(
            with_click_id("mailto:a@b.example", "c"),
            Err(LinkError::Scheme { .. })
        ));
    }

    #[test]
    fn finds_links_in_plain_text() {
        let text = "New post: https://blog.example/a?b=1&c=2#d and http://old.example/x, enjoy!";
        let found = find_links(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].1, "https://blog.example/a?b=1&c=2#d");
        assert_eq!(&text[found[0].0.clone()], found[0].1);
        assert_eq!(found[1].1, "http://old.example/x");
        assert_eq!(
            links("HTTPS://BLOG.EXAMPLE/A"),
            vec!["HTTPS://BLOG.EXAMPLE/A"]
        );
    }

    #[test]
    fn drops_trailing_punctuation() {
        assert_eq!(
            links("Read https://blog.example/post."),
            vec!["https://blog.example/post"]
        );
        assert_eq!(
            links("Really?! https://a.example/x?!"),
            vec!["https://a.example/x"]
        );
        assert_eq!(links("'https://a.example/x'"), vec!["https://a.example/x"]);
        assert_eq!(
            links("\"https://a.example/x\""),
            vec!["https://a.example/x"]
        );
        assert_eq!(links("<https://a.example/x>"), vec!["https://a.example/x"]);
        // Punctuation inside the link stays.
        assert_eq!(
            links("https://a.example/v1.2/x,y"),
            vec!["https://a.example/v1.2/x,y"]
        );
    }

    #[test]
    fn handles_parentheses_and_markdown() {
        assert_eq!(links("[x](https://a.b/c)"), vec!["https://a.b/c"]);
        assert_eq!(
            links("[https://a.b/c](https://a.b/c)"),
            vec!["https://a.b/c", "https://a.b/c"]
        );
        assert_eq!(
            links("(see https://a.example/c)."),
            vec!["https://a.example/c"]
        );
        assert_eq!(
            links("Rust (https://en.wikipedia.org/wiki/Rust_(programming_language))"),
            vec!["https://en.wikipedia.org/wiki/Rust_(programming_language)"]
        );
        assert_eq!(
            links("http://[2001:db8::1]:8080/x"),
            vec!["http://[2001:db8::1]:8080/x"]
        );
    }

    #[test]
    fn handles_cjk_text_around_links() {
        let text =
            "詳しくはhttps://shop.example/新作ではなくhttps://shop.example/p?id=7をご覧ください。";
        assert_eq!(
            links(text),
            vec!["https://shop.example/", "https://shop.example/p?id=7"]
        );
        assert_eq!(
            links("链接：https://a.example/x，谢谢"),
            vec!["https://a.example/x"]
        );
        assert_eq!(
            links("（https://a.example/x）"),
            vec!["https://a.example/x"]
        );
    }

    #[test]
    fn ignores_non_links() {
        assert!(links("nothttps://a.example/x").is_empty());
        assert!(links("https:// nothing").is_empty());
        assert!(links("http://").is_empty());
        assert!(links("ftp://a.example/x and mailto:a@b.example").is_empty());
        assert!(links("the http protocol").is_empty());
        assert!(links("").is_empty());
    }

    #[test]
    fn rewrites_links_keeping_the_text() {
        let text = "見てね→https://shop.example/p?id=7。Also [here](https://shop.example/q). Skip https://other.example/";
        let rewritten = rewrite_links(text, |link| {
            if !link.starts_with("https://shop.example") {
                return None;
            }
            tag(link, &utm("bluesky", "social", "launch")).ok()
        });
        assert_eq!(
            rewritten,
            "見てね→https://shop.example/p?id=7&utm_source=bluesky&utm_medium=social&utm_campaign=launch。\
             Also [here](https://shop.example/q?utm_source=bluesky&utm_medium=social&utm_campaign=launch). \
             Skip https://other.example/"
        );
        assert_eq!(
            rewrite_links("no links here", |_| Some("x".into())),
            "no links here"
        );
    }
}

/// Characters of link codes and click ids: safe in a URL path or query
/// without encoding, and case-sensitive (62 per character).
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A random id of `len` characters (link codes, click ids), from the
/// thread's CSPRNG: not guessable from earlier ones.
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod random_id_tests {
    #[test]
    fn random_ids_have_the_length_and_alphabet_asked_and_differ() {
        let a = super::random_id(16);
        let b = super::random_id(16);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}
