//! The registry: how a leader hands resources to its child processes through environment variables.
//!
//! `JTRES_ROOT` names the worker's directory of local copies; `JTRES_<pathHash>` holds the wire form
//! of the resource made from a leader path. This module builds those pairs and reads them from a set
//! of variables given by the caller. It never reads or changes the process environment itself.

use std::path::Path;

use crate::hash::PathHash;
use crate::resource::Resource;
use crate::wire::{self, WireError};

/// The variable naming the worker's directory of local copies (Toil's `rootDirPathEnvName`).
pub const ROOT_VAR: &str = "JTRES_ROOT";

/// The prefix of every resource variable (Toil's `resourceEnvNamePrefix`).
pub const RESOURCE_VAR_PREFIX: &str = "JTRES_";

/// Why a registered resource could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The variable's value is not a valid wire form.
    #[error("{var} does not hold a valid resource")]
    Malformed {
        /// The variable that was read.
        var: String,
        /// Why its value was refused.
        #[source]
        source: WireError,
    },
    /// The variable holds a resource for another leader path.
    #[error(
        "{var} holds a resource whose pathHash is {found}, not the {expected} of {path}; \
         the variable was copied or edited by hand"
    )]
    PathHashMismatch {
        /// The variable that was read.
        var: String,
        /// The leader path looked up.
        path: String,
        /// The hash of that path.
        expected: PathHash,
        /// The hash in the variable's value.
        found: PathHash,
    },
}

/// The name of the variable holding the resource for a path hash: `JTRES_<pathHash>`.
pub fn resource_var(path_hash: &PathHash) -> String {
    format!("{RESOURCE_VAR_PREFIX}{path_hash}")
}

/// The `(name, value)` pair that registers a resource (Toil's `Resource.register()`).
pub fn entry(resource: &Resource) -> (String, String) {
    (resource_var(&resource.path_hash), wire::encode(resource))
}

/// Finds the resource registered for a leader path among the variables that `vars` returns
/// (Toil's `Resource.lookup()`).
///
/// `Ok(None)` means nothing is registered for the path, which is not an error.
///
/// ```
/// use std::collections::HashMap;
/// use std::path::Path;
/// use resource_core::{registry, ContentHash, PathHash, Resource, ResourceKind};
///
/// let path = Path::new("/home/me/flow.py");
/// let resource = Resource {
///     kind: ResourceKind::File,
///     name: "flow.py".into(),
///     path_hash: PathHash::of_path(path),
///     url: "file:/store/shared/x".into(),
///     content_hash: ContentHash::of_bytes(b"print(1)\n"),
/// };
/// let vars: HashMap<String, String> = [registry::entry(&resource)].into();
/// let found = registry::lookup(path, |name| vars.get(name).cloned())?;
/// assert_eq!(found, Some(resource));
/// assert_eq!(registry::lookup(Path::new("/other"), |name| vars.get(name).cloned())?, None);
/// # Ok::<(), registry::LookupError>(())
/// ```
pub fn lookup(
    leader_path: &Path,
    vars: impl Fn(&str) -> Option<String>,
) -> Result<Option<Resource>, LookupError> {
    let expected = PathHash::of_path(leader_path);
    let var = resource_var(&expected);
    let Some(value) = vars(&var) else {
        return Ok(None);
    };
    let resource = wire::decode(&value).map_err(|source| LookupError::Malformed {
        var: var.clone(),
        source,
    })?;
    if resource.path_hash != expected {
        return Err(LookupError::PathHashMismatch {
            var,
            path: leader_path.display().to_string(),
            expected,
            found: resource.path_hash,
        });
    }
    Ok(Some(resource))
}

/// Quotes a value for a POSIX shell: single quotes, with each `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for ch in value.chars() {
        if ch == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(ch);
        }
    }
    out.push('\'');
    out
}

/// A line that a POSIX shell can `eval` to set a variable: `export NAME='value'`.
pub fn export_line(name: &str, value: &str) -> String {
    format!("export {name}={}", shell_quote(value))
}
