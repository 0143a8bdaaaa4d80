//! Finding content files on disk.

use std::path::{Path, PathBuf};

use crate::ContentError;

/// Every file under `dir` (recursively) whose name ends in `.{extension}`,
/// sorted by path so loading order and error order are stable. Directories
/// that cannot be read become errors; the rest is still returned.
pub(crate) fn find(dir: &Path, extension: &str) -> (Vec<PathBuf>, Vec<ContentError>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    walk(dir, extension, &mut found, &mut errors);
    found.sort();
    (found, errors)
}

fn walk(dir: &Path, extension: &str, found: &mut Vec<PathBuf>, errors: &mut Vec<ContentError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(
                ContentError::new(format!("cannot read directory: {e}")).in_file(display(dir)),
            );
            return;
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.push(
                    ContentError::new(format!("cannot read directory: {e}")).in_file(display(dir)),
                );
                continue;
            }
        };
        if path.is_dir() {
            walk(&path, extension, found, errors);
        } else if path.extension().is_some_and(|ext| ext == extension) {
            found.push(path);
        }
    }
}

pub(crate) fn display(path: &Path) -> String {
    path.display().to_string()
}
