//! Lexical path arithmetic: resolving `.` and `..` as a shell user reads a path, without touching
//! the file system (so symbolic links are not followed).

use std::path::{Component, Path, PathBuf};

/// Resolves `.` and `..` components without touching the file system, like Python's
/// `os.path.normpath`: a `..` removes the component before it, a `..` at the root stays at the
/// root, and the leading `..` of a relative path are kept. Repeated and trailing separators go.
///
/// ```
/// use std::path::Path;
/// use resource_core::paths::normalize_lexically;
///
/// assert_eq!(normalize_lexically(Path::new("/usr/../tmp/")), Path::new("/tmp"));
/// assert_eq!(normalize_lexically(Path::new("/..")), Path::new("/"));
/// assert_eq!(normalize_lexically(Path::new("../a/./b/..")), Path::new("../a"));
/// ```
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if matches!(normal.components().next_back(), Some(Component::Normal(_))) {
                    normal.pop();
                } else if !normal.has_root() {
                    normal.push(component);
                }
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// Joins `path` to `base` and normalises the result lexically, like Python's
/// `os.path.normpath(os.path.join(base, path))`: an absolute `path` replaces `base`.
///
/// ```
/// use std::path::Path;
/// use resource_core::paths::normalize_join;
///
/// let site = Path::new("/venv/lib/python3.12/site-packages");
/// assert_eq!(normalize_join(site, Path::new("../../../src")), Path::new("/venv/src"));
/// assert_eq!(normalize_join(site, Path::new("/opt/x/.")), Path::new("/opt/x"));
/// ```
pub fn normalize_join(base: &Path, path: &Path) -> PathBuf {
    normalize_lexically(&base.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalization_resolves_dots_and_trailing_slashes() {
        let check = |input: &str, expected: &str| {
            assert_eq!(
                normalize_lexically(Path::new(input)),
                Path::new(expected),
                "{input}"
            );
        };
        check("/usr/../tmp", "/tmp");
        check("/tmp/", "/tmp");
        check("/tmp/./", "/tmp");
        check("/..", "/");
        check("/a/b/../../..", "/");
        check("/a//b/", "/a/b");
        check("a/../..", "..");
        check("../../a", "../../a");
        check("./a/./b", "a/b");
        check(".", "");
    }

    #[test]
    fn joining_normalizes_the_joined_path() {
        assert_eq!(
            normalize_join(Path::new("/s/site"), Path::new("../src/./x/../x")),
            Path::new("/s/src/x")
        );
        assert_eq!(
            normalize_join(Path::new("/s/site"), Path::new("/elsewhere/../x")),
            Path::new("/x")
        );
    }
}
