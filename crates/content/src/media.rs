//! Attachments named in content: checked to exist, typed and measured when
//! the post is planned, so platform limits are checked before queueing.

use std::path::Path;

use clarion_core::Media;

/// Extensions [`mime_for`] knows. Knowing a type is not accepting it:
/// each channel's adapter says which types it takes (`media_rule`), and a
/// post is refused at plan time on a channel that does not take its media.
pub const KNOWN_EXTENSIONS: &[&str] = &[
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".mov", ".webm",
];

/// MIME type from the file extension.
pub fn mime_for(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        _ => return None,
    })
}

/// Describes a local file as an attachment, or says what is wrong with it.
pub fn describe(path: &Path, alt: String) -> Result<Media, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("media {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("media {}: not a file", path.display()));
    }
    let mime = mime_for(path).ok_or_else(|| {
        format!(
            "media {}: unknown type (known: {}; which of them a channel takes depends on the channel)",
            path.display(),
            KNOWN_EXTENSIONS.join(", ")
        )
    })?;
    Ok(Media {
        path: path.to_owned(),
        alt,
        mime: mime.to_owned(),
        bytes: meta.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_is_typed_and_measured() {
        let path = std::env::temp_dir().join(format!("clarion-media-{}.png", std::process::id()));
        std::fs::write(&path, [0u8; 10]).unwrap();
        let media = describe(&path, "a cat".into()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            (media.mime.as_str(), media.bytes, media.alt.as_str()),
            ("image/png", 10, "a cat")
        );
        assert!(
            describe(Path::new("/nonexistent/x.png"), String::new())
                .unwrap_err()
                .starts_with("media /nonexistent/x.png: ")
        );
        assert_eq!(mime_for(Path::new("a.txt")), None);
    }
}
