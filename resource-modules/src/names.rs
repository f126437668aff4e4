//! Python's rules for module names: identifiers, and the file names of extension modules.

/// Whether `name` is a valid Python identifier (one part of a dotted module name). Letters,
/// digits and underscores, not starting with a digit; non-ASCII letters are accepted as Python
/// accepts most of them.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first == '_' || first.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Splits an extension module file name into its module name and ABI tag:
/// `foo.cpython-311-x86_64-linux-gnu.so` → (`foo`, `Some("cpython-311-x86_64-linux-gnu")`).
pub fn split_extension_name(file_name: &str) -> Option<(&str, Option<&str>)> {
    let stem = file_name
        .strip_suffix(".so")
        .or_else(|| file_name.strip_suffix(".pyd"))?;
    let (name, tag) = match stem.split_once('.') {
        Some((name, tag)) => (name, Some(tag)),
        None => (stem, None),
    };
    (is_identifier(name) && tag.is_none_or(|t| !t.is_empty())).then_some((name, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "_x", "foo_bar2", "é"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "2a", "a-b", "a.b", "my script"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn extension_names_split_at_the_abi_tag() {
        assert_eq!(
            split_extension_name("_x.abi3.so"),
            Some(("_x", Some("abi3")))
        );
        assert_eq!(split_extension_name("x.so"), Some(("x", None)));
        assert_eq!(split_extension_name("libx.so.1"), None);
    }
}
