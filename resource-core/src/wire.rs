//! Toil's wire form of a resource: `toil.resource.<Kind>:<json>`.
//!
//! The JSON is exactly what Python's `json.dumps` prints for the 4-element list
//! `[name, pathHash, url, contentHash]`: `", "` between items, every character outside printable
//! ASCII escaped as `\uXXXX` (lowercase hex, astral characters as surrogate pairs), `/` left alone.

use crate::hash::{ContentHash, HashParseError, PathHash};
use crate::kind::ResourceKind;
use crate::resource::Resource;

/// Why a string is not a valid wire form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// There is no `:` between the class name and the JSON.
    #[error("no ':' between the class name and the JSON in {0:?}")]
    MissingSeparator(String),
    /// The class name is not one of Toil's resource classes.
    #[error(
        "unknown resource class {0:?}; expected toil.resource.FileResource, \
         toil.resource.DirectoryResource or toil.resource.VirtualEnvResource"
    )]
    UnknownClass(String),
    /// The part after the class name is not valid JSON.
    #[error("the resource's JSON is invalid")]
    InvalidJson(#[source] serde_json::Error),
    /// The JSON is not a list.
    #[error("the resource's JSON is not a list")]
    NotAList,
    /// The list does not have exactly four items.
    #[error(
        "the resource's JSON list has {0} items; expected 4 (name, pathHash, url, contentHash)"
    )]
    WrongFieldCount(usize),
    /// An item of the list is not a string.
    #[error("the resource's field {field} is not a string")]
    NotAString {
        /// The name of the field.
        field: &'static str,
    },
    /// A hash field is not 32 lowercase hex digits.
    #[error("the resource's {field} is malformed")]
    InvalidHash {
        /// `pathHash` or `contentHash`.
        field: &'static str,
        /// Why the hash was refused.
        #[source]
        source: HashParseError,
    },
}

/// Encodes a string as Python's `json.dumps` does with its default `ensure_ascii=True`.
pub fn python_json_string(value: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The JSON Toil puts after the class name: `json.dumps([name, pathHash, url, contentHash])`.
pub fn resource_json(resource: &Resource) -> String {
    let mut out = String::with_capacity(96 + resource.name.len() + resource.url.len());
    out.push('[');
    python_json_string(&resource.name, &mut out);
    out.push_str(", ");
    python_json_string(resource.path_hash.as_str(), &mut out);
    out.push_str(", ");
    python_json_string(&resource.url, &mut out);
    out.push_str(", ");
    python_json_string(resource.content_hash.as_str(), &mut out);
    out.push(']');
    out
}

/// The wire form of a resource, byte-identical to Toil's `Resource.pickle()`.
///
/// ```
/// use resource_core::{Resource, ResourceKind};
///
/// let resource = Resource {
///     kind: ResourceKind::File,
///     name: "café.py".into(),
///     path_hash: "0123456789abcdef0123456789abcdef".parse()?,
///     url: "file:/store/shared/0123456789abcdef0123456789abcdef".into(),
///     content_hash: "fedcba9876543210fedcba9876543210".parse()?,
/// };
/// let wire = resource_core::wire::encode(&resource);
/// assert!(wire.starts_with(r#"toil.resource.FileResource:["caf\u00e9.py", "0123"#));
/// assert_eq!(resource_core::wire::decode(&wire)?, resource);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(resource: &Resource) -> String {
    let mut out = String::from(resource.kind.toil_class());
    out.push(':');
    out.push_str(&resource_json(resource));
    out
}

/// Decodes a wire form, accepting any valid JSON spacing (Toil's `Resource.unpickle()`).
pub fn decode(wire: &str) -> Result<Resource, WireError> {
    let (class, json) = wire
        .split_once(':')
        .ok_or_else(|| WireError::MissingSeparator(wire.to_owned()))?;
    let kind = ResourceKind::from_toil_class(class)
        .ok_or_else(|| WireError::UnknownClass(class.into()))?;
    let value: serde_json::Value = serde_json::from_str(json).map_err(WireError::InvalidJson)?;
    let serde_json::Value::Array(items) = value else {
        return Err(WireError::NotAList);
    };
    let [name, path_hash, url, content_hash]: [serde_json::Value; 4] = items
        .try_into()
        .map_err(|items: Vec<_>| WireError::WrongFieldCount(items.len()))?;
    let string = |value: serde_json::Value, field: &'static str| match value {
        serde_json::Value::String(text) => Ok(text),
        _ => Err(WireError::NotAString { field }),
    };
    let name = string(name, "name")?;
    let path_hash: PathHash = string(path_hash, "pathHash")?
        .try_into()
        .map_err(|source| WireError::InvalidHash {
            field: "pathHash",
            source,
        })?;
    let url = string(url, "url")?;
    let content_hash: ContentHash =
        string(content_hash, "contentHash")?
            .try_into()
            .map_err(|source| WireError::InvalidHash {
                field: "contentHash",
                source,
            })?;
    Ok(Resource {
        kind,
        name,
        path_hash,
        url,
        content_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(value: &str) -> String {
        let mut out = String::new();
        python_json_string(value, &mut out);
        out
    }

    #[test]
    fn escapes_like_python() {
        let check = |input: &str, expected: &str| assert_eq!(json_of(input), expected, "{input:?}");
        check("a/b c", r#""a/b c""#);
        check("\"\\", r#""\"\\""#);
        check("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#);
        check("\u{0}\u{1f}\u{7f}", r#""\u0000\u001f\u007f""#);
        check("é€", r#""\u00e9\u20ac""#);
        check("😀", r#""\ud83d\ude00""#);
    }

    fn sample() -> Resource {
        Resource {
            kind: ResourceKind::Directory,
            name: "pkg".into(),
            path_hash: PathHash::of_bytes(b"/x/pkg"),
            url: "file:/s/shared/x".into(),
            content_hash: ContentHash::of_bytes(b"zip"),
        }
    }

    #[test]
    fn decode_accepts_any_spacing() {
        let resource = sample();
        let spaced = format!(
            "toil.resource.DirectoryResource: [ \"pkg\" ,\n\"{}\",\t\"file:/s/shared/x\",\"{}\" ] ",
            resource.path_hash, resource.content_hash
        );
        assert_eq!(decode(&spaced).ok(), Some(resource));
    }

    #[test]
    fn decode_errors_are_typed() {
        let hash = "0123456789abcdef0123456789abcdef";
        let check = |input: String, matches: fn(&WireError) -> bool| {
            let error = decode(&input).err();
            assert!(error.as_ref().is_some_and(matches), "{input}: {error:?}");
        };
        check("no separator".into(), |e| {
            matches!(e, WireError::MissingSeparator(_))
        });
        check(
            format!("toil.resource.Bogus:[\"a\", \"{hash}\", \"u\", \"{hash}\"]"),
            |e| matches!(e, WireError::UnknownClass(_)),
        );
        check(
            format!("toil.resource.FileResource:[\"a\", \"{hash}\", \"u\"]"),
            |e| matches!(e, WireError::WrongFieldCount(3)),
        );
        check(
            format!("toil.resource.FileResource:[\"a\", \"{hash}\", \"u\", \"{hash}\", 1]"),
            |e| matches!(e, WireError::WrongFieldCount(5)),
        );
        check(
            format!("toil.resource.FileResource:[\"a\", \"XYZ\", \"u\", \"{hash}\"]"),
            |e| {
                matches!(
                    e,
                    WireError::InvalidHash {
                        field: "pathHash",
                        ..
                    }
                )
            },
        );
        check(
            format!("toil.resource.FileResource:[\"a\", \"{hash}\", \"u\", \"\"]"),
            |e| {
                matches!(
                    e,
                    WireError::InvalidHash {
                        field: "contentHash",
                        ..
                    }
                )
            },
        );
        check("toil.resource.FileResource:[\"a\",".into(), |e| {
            matches!(e, WireError::InvalidJson(_))
        });
        check("toil.resource.FileResource:{}".into(), |e| {
            matches!(e, WireError::NotAList)
        });
        check(
            format!("toil.resource.FileResource:[1, \"{hash}\", \"u\", \"{hash}\"]"),
            |e| matches!(e, WireError::NotAString { field: "name" }),
        );
    }
}
