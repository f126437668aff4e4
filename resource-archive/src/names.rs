//! The name rules, in one place: which entry names, symbolic link targets and extra tree names an
//! archive may hold. The writer asks the same questions as the reader, so that it refuses at
//! packing time what every worker would refuse later.

/// Whether a name holds a control character (a newline, say, or U+0085), which the archive reader
/// refuses.
pub(crate) fn has_control_character(name: &str) -> bool {
    name.chars().any(char::is_control)
}

/// Why an entry name cannot be created safely under the destination, if it cannot.
///
/// Refused: empty names, absolute names, empty, `.` and `..` components, NUL and other control
/// characters. A backslash is an ordinary character on Unix (as in Python's `zipfile` there).
pub(crate) fn entry_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name.starts_with('/') {
        return Some("absolute path");
    }
    if name.contains('\0') {
        return Some("NUL character");
    }
    if has_control_character(name) {
        return Some("control character");
    }
    let path = name.strip_suffix('/').unwrap_or(name);
    for component in path.split('/') {
        match component {
            "" => return Some("empty path component"),
            "." => return Some("`.` component"),
            ".." => return Some("`..` component"),
            _ => {}
        }
    }
    None
}

/// Why a symbolic link named `link` in the archive (a `/`-separated relative path) pointing to
/// `target` could lead outside the tree once extracted, whatever the file system says; `None` if
/// it cannot.
///
/// Accepted targets are relative, start with at most as many `..` components as the link has
/// parent directories in the archive, have no `..` after a normal component and no control
/// characters. Every link made this way resolves inside the tree, whatever other links it
/// passes through.
pub(crate) fn link_target_problem(link: &str, target: &[u8]) -> Option<&'static str> {
    if target.is_empty() {
        return Some("the target is empty");
    }
    if target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Some("the target holds a control character");
    }
    if target.first() == Some(&b'/') {
        return Some("the target is absolute");
    }
    let depth = link.matches('/').count();
    let mut ups = 0;
    let mut descended = false;
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if descended => return Some("the target climbs with `..` after descending"),
            b".." => {
                ups += 1;
                if ups > depth {
                    return Some("the target climbs above the archive root");
                }
            }
            _ => descended = true,
        }
    }
    None
}

/// The name an extra tree takes in the archive, without leading and trailing `/`; `None` when
/// that is empty or has an empty, `.` or `..` component.
pub(crate) fn extra_tree_name(archive_name: &str) -> Option<&str> {
    let name = archive_name.trim_matches('/');
    let refused = name.is_empty()
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    (!refused).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_refused_for_the_right_reason() {
        for (name, problem) in [
            ("a/b.py", None),
            ("dir/", None),
            ("back\\slash", None),
            ("", Some("empty name")),
            ("/etc/passwd", Some("absolute path")),
            ("../x", Some("`..` component")),
            ("a/../../x", Some("`..` component")),
            ("a/./b", Some("`.` component")),
            ("a//b", Some("empty path component")),
            ("a//", Some("empty path component")),
            ("a\0b", Some("NUL character")),
            ("a\u{1}b", Some("control character")),
            ("a\u{85}b", Some("control character")),
        ] {
            assert_eq!(entry_name_problem(name), problem, "{name:?}");
        }
    }

    #[test]
    fn link_targets_must_stay_below_the_archive_root() {
        let check = |target: &str, depth: usize, escapes: bool| {
            let link = format!("{}link", "dir/".repeat(depth));
            assert_eq!(
                link_target_problem(&link, target.as_bytes()).is_some(),
                escapes,
                "{target} at depth {depth}"
            );
        };
        check("b", 0, false);
        check("./b/c", 0, false);
        check("../b", 0, true);
        check("../b", 1, false);
        check("../../b/c", 2, false);
        check("..", 0, true);
        check("../..", 1, true);
        check("sub/../b", 3, true);
        check("/etc/passwd", 3, true);
        check("b\nc", 0, true);
        check("", 0, true);
    }

    #[test]
    fn symlink_targets_must_stay_inside() {
        for (link, target, ok) in [
            ("a", "b", true),
            ("a", "./b/c", true),
            ("d/a", "../b", true),
            ("d/e/a", "../../b/c", true),
            ("a", "..", false),
            ("a", "../a", false),
            ("d/a", "../..", false),
            ("a", "/etc/passwd", false),
            ("a", "b/../c", false),
            ("a", "", false),
            ("a", "b\nc", false),
        ] {
            assert_eq!(
                link_target_problem(link, target.as_bytes()).is_none(),
                ok,
                "{link} -> {target}"
            );
        }
    }

    #[test]
    fn extra_tree_names_are_trimmed_or_refused() {
        assert_eq!(extra_tree_name("/ns/sub/"), Some("ns/sub"));
        assert_eq!(extra_tree_name("tool.py"), Some("tool.py"));
        for refused in ["", "/", "a//b", "./a", "a/..", ".."] {
            assert_eq!(extra_tree_name(refused), None, "{refused:?}");
        }
    }
}
