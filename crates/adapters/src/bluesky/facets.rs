//! Rich-text detection for Bluesky posts, and the deterministic record key.
//!
//! Bluesky renders links, mentions and hashtags only when the record carries
//! a facet for them, and facet offsets are UTF-8 *byte* offsets into `text`
//! (not characters, not UTF-16 units). Everything here is pure so the byte
//! arithmetic can be tested without a network.

use std::ops::Range;

use clarion_core::hash::fnv1a64;

/// What a span of text is, before mentions are resolved to DIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feature {
    /// `app.bsky.richtext.facet#link`.
    Link(String),
    /// A `@handle`; becomes `#mention {did}` once the handle resolves.
    Mention(String),
    /// `app.bsky.richtext.facet#tag`, without the leading `#`.
    Tag(String),
}

/// One detected span: `bytes` indexes the UTF-8 bytes of the text and
/// includes the `@` / `#` sigil, as the official client does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub bytes: Range<usize>,
    pub feature: Feature,
}

/// Trailing characters that end a sentence rather than a URL.
const URL_TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', '"', '\''];

/// Hashtags longer than this are not tags (lexicon: maxGraphemes 64).
const MAX_TAG_CHARS: usize = 64;

/// Finds links, mentions and hashtags, in text order, never overlapping.
pub(crate) fn detect(text: &str) -> Vec<Span> {
    let mut spans = links(text);
    let taken = spans.clone();
    let free = |r: &Range<usize>| {
        !taken
            .iter()
            .any(|s| r.start < s.bytes.end && s.bytes.start < r.end)
    };
    spans.extend(mentions(text).into_iter().filter(|s| free(&s.bytes)));
    spans.extend(tags(text).into_iter().filter(|s| free(&s.bytes)));
    spans.sort_by_key(|s| s.bytes.start);
    spans
}

/// Byte offsets where a token may begin: the start of the text or right
/// after whitespace (or `(`, so "(see https://x.y)" still links).
fn token_starts(text: &str, open_paren: bool) -> impl Iterator<Item = usize> + '_ {
    text.char_indices().filter_map(move |(i, _)| {
        let before = text[..i].chars().next_back();
        match before {
            None => Some(i),
            Some(c) if c.is_whitespace() || (open_paren && c == '(') => Some(i),
            _ => None,
        }
    })
}

/// End (exclusive) of the non-whitespace run starting at `start`.
fn word_end(text: &str, start: usize) -> usize {
    text[start..]
        .find(char::is_whitespace)
        .map_or(text.len(), |n| start + n)
}

fn links(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    for start in token_starts(text, true) {
        let rest = &text[start..];
        if !(rest.starts_with("https://") || rest.starts_with("http://")) {
            continue;
        }
        let mut end = word_end(text, start);
        // Trim sentence punctuation; keep a `)` that closes a `(` inside
        // the URL (Wikipedia-style paths).
        while let Some(last) = text[start..end].chars().next_back() {
            let url = &text[start..end];
            let unbalanced_paren = url.matches(')').count() > url.matches('(').count();
            if URL_TRAILING.contains(&last) && (last != ')' || unbalanced_paren) {
                end -= last.len_utf8();
            } else {
                break;
            }
        }
        let uri = &text[start..end];
        // A bare scheme ("https://") or a host-less string is not a link.
        let has_host = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(|h| !h.is_empty()))
            .unwrap_or(false);
        if has_host {
            out.push(Span {
                bytes: start..end,
                feature: Feature::Link(uri.to_owned()),
            });
        }
    }
    out
}

fn mentions(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    for start in token_starts(text, true) {
        if !text[start..].starts_with('@') {
            continue;
        }
        let body = start + 1;
        let len = text[body..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(text.len() - body);
        // "@alice.bsky.social." ends a sentence: the dot is not the handle's.
        let handle = text[body..body + len].trim_end_matches(['.', '-']);
        if is_handle(handle) {
            out.push(Span {
                bytes: start..body + handle.len(),
                feature: Feature::Mention(handle.to_owned()),
            });
        }
    }
    out
}

/// atproto handle syntax: at least two dot-separated labels of 1-63
/// ASCII letters, digits or inner hyphens; the last label starts with a
/// letter; 253 characters at most.
fn is_handle(handle: &str) -> bool {
    let labels: Vec<&str> = handle.split('.').collect();
    handle.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .and_then(|l| l.chars().next())
            .is_some_and(|c| c.is_ascii_alphabetic())
}

/// Punctuation that ends a sentence after a hashtag, ASCII and CJK.
fn is_tag_trailing(c: char) -> bool {
    c.is_ascii_punctuation() || matches!(c, '。' | '、' | '！' | '？' | '，' | '：' | '；' | '…')
}

fn tags(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    // Tags start only at the start of the text or after whitespace, so
    // "C#" and "page#anchor" are not tags.
    for start in token_starts(text, false) {
        let rest = &text[start..];
        let sigil = if rest.starts_with('#') {
            '#'
        } else if rest.starts_with('＃') {
            '＃'
        } else {
            continue;
        };
        let body = start + sigil.len_utf8();
        // "#️⃣" is the keycap emoji, not a tag.
        if text[body..].starts_with('\u{fe0f}') || text[body..].starts_with('\u{20e3}') {
            continue;
        }
        let end = word_end(text, body);
        let tag = text[body..end].trim_end_matches(is_tag_trailing);
        let all_digits = tag.chars().all(|c| c.is_ascii_digit());
        if tag.is_empty() || all_digits || tag.chars().count() > MAX_TAG_CHARS {
            continue;
        }
        out.push(Span {
            bytes: start..body + tag.len(),
            feature: Feature::Tag(tag.to_owned()),
        });
    }
    out
}

/// A record key for `app.bsky.feed.post`, derived from the message's
/// idempotency key and scheduled time, so every attempt of one message
/// names the same record and a resend is detectable.
///
/// Posts use the `tid` record-key type: 13 base32-sortable characters of a
/// 64-bit integer, top bit 0, then 53 bits of microseconds since the epoch
/// and 10 bits of clock id. Bluesky and other readers order posts by record
/// key, so the timestamp is the scheduled time (thread parts 10 µs apart, in
/// order), not a hash. The clock id comes from a hash of the key (FNV-1a 64:
/// stable across Rust versions) plus `probe`: a different post scheduled for
/// the same millisecond that took a key is skipped by trying the next probe.
pub(crate) fn record_key(idempotency_key: &str, scheduled_at_ms: i64, probe: u64) -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    let hash = fnv1a64(idempotency_key.as_bytes());
    // Thread parts after the first carry `<key>.<n>`.
    let part = idempotency_key
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .unwrap_or(0)
        .min(99);
    let micros = (scheduled_at_ms.max(0) as u64) * 1000 + part * 10 + hash % 10;
    let clock = ((hash >> 10) + probe) & 0x3ff;
    let n = ((micros << 10) | clock) & !(1u64 << 63);
    (0..13)
        .map(|i| {
            let shift = 5 * (12 - i);
            ALPHABET[((n >> shift) & 31) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(text: &str, span: &Span) -> String {
        String::from_utf8(text.as_bytes()[span.bytes.clone()].to_vec()).unwrap()
    }

    #[test]
    fn offsets_are_utf8_bytes_with_cjk_and_emoji() {
        let text = "日本語 👋🏽 #テスト https://example.com/ok.";
        let spans = detect(text);
        assert_eq!(
            spans,
            vec![
                Span {
                    bytes: 19..29,
                    feature: Feature::Tag("テスト".into())
                },
                Span {
                    bytes: 30..52,
                    feature: Feature::Link("https://example.com/ok".into())
                },
            ]
        );
        assert_eq!(slice(text, &spans[0]), "#テスト");
        assert_eq!(slice(text, &spans[1]), "https://example.com/ok");
    }

    #[test]
    fn mentions_include_the_at_sign_and_drop_a_sentence_dot() {
        let text = "ping 👋🏽 @alice.bsky.social. and (@bob.test) not mail@example.com";
        let spans = detect(text);
        let found: Vec<(String, Feature)> = spans
            .iter()
            .map(|s| (slice(text, s), s.feature.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "@alice.bsky.social".into(),
                    Feature::Mention("alice.bsky.social".into())
                ),
                ("@bob.test".into(), Feature::Mention("bob.test".into())),
            ]
        );
        assert_eq!(spans[0].bytes, 14..32);
    }

    #[test]
    fn handles_need_a_dot_and_a_letter_tld() {
        assert!(is_handle("alice.bsky.social"));
        assert!(!is_handle("alice"));
        assert!(!is_handle("alice.123"));
        assert!(!is_handle("-alice.test"));
        assert!(!is_handle("alice..test"));
    }

    #[test]
    fn links_keep_balanced_parens_and_need_a_host() {
        let text =
            "see (https://en.wikipedia.org/wiki/Rust_(language)), https:// and http://x.io/a?b=1!";
        let links: Vec<String> = detect(text).iter().map(|s| slice(text, s)).collect();
        assert_eq!(
            links,
            vec![
                "https://en.wikipedia.org/wiki/Rust_(language)",
                "http://x.io/a?b=1"
            ]
        );
    }

    #[test]
    fn hashtags_start_a_word_and_are_not_all_digits() {
        let text = "#rust C#sharp #2024 #2024年 #️⃣ #end! ＃全角 https://a.io/#frag";
        let tags: Vec<Feature> = detect(text)
            .into_iter()
            .filter(|s| matches!(s.feature, Feature::Tag(_)))
            .map(|s| s.feature)
            .collect();
        assert_eq!(
            tags,
            vec![
                Feature::Tag("rust".into()),
                Feature::Tag("2024年".into()),
                Feature::Tag("end".into()),
                Feature::Tag("全角".into()),
            ]
        );
    }

    #[test]
    fn text_without_features_has_no_spans() {
        assert_eq!(detect("just words, 100% plain."), vec![]);
        assert_eq!(detect(""), vec![]);
    }

    #[test]
    fn record_keys_are_valid_deterministic_tids_at_the_scheduled_time() {
        // Published FNV-1a 64 test vector, so the key never silently changes.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let at = 1_764_158_400_000; // 2025-11-26T12:00:00Z
        let key = record_key("5f0c7a1e-uuid", at, 0);
        assert_eq!(key, record_key("5f0c7a1e-uuid", at, 0));
        assert_eq!(key.len(), 13);
        assert!(
            key.chars()
                .all(|c| "234567abcdefghijklmnopqrstuvwxyz".contains(c)),
            "{key}"
        );
        // Decoding gives back the scheduled time (to the millisecond).
        let decode = |k: &str| {
            k.bytes().fold(0u64, |n, c| {
                (n << 5) | "234567abcdefghijklmnopqrstuvwxyz".find(c as char).unwrap() as u64
            })
        };
        assert_eq!((decode(&key) >> 10) / 1000, at as u64);
        // Thread parts sort after the first part; probes and other keys differ.
        let (one, two, three) = (
            key.clone(),
            record_key("5f0c7a1e-uuid.1", at, 0),
            record_key("5f0c7a1e-uuid.2", at, 0),
        );
        assert!(one < two && two < three, "{one} {two} {three}");
        assert_ne!(key, record_key("5f0c7a1e-uuid", at, 1));
        assert_ne!(key, record_key("another-key", at, 0));
    }
}
