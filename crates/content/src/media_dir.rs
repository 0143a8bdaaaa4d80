//! The media folder (`media_dir`, default `<content_dir>/media`): the only
//! place media named through the HTTP API, a bulk import or the CLI may come
//! from, and where `POST /api/v1/media` stores uploads.
//!
//! A path is relative to the folder (`launch.png`, `uploads/…`) or absolute
//! and inside it. It is canonicalised (symlinks and `..` resolved) before
//! the check, and a path that is outside the folder, missing, or not a
//! plain file gets one and the same answer, so a caller learns nothing
//! about files elsewhere on the server.

use std::io::Write;
use std::path::{Path, PathBuf};

use clarion_core::Media;

use crate::media::mime_for;

/// Uploads go to this subfolder of the media folder.
pub const UPLOADS: &str = "uploads";

/// Longest upload file name kept (the extension included).
const MAX_NAME: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDir {
    root: PathBuf,
}

impl Default for MediaDir {
    /// `content/media`, matching the default `content_dir`.
    fn default() -> Self {
        Self::new("content/media")
    }
}

impl MediaDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A media item as a request names it: the path as given, its type from
    /// the extension. Nothing on disk is looked at (see [`Self::resolve`]).
    pub fn request(given: &Path, alt: String) -> Result<Media, String> {
        if given.as_os_str().is_empty() {
            return Err("`path` is empty: name a file in the media folder".to_owned());
        }
        let mime = mime_for(given).ok_or_else(|| unknown_type(given))?;
        Ok(Media {
            path: given.to_owned(),
            alt,
            mime: mime.to_owned(),
            bytes: 0,
        })
    }

    /// The file `media.path` names, if it is a file inside the folder:
    /// canonical path and size filled in. Every refusal reads the same.
    pub fn resolve(&self, media: &Media) -> Result<Media, String> {
        let given = &media.path;
        let mime = mime_for(given).ok_or_else(|| unknown_type(given))?;
        let root = self.root.canonicalize().map_err(|_| {
            format!(
                "the media folder {} does not exist: create it (or set media_dir), put the file there or upload it with POST /api/v1/media",
                self.root.display()
            )
        })?;
        let candidate = if given.is_absolute() {
            given.clone()
        } else {
            root.join(given)
        };
        let refused = || {
            format!(
                "`{}` is not a file in the media folder ({}): give a path inside it, relative to it, or upload the file with POST /api/v1/media",
                given.display(),
                self.root.display()
            )
        };
        let path = candidate.canonicalize().map_err(|_| refused())?;
        if !path.starts_with(&root) {
            return Err(refused());
        }
        let meta = std::fs::metadata(&path).map_err(|_| refused())?;
        if !meta.is_file() {
            return Err(refused());
        }
        Ok(Media {
            path,
            alt: media.alt.clone(),
            mime: mime.to_owned(),
            bytes: meta.len(),
        })
    }

    /// Stores an upload under `uploads/`, named `<hash>-<sanitised name>`
    /// so the same file uploaded twice lands on the same path and two
    /// different files never overwrite each other. Returns the path to give
    /// in a post's `media`, relative to the folder.
    pub fn store_upload(&self, file_name: &str, bytes: &[u8]) -> Result<String, String> {
        if bytes.is_empty() {
            return Err("the uploaded file is empty".to_owned());
        }
        let name = sanitise(file_name)?;
        let hash = clarion_core::hash::fnv1a64(bytes);
        let relative = format!("{UPLOADS}/{hash:016x}-{name}");
        let folder = self.root.join(UPLOADS);
        std::fs::create_dir_all(&folder).map_err(|e| {
            format!(
                "cannot create the upload folder {}: {}",
                folder.display(),
                e.kind()
            )
        })?;
        let target = self.root.join(&relative);
        match std::fs::read(&target) {
            Ok(existing) if existing == bytes => return Ok(relative),
            Ok(_) => {
                return Err(format!(
                    "`{name}`: a different file already has this name; rename it"
                ));
            }
            Err(_) => {}
        }
        // Written beside the target and renamed, so a half-written upload is
        // never visible under its final name.
        let partial = folder.join(format!(".partial-{hash:016x}-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&partial)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&partial, &target)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            format!("cannot store the upload: {}", e.kind())
        })?;
        Ok(relative)
    }
}

fn unknown_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!("`.{e}`"))
        .unwrap_or_else(|| "no extension".to_owned());
    format!(
        "`{}`: unknown media type ({ext}); known: {} (which of them a channel takes depends on the channel)",
        path.display(),
        crate::media::KNOWN_EXTENSIONS.join(", ")
    )
}

/// The last path component, reduced to `[A-Za-z0-9._-]`, no leading dot,
/// at most [`MAX_NAME`] characters, with a known media extension.
fn sanitise(file_name: &str) -> Result<String, String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(['.', '-']);
    let path = Path::new(cleaned);
    if mime_for(path).is_none() {
        return Err(unknown_type(Path::new(if base.is_empty() {
            "(no file name)"
        } else {
            base
        })));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let keep = MAX_NAME.saturating_sub(ext.len() + 1);
    let stem: String = stem.chars().take(keep).collect();
    let stem = if stem.is_empty() {
        "upload".to_owned()
    } else {
        stem
    };
    Ok(format!("{stem}.{ext}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use clarion_core::{
        AdapterRegistry, ChannelAdapter, ChannelCheck, ErrorClass, Idempotency, LengthRule,
        MediaRule, PublishError, PublishReceipt, PublishRequest,
    };

    use super::*;
    use crate::{ContentLibrary, PostSource, render_targets};

    fn folder() -> (PathBuf, MediaDir) {
        let base = std::env::temp_dir().join(format!(
            "clarion-media-dir-{}-{}",
            std::process::id(),
            clarion_core::hash::fnv1a64(format!("{:?}", std::thread::current().id()).as_bytes())
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("media/sub")).unwrap();
        std::fs::write(base.join("media/sub/cat.png"), [1u8; 7]).unwrap();
        std::fs::write(base.join("secret.png"), [2u8; 3]).unwrap();
        let dir = MediaDir::new(base.join("media"));
        (base, dir)
    }

    fn media(path: impl AsRef<Path>) -> Media {
        MediaDir::request(path.as_ref(), String::new()).unwrap()
    }

    #[test]
    fn inside_the_folder_is_measured_and_outside_is_refused_alike() {
        let (base, dir) = folder();
        let ok = dir.resolve(&media("sub/cat.png")).unwrap();
        assert_eq!(ok.bytes, 7);
        assert_eq!(ok.mime, "image/png");
        assert!(ok.path.is_absolute());
        let absolute = dir.resolve(&media(base.join("media/sub/cat.png"))).unwrap();
        assert_eq!(absolute.path, ok.path);

        // Outside (existing or not), `..`, a symlink out, a folder: one answer.
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret.png"), base.join("media/link.png")).unwrap();
        let refusal = |path: &str| {
            dir.resolve(&media(path))
                .unwrap_err()
                .replace(path, "<path>")
        };
        let existing_outside = refusal(base.join("secret.png").to_str().unwrap());
        for path in [
            base.join("missing.png").to_str().unwrap(),
            "../secret.png",
            "sub/../../secret.png",
            "/etc/passwd.png",
            "nope.png",
            #[cfg(unix)]
            "link.png",
        ] {
            assert_eq!(refusal(path), existing_outside, "{path}");
        }
        assert!(existing_outside.contains("is not a file in the media folder"));
        assert!(!existing_outside.contains("No such file"));
        std::fs::create_dir_all(base.join("media/dir.png")).unwrap();
        assert_eq!(refusal("dir.png"), existing_outside);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_type_comes_from_the_name_before_the_disk_is_looked_at() {
        let err = MediaDir::request(Path::new("/etc/passwd"), String::new()).unwrap_err();
        assert!(err.contains("unknown media type (no extension)"), "{err}");
        assert!(err.contains(".mp4"), "{err}");
        assert_eq!(
            MediaDir::request(Path::new("clip.MP4"), String::new())
                .unwrap()
                .mime,
            "video/mp4"
        );
    }

    #[test]
    fn uploads_are_sanitised_stored_once_and_resolvable() {
        let (base, dir) = folder();
        let path = dir
            .store_upload("../../evil dir/My Cat!.PNG", b"png-bytes")
            .unwrap();
        assert!(path.starts_with("uploads/"), "{path}");
        assert!(path.ends_with("-My-Cat-.png"), "{path}");
        assert_eq!(dir.store_upload("My Cat!.PNG", b"png-bytes").unwrap(), path);
        assert!(dir.store_upload("My Cat!.PNG", b"other").is_ok());
        let stored = dir.resolve(&media(&path)).unwrap();
        assert_eq!(stored.bytes, 9);
        assert!(
            dir.store_upload("notes.txt", b"x")
                .unwrap_err()
                .contains("unknown media type")
        );
        assert!(dir.store_upload("a.png", b"").is_err());
        assert_eq!(sanitise(".hidden.gif").unwrap(), "hidden.gif");
        assert!(sanitise(".png").unwrap_err().contains("unknown"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Images only, like every adapter that takes media today.
    #[derive(Debug)]
    struct Photos;

    #[async_trait]
    impl ChannelAdapter for Photos {
        fn kind(&self) -> &'static str {
            "photos"
        }
        fn length_rule(&self) -> LengthRule {
            LengthRule::unlimited()
        }
        fn idempotency(&self) -> Idempotency {
            Idempotency::None
        }
        fn media_rule(&self) -> MediaRule {
            MediaRule {
                max_count: 4,
                max_bytes: 1 << 20,
                mime_types: MediaRule::IMAGES,
            }
        }
        async fn publish(&self, _: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
            Err(PublishError::new(ErrorClass::Permanent, "test"))
        }
        async fn check(&self) -> Result<ChannelCheck, PublishError> {
            Err(PublishError::new(ErrorClass::Permanent, "test"))
        }
    }

    #[test]
    fn an_mp4_is_refused_at_plan_time_naming_the_channel_and_what_it_takes() {
        let mut registry = AdapterRegistry::default();
        registry.insert("gallery", Arc::new(Photos));
        let clip = Media {
            path: "clip.mp4".into(),
            alt: String::new(),
            mime: "video/mp4".into(),
            bytes: 10,
        };
        let source = |_: &str| PostSource {
            body: "watch".into(),
            media: vec![clip.clone()],
            ..Default::default()
        };
        let errors = render_targets(
            &ContentLibrary::empty(),
            source,
            &["gallery".to_owned()],
            &registry,
        )
        .unwrap_err();
        let text = errors[0].to_string();
        assert!(text.starts_with("channel `gallery`: "), "{text}");
        assert!(text.contains("video/mp4"), "{text}");
        assert!(
            text.contains("accepted: image/png, image/jpeg, image/gif, image/webp"),
            "{text}"
        );
    }
}
