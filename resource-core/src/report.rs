//! An error and its chain of causes as one line of text.

use std::error::Error;

/// The error and its chain of causes on one line, `what: cause: OS reason`, each cause once.
///
/// The workspace's errors keep their cause out of their message and in their `source`, so that
/// the chain says each thing once. Some errors from other crates (object_store's, for one) also
/// print their source in their message: a cause whose text the line already holds is skipped.
///
/// ```
/// use std::io;
/// #[derive(Debug, thiserror::Error)]
/// #[error("reading /data/flow.py failed")]
/// struct ReadFailed(#[source] io::Error);
///
/// let error = ReadFailed(io::Error::new(io::ErrorKind::NotFound, "No such file or directory"));
/// assert_eq!(
///     resource_core::report::error_chain(&error),
///     "reading /data/flow.py failed: No such file or directory"
/// );
/// ```
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("outer {0}")]
    struct Repeats(#[source] io::Error);

    #[test]
    fn a_cause_already_printed_by_its_parent_is_not_repeated() {
        let error = Repeats(io::Error::other("disk full"));
        assert_eq!(error_chain(&error), "outer disk full");
    }
}
