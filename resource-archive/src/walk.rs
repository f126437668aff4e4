//! The planning walk: turns a directory into the sorted list of archive entries, checking every
//! path before a single byte of the archive is written.
//!
//! The walk applies Toil's layout rules (a package is rooted at its parent, a virtualenv at its
//! `site-packages`), refuses the roots Toil refuses, resolves symbolic links according to the
//! [`SymlinkPolicy`], applies the opt-in excludes, and refuses anything a worker could not
//! recreate (special files, dangling links, loops) or the writer could not read.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use resource_core::ResourceKind;
use resource_core::paths::normalize_lexically;

use crate::error::PackError;
use crate::format::{S_IFDIR, S_IFLNK, S_IFREG};
use crate::names::{extra_tree_name, has_control_character, link_target_problem};
use crate::options::{ExtraTree, PackOptions, SymlinkPolicy};

/// Directories Toil refuses to package outright; `/` and the home directory are refused too.
const DANGEROUS_ROOTS: [&str; 10] = [
    "/tmp", "/var", "/etc", "/bin", "/sbin", "/home", "/dev", "/sys", "/usr", "/run",
];

/// Permission bits kept in the archive; setuid, setgid and sticky bits are stripped.
const PERMISSION_BITS: u32 = 0o777;

/// What an entry of a [`PackPlan`](crate::PackPlan) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanEntryKind {
    /// A directory; its name ends with `/` and it has no content.
    Directory,
    /// A regular file of the given size, as measured while planning.
    File {
        /// The size in bytes.
        size: u64,
    },
    /// A symbolic link kept as a link ([`SymlinkPolicy::Keep`]); its content is the target.
    Symlink {
        /// The link target, relative and inside the packed tree.
        target: String,
    },
}

/// One entry of a [`PackPlan`](crate::PackPlan): its name in the archive and what the
/// archive records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    pub(crate) name: String,
    pub(crate) kind: PlanEntryKind,
    pub(crate) permissions: u32,
    pub(crate) mtime: i64,
    pub(crate) source_mtime: i64,
    /// Where the content is read from, for entries of an extra tree; `None` for the main tree,
    /// whose entries are found from their names.
    pub(crate) source: Option<PathBuf>,
}

impl PlanEntry {
    /// The entry name in the archive: `/`-separated, UTF-8, ending with `/` for a directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the entry holds.
    pub fn kind(&self) -> &PlanEntryKind {
        &self.kind
    }

    /// The permission bits recorded (`mode & 0o777`).
    pub fn permissions(&self) -> u32 {
        self.permissions
    }

    /// The full Unix mode recorded: file type bits and permission bits.
    pub fn unix_mode(&self) -> u32 {
        let file_type = match self.kind {
            PlanEntryKind::Directory => S_IFDIR,
            PlanEntryKind::File { .. } => S_IFREG,
            PlanEntryKind::Symlink { .. } => S_IFLNK,
        };
        file_type | self.permissions
    }

    /// The modification time recorded, in Unix seconds, after
    /// [`PackOptions::mtime_clamp`] was applied.
    pub fn mtime(&self) -> i64 {
        self.mtime
    }
}

/// The result of the planning walk.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The directory that was walked, made absolute (not canonical: links in it are kept).
    pub(crate) root: PathBuf,
    /// What every entry name starts with: `<package>/` for a package, else empty.
    pub(crate) prefix: String,
    /// The entries, sorted by the bytes of their names.
    pub(crate) entries: Vec<PlanEntry>,
}

/// Walks `path` as a resource of `kind` and returns its sorted entries, or the first problem found.
pub(crate) fn walk(
    path: &Path,
    kind: ResourceKind,
    options: &PackOptions,
) -> Result<Tree, PackError> {
    if !kind.is_archive() {
        return Err(PackError::NotAnArchiveKind { kind });
    }
    let root = std::path::absolute(path).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    let lexical = normalize_lexically(&root);
    refuse_dangerous_root(path, &root, &lexical, options)?;

    let root_metadata = fs::metadata(&root).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !root_metadata.is_dir() {
        return Err(PackError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let base_name = || {
        lexical
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| PackError::NonUtf8Name {
                path: path.to_owned(),
            })
    };
    let prefix = if kind == ResourceKind::VirtualEnv {
        if base_name()? != "site-packages" {
            return Err(PackError::NotSitePackages {
                path: path.to_owned(),
            });
        }
        String::new()
    } else {
        let init = root.join("__init__.py");
        let is_package = options.package_root
            || init
                .try_exists()
                .map_err(|source| PackError::Io { path: init, source })?;
        if is_package {
            format!("{}/", base_name()?)
        } else {
            String::new()
        }
    };
    let root_canonical = fs::canonicalize(&root).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;

    let mut walker = Walker {
        options,
        excludes: build_excludes(&options.excludes)?,
        root,
        root_canonical,
        prefix,
        entries: Vec::new(),
        extra: false,
    };
    walker.walk(&root_metadata)?;
    let Walker {
        root,
        prefix,
        mut entries,
        ..
    } = walker;
    for tree in &options.extra_trees {
        walk_extra_tree(tree, options, &mut entries)?;
    }
    entries.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
        return Err(PackError::DuplicateEntry {
            name: pair[1].name.clone(),
        });
    }
    Ok(Tree {
        root,
        prefix,
        entries,
    })
}

/// Adds the entries of an extra tree (a directory or a single file) under its archive name.
fn walk_extra_tree(
    tree: &ExtraTree,
    options: &PackOptions,
    entries: &mut Vec<PlanEntry>,
) -> Result<(), PackError> {
    let source = std::path::absolute(&tree.source).map_err(|source| PackError::Io {
        path: tree.source.clone(),
        source,
    })?;
    let metadata = fs::metadata(&source).map_err(|error| link_error(&source, error))?;
    let root_canonical = fs::canonicalize(&source).map_err(|error| PackError::Io {
        path: source.clone(),
        source: error,
    })?;
    let Some(name) = extra_tree_name(&tree.archive_name) else {
        return Err(PackError::BadExtraName {
            name: tree.archive_name.clone(),
        });
    };
    let mut walker = Walker {
        options,
        excludes: build_excludes(&options.excludes)?,
        root: source.clone(),
        root_canonical,
        prefix: if metadata.is_dir() {
            format!("{name}/")
        } else {
            String::new()
        },
        entries: Vec::new(),
        extra: true,
    };
    if metadata.is_dir() {
        walker.walk(&metadata)?;
    } else if metadata.is_file() {
        fs::File::open(&source).map_err(|error| PackError::Unreadable {
            path: source.clone(),
            source: error,
        })?;
        let mut entry = walker.entry(
            name.to_owned(),
            PlanEntryKind::File {
                size: metadata.len(),
            },
            &metadata,
        );
        entry.source = Some(source);
        walker.entries.push(entry);
    } else {
        return Err(PackError::SpecialFile {
            path: source,
            kind: "special file",
        });
    }
    entries.append(&mut walker.entries);
    Ok(())
}

/// Refuses Toil's dangerous roots, `/` and the home directory, whether the path names them
/// lexically (`/usr/../tmp/`) or through symbolic links.
fn refuse_dangerous_root(
    given: &Path,
    absolute: &Path,
    lexical: &Path,
    options: &PackOptions,
) -> Result<(), PackError> {
    let canonical = fs::canonicalize(absolute).ok();
    let mut refused: Vec<PathBuf> = DANGEROUS_ROOTS.iter().map(PathBuf::from).collect();
    refused.push(PathBuf::from("/"));
    if let Some(home) = &options.home_dir
        && let Ok(home) = std::path::absolute(home)
    {
        refused.push(normalize_lexically(&home));
    }
    for root in refused {
        let root_canonical = fs::canonicalize(&root).ok();
        let same_place = canonical.is_some()
            && (canonical.as_deref() == Some(root.as_path()) || canonical == root_canonical);
        if lexical == root || same_place {
            return Err(PackError::DangerousRoot {
                path: given.to_owned(),
                root,
            });
        }
    }
    Ok(())
}

fn build_excludes(patterns: &[String]) -> Result<Option<GlobSet>, PackError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        // A `*` stays within one path component, as in `.gitignore`; `**` crosses them.
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|error| PackError::BadGlob {
                glob: pattern.clone(),
                reason: error.kind().to_string(),
            })?;
        set.add(glob);
    }
    let set = set.build().map_err(|error| PackError::BadGlob {
        glob: patterns.join(" "),
        reason: error.to_string(),
    })?;
    Ok(Some(set))
}

/// A directory being walked, one per level of the walk: the stack of these is also the chain of
/// ancestors used to detect loops and to apply `.gitignore` files.
struct DirFrame {
    /// The directory's path relative to the walk root; empty for the root itself.
    rel: String,
    /// Device and inode, which identify the directory however it was reached.
    identity: (u64, u64),
    /// The matcher of this directory's `.gitignore`, when gitignore rules are honoured.
    gitignore: Option<Gitignore>,
    /// The names not yet visited, sorted so that errors are found in a deterministic order.
    children: std::vec::IntoIter<OsString>,
}

/// What a visited path becomes.
enum Visit {
    Skip,
    Leaf(PlanEntry),
    Directory(Metadata),
}

struct Walker<'o> {
    options: &'o PackOptions,
    excludes: Option<GlobSet>,
    root: PathBuf,
    root_canonical: PathBuf,
    prefix: String,
    entries: Vec<PlanEntry>,
    /// Whether this walks an extra tree, whose entries record where they come from.
    extra: bool,
}

impl Walker<'_> {
    /// Depth-first walk with an explicit stack, so deep trees cannot overflow the thread's stack.
    fn walk(&mut self, root_metadata: &Metadata) -> Result<(), PackError> {
        if !self.prefix.is_empty() {
            // A package is rooted at its parent, so its own directory is an entry as well.
            let entry = self.directory_entry(String::new(), root_metadata);
            self.entries.push(entry);
        }
        let mut stack = vec![self.open_directory(String::new(), root_metadata)?];
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(());
            };
            let Some(child) = frame.children.next() else {
                stack.pop();
                continue;
            };
            let Some(name) = child.to_str() else {
                return Err(PackError::NonUtf8Name {
                    path: self.source_path(&frame.rel).join(&child),
                });
            };
            if has_control_character(name) {
                // The archive reader refuses such names, so every worker would fail later.
                return Err(PackError::ControlCharacterInName {
                    path: self.source_path(&frame.rel).join(&child),
                });
            }
            let rel = if frame.rel.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", frame.rel)
            };
            let path = self.root.join(&rel);
            match self.visit(&path, &rel, name, &stack)? {
                Visit::Skip => {}
                Visit::Leaf(entry) => self.entries.push(entry),
                Visit::Directory(metadata) => {
                    let frame = self.open_directory(rel.clone(), &metadata)?;
                    let entry = self.directory_entry(rel, &metadata);
                    self.entries.push(entry);
                    stack.push(frame);
                }
            }
        }
    }

    fn source_path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn open_directory(&self, rel: String, metadata: &Metadata) -> Result<DirFrame, PackError> {
        let path = self.source_path(&rel);
        let unreadable = |source| PackError::Unreadable {
            path: path.clone(),
            source,
        };
        let mut children = Vec::new();
        for child in fs::read_dir(&path).map_err(unreadable)? {
            children.push(child.map_err(unreadable)?.file_name());
        }
        children.sort_unstable_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        let gitignore = if self.options.gitignore && children.iter().any(|c| c == ".gitignore") {
            Some(load_gitignore(&path)?)
        } else {
            None
        };
        Ok(DirFrame {
            rel,
            identity: (metadata.dev(), metadata.ino()),
            gitignore,
            children: children.into_iter(),
        })
    }

    fn visit(
        &self,
        path: &Path,
        rel: &str,
        name: &str,
        ancestors: &[DirFrame],
    ) -> Result<Visit, PackError> {
        if self.options.gitignore && name == ".git" {
            // Git never tracks its own repository, so gitignore rules imply leaving it out.
            return Ok(Visit::Skip);
        }
        let link_metadata = fs::symlink_metadata(path).map_err(|source| PackError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        if !link_metadata.file_type().is_symlink() {
            return self.visit_resolved(path, rel, name, link_metadata, ancestors);
        }
        match self.options.symlinks {
            SymlinkPolicy::Follow => match fs::metadata(path) {
                Ok(metadata) => self.visit_resolved(path, rel, name, metadata, ancestors),
                Err(_) if self.is_excluded(rel, name, false, ancestors) => Ok(Visit::Skip),
                Err(error) => Err(link_error(path, error)),
            },
            SymlinkPolicy::Keep => self.visit_kept_link(path, rel, name, &link_metadata, ancestors),
        }
    }

    /// Visits a path whose metadata no longer describes a symbolic link.
    fn visit_resolved(
        &self,
        path: &Path,
        rel: &str,
        name: &str,
        metadata: Metadata,
        ancestors: &[DirFrame],
    ) -> Result<Visit, PackError> {
        let is_dir = metadata.is_dir();
        if self.is_excluded(rel, name, is_dir, ancestors) {
            return Ok(Visit::Skip);
        }
        let file_type = metadata.file_type();
        if is_dir {
            let identity = (metadata.dev(), metadata.ino());
            if ancestors.iter().any(|frame| frame.identity == identity) {
                return Err(PackError::SymlinkLoop {
                    path: path.to_owned(),
                });
            }
            return Ok(Visit::Directory(metadata));
        }
        if file_type.is_file() {
            // Opening the file now proves it readable before anything is written.
            fs::File::open(path).map_err(|source| PackError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
            return Ok(Visit::Leaf(self.entry(
                rel.to_owned(),
                PlanEntryKind::File {
                    size: metadata.len(),
                },
                &metadata,
            )));
        }
        let kind = if file_type.is_fifo() {
            "named pipe (FIFO)"
        } else if file_type.is_socket() {
            "socket"
        } else if file_type.is_block_device() {
            "block device"
        } else if file_type.is_char_device() {
            "character device"
        } else {
            "special file"
        };
        Err(PackError::SpecialFile {
            path: path.to_owned(),
            kind,
        })
    }

    /// Keeps a symbolic link as a link, provided its target exists inside the tree, both on this
    /// machine (resolving every link) and once extracted (reading the target as written).
    fn visit_kept_link(
        &self,
        path: &Path,
        rel: &str,
        name: &str,
        link_metadata: &Metadata,
        ancestors: &[DirFrame],
    ) -> Result<Visit, PackError> {
        if self.is_excluded(rel, name, false, ancestors) {
            return Ok(Visit::Skip);
        }
        let target = fs::read_link(path).map_err(|source| PackError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let resolved = fs::canonicalize(path).map_err(|error| link_error(path, error))?;
        let problem = if resolved.starts_with(&self.root_canonical) {
            let link_name = format!("{}{rel}", self.prefix);
            link_target_problem(&link_name, target.as_os_str().as_encoded_bytes())
        } else {
            Some("it resolves outside the tree")
        };
        if let Some(reason) = problem {
            return Err(PackError::LinkEscapesTree {
                path: path.to_owned(),
                target,
                reason,
            });
        }
        let Some(target) = target.to_str() else {
            return Err(PackError::NonUtf8LinkTarget {
                path: path.to_owned(),
            });
        };
        Ok(Visit::Leaf(self.entry(
            rel.to_owned(),
            PlanEntryKind::Symlink {
                target: target.to_owned(),
            },
            link_metadata,
        )))
    }

    /// Whether an exclude glob or a `.gitignore` rule leaves this path out. Globs match the path
    /// relative to the walk root and the base name; the deepest `.gitignore` with a matching rule
    /// decides, so a negation (`!keep.py`) in a subdirectory overrides its parents.
    fn is_excluded(&self, rel: &str, name: &str, is_dir: bool, ancestors: &[DirFrame]) -> bool {
        if let Some(excludes) = &self.excludes
            && (excludes.is_match(rel) || excludes.is_match(name))
        {
            return true;
        }
        if self.options.gitignore {
            for frame in ancestors.iter().rev() {
                let Some(gitignore) = &frame.gitignore else {
                    continue;
                };
                let below_frame = if frame.rel.is_empty() {
                    rel
                } else {
                    rel.get(frame.rel.len() + 1..).unwrap_or(rel)
                };
                match gitignore.matched(below_frame, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
        }
        false
    }

    fn directory_entry(&self, rel: String, metadata: &Metadata) -> PlanEntry {
        self.entry(rel, PlanEntryKind::Directory, metadata)
    }

    fn entry(&self, rel: String, kind: PlanEntryKind, metadata: &Metadata) -> PlanEntry {
        let mut name = self.prefix.clone();
        name.push_str(&rel);
        if kind == PlanEntryKind::Directory && !rel.is_empty() {
            name.push('/');
        }
        let source_mtime = metadata.mtime();
        let mtime = match self.options.mtime_clamp {
            Some(clamp) => source_mtime.min(clamp),
            None => source_mtime,
        };
        let source = self.extra.then(|| {
            if rel.is_empty() {
                self.root.clone()
            } else {
                self.root.join(&rel)
            }
        });
        PlanEntry {
            name,
            kind,
            permissions: metadata.mode() & PERMISSION_BITS,
            mtime,
            source_mtime,
            source,
        }
    }
}

fn load_gitignore(dir: &Path) -> Result<Gitignore, PackError> {
    let file = dir.join(".gitignore");
    let mut builder = GitignoreBuilder::new(dir);
    if let Some(error) = builder.add(&file) {
        return Err(PackError::BadGitignore {
            path: file,
            reason: error.to_string(),
        });
    }
    builder.build().map_err(|error| PackError::BadGitignore {
        path: file,
        reason: error.to_string(),
    })
}

/// Classifies a failure to resolve a symbolic link.
fn link_error(path: &Path, error: io::Error) -> PackError {
    if error.kind() == io::ErrorKind::NotFound {
        PackError::DanglingSymlink {
            path: path.to_owned(),
            target: fs::read_link(path).unwrap_or_default(),
        }
    } else if error.raw_os_error() == Some(libc::ELOOP) {
        PackError::SymlinkLoop {
            path: path.to_owned(),
        }
    } else {
        PackError::Unreadable {
            path: path.to_owned(),
            source: error,
        }
    }
}
