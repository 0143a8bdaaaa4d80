//! One error type for everything content does, shaped for `file:line` output.

use std::fmt;

/// A content problem, located as precisely as known.
///
/// Displays as `FILE:LINE: channel `NAME`: MESSAGE`, leaving out the parts
/// that are not known, so editors and CI logs can jump to the spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentError {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub channel: Option<String>,
    pub message: String,
}

impl ContentError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            channel: None,
            message: message.into(),
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn at_line(mut self, line: impl Into<Option<usize>>) -> Self {
        self.line = line.into();
        self
    }

    pub fn for_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            // Without a file a bare number would read as part of the message.
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(channel) = &self.channel {
            write!(f, "channel `{channel}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ContentError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let full = ContentError::new("text is 612 characters long; the limit is 500")
            .in_file("content/posts/a.md")
            .at_line(7)
            .for_channel("x");
        assert_eq!(
            full.to_string(),
            "content/posts/a.md:7: channel `x`: text is 612 characters long; the limit is 500"
        );
        assert_eq!(ContentError::new("boom").to_string(), "boom");
        assert_eq!(
            ContentError::new("boom").in_file("a.md").to_string(),
            "a.md: boom"
        );
        assert_eq!(
            ContentError::new("boom")
                .at_line(3)
                .for_channel("c")
                .to_string(),
            "line 3: channel `c`: boom"
        );
    }
}
