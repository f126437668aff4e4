//! Lexical path arithmetic, as Python's `os.path` does it (no file system access).

use std::path::{Component, Path, PathBuf};

/// Joins and normalises lexically, like `os.path.normpath(os.path.join(base, path))`.
pub(crate) fn normalize_join(base: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.join(path).components() {
        match component {
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push(component);
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_normalise_like_python() {
        assert_eq!(
            normalize_join(Path::new("/s/site"), Path::new("../src/./x/../x")),
            Path::new("/s/src/x")
        );
    }
}
