//! Pure types and hashing for shipping user code to worker nodes, compatible with Toil's
//! `toil.resource`.
//!
//! A leader turns a path into a [`Resource`]: its kind, base name, the MD5 of the leader path
//! ([`PathHash`]), the URL where the stored bytes live, and the MD5 of those bytes
//! ([`ContentHash`]). It registers the resource for child processes as the variable
//! `JTRES_<pathHash>` holding Toil's [wire form](wire), and a worker looks it up by the same path.
//!
//! This crate is synchronous and free of storage and network code, so any project can compute
//! hashes, read and write the wire form and registry, and describe modules. The archives of
//! directory resources are written and read by the `resource-archive` crate, built on this one.
//!
//! ```
//! use std::collections::HashMap;
//! use std::io::Write;
//! use std::path::Path;
//! use resource_core::{hash::HashingWriter, registry, PathHash, Resource, ResourceKind};
//!
//! // The leader stores the bytes, hashing them on the way.
//! let mut stored = HashingWriter::new(Vec::new());
//! stored.write_all(b"def main(): pass\n")?;
//! let (_bytes, content_hash) = stored.finish()?;
//!
//! let leader_path = Path::new("/home/me/flow.py");
//! let resource = Resource {
//!     kind: ResourceKind::File,
//!     name: "flow.py".into(),
//!     path_hash: PathHash::of_path(leader_path),
//!     url: "file:/jobstore/shared/0e8d2b5b1d1a0a4b0a8e36d3b1a3c3b0".into(),
//!     content_hash,
//! };
//!
//! // The leader hands the variable to its children ...
//! let (name, value) = registry::entry(&resource);
//! assert!(value.starts_with("toil.resource.FileResource:[\"flow.py\", "));
//! let environment: HashMap<String, String> = [(name, value)].into();
//!
//! // ... and a worker finds it by the leader's path.
//! let found = registry::lookup(leader_path, |var| environment.get(var).cloned())?;
//! assert_eq!(found.as_ref(), Some(&resource));
//! assert!(resource.local_path(Path::new("/worker/root")).ends_with("flow.py"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod hash;
pub mod kind;
pub mod module;
pub mod paths;
pub mod registry;
pub mod report;
pub mod resource;
pub mod wire;

pub use hash::{ContentHash, HashParseError, PathHash};
pub use kind::ResourceKind;
pub use module::ModuleDescriptor;
pub use resource::Resource;
