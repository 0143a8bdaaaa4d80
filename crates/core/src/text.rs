//! Text length counted the way each platform counts it.

use unicode_segmentation::UnicodeSegmentation;

use crate::ValidationError;

/// The unit a platform counts its text limit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// Unicode scalar values (Discord, LinkedIn).
    Chars,
    /// Extended grapheme clusters (Bluesky).
    Graphemes,
    /// UTF-16 code units (Telegram).
    Utf16,
    /// Characters, with every URL counting as 23 (Mastodon).
    CharsUrl23,
    /// X's weighted count: CJK and emoji weigh 2, each URL 23.
    XWeighted,
}

/// A platform's text limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthRule {
    pub max: usize,
    pub unit: LengthUnit,
}

impl LengthRule {
    pub const fn new(max: usize, unit: LengthUnit) -> Self {
        Self { max, unit }
    }

    /// No practical limit (webhooks, files).
    pub const fn unlimited() -> Self {
        Self::new(usize::MAX, LengthUnit::Chars)
    }

    pub fn count(&self, text: &str) -> usize {
        match self.unit {
            LengthUnit::Chars => text.chars().count(),
            LengthUnit::Graphemes => text.graphemes(true).count(),
            LengthUnit::Utf16 => text.encode_utf16().count(),
            LengthUnit::CharsUrl23 => count_with_urls(text, |w| w.chars().count()),
            LengthUnit::XWeighted => count_with_urls(text, |w| w.chars().map(x_weight).sum()),
        }
    }

    pub fn check(&self, text: &str) -> Result<(), ValidationError> {
        let count = self.count(text);
        if count > self.max {
            return Err(ValidationError::new(format!(
                "text is {count} {unit} long; the limit is {max}",
                unit = self.unit_name(),
                max = self.max
            )));
        }
        Ok(())
    }

    fn unit_name(&self) -> &'static str {
        match self.unit {
            LengthUnit::Chars => "characters",
            LengthUnit::Graphemes => "graphemes",
            LengthUnit::Utf16 => "UTF-16 code units",
            LengthUnit::CharsUrl23 => "characters (URLs count 23)",
            LengthUnit::XWeighted => "weighted characters (URLs count 23)",
        }
    }
}

fn is_url(word: &str) -> bool {
    word.starts_with("http://") || word.starts_with("https://")
}

/// Counts `text` with every whitespace-separated URL weighing 23.
fn count_with_urls(text: &str, count: impl Fn(&str) -> usize) -> usize {
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        total += count(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        total += if is_url(word) { 23 } else { count(word) };
        rest = &rest[end..];
    }
    total
}

/// X's twitter-text weights: these ranges weigh 1, everything else 2.
fn x_weight(c: char) -> usize {
    let cp = c as u32;
    let light = (0..=0x10FF).contains(&cp)
        || (0x2000..=0x200D).contains(&cp)
        || (0x2010..=0x201F).contains(&cp)
        || (0x2032..=0x2037).contains(&cp);
    if light { 1 } else { 2 }
}

/// Cuts `text` to at most `max` graphemes, ending with `…` when it was cut,
/// so an emoji or accented letter is never split.
pub fn truncate_graphemes(text: &str, max: usize) -> String {
    let graphemes: Vec<&str> = text.graphemes(true).collect();
    if graphemes.len() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = graphemes[..max - 1].concat();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphemes_count_a_family_emoji_once() {
        let rule = LengthRule::new(300, LengthUnit::Graphemes);
        assert_eq!(rule.count("hi 👨‍👩‍👧"), 4);
        assert_eq!(LengthRule::new(10, LengthUnit::Chars).count("👨‍👩‍👧"), 5);
    }

    #[test]
    fn utf16_counts_astral_characters_twice() {
        assert_eq!(LengthRule::new(4096, LengthUnit::Utf16).count("a😀"), 3);
    }

    #[test]
    fn urls_count_23_for_mastodon_and_x() {
        let text = "read https://example.com/a/very/long/path/that/goes/on/and/on now";
        let mastodon = LengthRule::new(500, LengthUnit::CharsUrl23);
        assert_eq!(mastodon.count(text), "read ".len() + 23 + " now".len());
        let x = LengthRule::new(280, LengthUnit::XWeighted);
        assert_eq!(x.count("日本"), 4);
        assert_eq!(x.count(text), mastodon.count(text));
    }

    #[test]
    fn check_names_count_and_limit() {
        let err = LengthRule::new(5, LengthUnit::Chars)
            .check("too long")
            .unwrap_err();
        assert_eq!(err.message, "text is 8 characters long; the limit is 5");
        assert!(
            LengthRule::new(8, LengthUnit::Chars)
                .check("too long")
                .is_ok()
        );
    }

    #[test]
    fn truncation_never_splits_a_grapheme() {
        assert_eq!(truncate_graphemes("héllo wörld", 5), "héll…");
        assert_eq!(truncate_graphemes("ab👨‍👩‍👧cd", 4), "ab👨‍👩‍👧…");
        assert_eq!(truncate_graphemes("short", 10), "short");
    }
}
