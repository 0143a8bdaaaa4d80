//! Post identity: the `id` in a post file's front matter.
//!
//! A post is found by its id, not by its file name, so a renamed or moved
//! file updates the same post. `content sync` writes an id into a file that
//! has none, changing nothing else in it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{ContentError, PostFile, parse_post_file};

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 64;

/// 1 to 64 ASCII letters, digits, `-` or `_`: safe in TOML, in a file name
/// and in a command line, and never mistaken for a path.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Two files with the same id would be one post: each such file is an
/// error naming the other one (a copied file keeps its original's id).
pub fn check_ids(files: &[PostFile]) -> Vec<ContentError> {
    let mut first: BTreeMap<&str, &PostFile> = BTreeMap::new();
    let mut errors = Vec::new();
    for file in files {
        let Some(id) = file.id.as_deref() else {
            continue;
        };
        match first.get(id) {
            None => {
                first.insert(id, file);
            }
            Some(other) => errors.push(
                ContentError::new(format!(
                    "id `{id}` is also the id of {}:{}; each post file needs its own id \
                     (a copied file keeps its original's: remove the `id` line from the copy \
                     and `content sync` gives it a new one)",
                    other.path, other.id_line
                ))
                .in_file(&file.path)
                .at_line(file.id_line),
            ),
        }
    }
    errors
}

/// `text` with `id = "<id>"` as the first line of its front matter. Every
/// other byte is kept as it was (the new line ends like the opening `+++`).
pub fn with_id(text: &str, id: &str) -> String {
    let first_end = text.find('\n').map_or(text.len(), |i| i + 1);
    let (opening, rest) = text.split_at(first_end);
    let eol = if opening.ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    // A file that is only `+++` (no newline) is invalid anyway; keep it parseable.
    let opening_eol = if opening.ends_with('\n') { "" } else { eol };
    format!("{opening}{opening_eol}id = \"{id}\"{eol}{rest}")
}

/// Writes `id` into the post file `file` was parsed from. The file must
/// still be what was validated (else nothing is written: run sync again);
/// it is replaced whole (a new file renamed over it), so a crash leaves
/// either the old file or the new one.
pub fn write_id(file: &PostFile, id: &str) -> Result<(), ContentError> {
    let fail = |message: String| ContentError::new(message).in_file(&file.path);
    if !is_valid_id(id) {
        return Err(fail(format!("cannot write id {id:?}: not a valid id")));
    }
    let path = Path::new(&file.path);
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read post file: {e}")))?;
    let now = parse_post_file(&file.path, &file.relative_path, &text);
    // Compare as UTC-read files: `at` may have been read in another zone.
    let same = now.is_ok_and(|now| now.id.is_none() && PostFile { at: file.at, ..now } == *file);
    if !same {
        return Err(fail(
            "the file changed while `content sync` ran; nothing was written, run it again"
                .to_owned(),
        ));
    }
    let updated = with_id(&text, id);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.clarion-id"));
    let written = std::fs::write(&temp, updated)
        .and_then(|()| {
            let permissions = std::fs::metadata(path)?.permissions();
            std::fs::set_permissions(&temp, permissions)
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(format!(
            "cannot write the post's id into the file: {e}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str, text: &str) -> PostFile {
        parse_post_file(path, path, text).unwrap()
    }

    #[test]
    fn ids_are_short_and_plain() {
        assert!(is_valid_id("launch-2027_a"));
        assert!(is_valid_id(&"a".repeat(64)));
        for bad in ["", "a b", "a.md", "2026/launch", "é", "\"", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_id_is_read_with_its_line_and_checked() {
        let post = parse(
            "a.md",
            "+++\nat = 2027-01-01T00:00:00Z\n\nid = \"launch\"\nchannels = [\"x\"]\n+++\nhi\n",
        );
        assert_eq!((post.id.as_deref(), post.id_line), (Some("launch"), 4));
        let err = parse_post_file(
            "a.md",
            "a.md",
            "+++\nid = \"no spaces\"\nat = 2027-01-01T00:00:00Z\nchannels = [\"x\"]\n+++\nhi\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(
            err.message
                .starts_with("`id` = \"no spaces\" must be 1 to 64 letters"),
            "{err}"
        );
    }

    #[test]
    fn two_files_with_one_id_are_refused_naming_both() {
        let text = |id: &str| {
            format!("+++\nat = 2027-01-01T00:00:00Z\nchannels = [\"x\"]\nid = \"{id}\"\n+++\nhi\n")
        };
        let files = [
            parse("posts/a.md", &text("one")),
            parse("posts/b.md", &text("two")),
            parse("posts/copy-of-a.md", &text("one")),
            parse(
                "posts/new.md",
                "+++\nat = 2027-01-01T00:00:00Z\nchannels = [\"x\"]\n+++\nhi\n",
            ),
        ];
        let errors: Vec<String> = check_ids(&files).iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "posts/copy-of-a.md:4: id `one` is also the id of posts/a.md:4; \
                 each post file needs its own id"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn with_id_adds_one_line_and_keeps_every_other_byte() {
        let text = "+++\n# a comment\nat = 2027-01-01T00:00:00Z  # trailing\nchannels = [\"x\"]\n[vars]\nname = 'A'\n+++\n\nBody  \n\n";
        let updated = with_id(text, "k3v9");
        assert_eq!(updated, format!("+++\nid = \"k3v9\"\n{}", &text[4..]));
        let post = parse("a.md", &updated);
        assert_eq!((post.id.as_deref(), post.id_line), (Some("k3v9"), 2));
        assert_eq!(post.body, "Body");

        let crlf =
            "\u{feff}+++\r\nat = 2027-01-01T00:00:00Z\r\nchannels = [\"x\"]\r\n+++\r\nhi\r\n";
        let updated = with_id(crlf, "x1");
        assert_eq!(
            updated,
            "\u{feff}+++\r\nid = \"x1\"\r\nat = 2027-01-01T00:00:00Z\r\nchannels = [\"x\"]\r\n+++\r\nhi\r\n"
        );
        assert_eq!(parse("a.md", &updated).id.as_deref(), Some("x1"));
    }

    #[test]
    fn write_id_rewrites_the_file_only_if_it_is_unchanged() {
        let dir = std::env::temp_dir().join(format!("clarion-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.md");
        let text = "+++\nat = 2027-01-01T00:00:00Z\nchannels = [\"x\"]\n+++\nhi\n";
        std::fs::write(&path, text).unwrap();
        let shown = path.display().to_string();
        let file = parse_post_file(&shown, "a.md", text).unwrap();

        write_id(&file, "abc").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("+++\nid = \"abc\"\n{}", &text[4..])
        );
        let entries = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(entries, 1, "no temporary file is left behind");

        // Now the file has an id (or was edited): it is not what was validated.
        let err = write_id(&file, "def").unwrap_err();
        assert!(err.message.contains("changed while"), "{err}");
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"abc\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
