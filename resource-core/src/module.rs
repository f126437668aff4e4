//! The module descriptor: which directory, which dotted name, and whether it came from a virtualenv.
//!
//! Toil passes it to a worker as three strings (`dirPath`, `name`, `"True"`/`"False"`), and a worker
//! that localised the module keeps the original `dirPath` in a `.stash` file in the resource
//! directory: one character (`1` for a virtualenv, else `0`) followed by the path, no newline.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The name of the file in a localised resource directory that remembers the original `dirPath`.
pub const STASH_FILE: &str = ".stash";

/// The module-name prefix of the workflow engine's own modules, which are never shipped.
pub const DEFAULT_ENGINE_PREFIX: &str = "toil.";

/// Why a module descriptor could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The command form does not have exactly three strings.
    #[error("a module descriptor is three strings (dirPath, name, True|False); got {0}")]
    WrongArgCount(usize),
    /// The third string is neither `True` nor `False`.
    #[error("fromVirtualEnv must be exactly True or False, not {0:?}")]
    NotABool(String),
    /// The dotted name is empty or has an empty part.
    #[error("{0:?} is not a dotted module name")]
    InvalidName(String),
    /// The `.stash` content does not start with `0` or `1`.
    #[error(
        "the .stash file must start with 0 or 1 followed by the original dirPath; it starts with {0:?}"
    )]
    MalformedStash(String),
    /// A path that must be shown as text is not valid UTF-8.
    #[error("the path {0:?} is not valid UTF-8, so it cannot travel in Toil's command form")]
    NonUtf8Path(PathBuf),
}

/// A user module as Toil's `ModuleDescriptor` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleDescriptor {
    /// The directory on the search path that holds the module or its root package.
    pub dir_path: PathBuf,
    /// The dotted module name, such as `flow` or `a.b.c`.
    pub name: String,
    /// Whether the module lives in the virtualenv the leader runs in.
    pub from_virtual_env: bool,
}

fn strict_bool(value: &str) -> Result<bool, DescriptorError> {
    match value {
        "True" => Ok(true),
        "False" => Ok(false),
        other => Err(DescriptorError::NotABool(other.to_owned())),
    }
}

fn python_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

impl ModuleDescriptor {
    /// Builds a descriptor, checking that the name is a dotted module name.
    pub fn new(
        dir_path: PathBuf,
        name: String,
        from_virtual_env: bool,
    ) -> Result<Self, DescriptorError> {
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(DescriptorError::InvalidName(name));
        }
        Ok(Self {
            dir_path,
            name,
            from_virtual_env,
        })
    }

    /// Toil's `toCommand()`: `[dirPath, name, "True"|"False"]`.
    ///
    /// ```
    /// use resource_core::ModuleDescriptor;
    ///
    /// let module = ModuleDescriptor::new("/src".into(), "flow".into(), false)?;
    /// let command = module.to_command()?;
    /// assert_eq!(command, ["/src", "flow", "False"]);
    /// assert_eq!(ModuleDescriptor::from_command(&command)?, module);
    /// # Ok::<(), resource_core::module::DescriptorError>(())
    /// ```
    pub fn to_command(&self) -> Result<[String; 3], DescriptorError> {
        let dir = self
            .dir_path
            .to_str()
            .ok_or_else(|| DescriptorError::NonUtf8Path(self.dir_path.clone()))?;
        Ok([
            dir.to_owned(),
            self.name.clone(),
            python_bool(self.from_virtual_env).to_owned(),
        ])
    }

    /// Toil's `fromCommand()`: exactly three strings, the last `True` or `False`.
    pub fn from_command<S: AsRef<str>>(command: &[S]) -> Result<Self, DescriptorError> {
        let [dir, name, from_venv] = command else {
            return Err(DescriptorError::WrongArgCount(command.len()));
        };
        Self::new(
            PathBuf::from(dir.as_ref()),
            name.as_ref().to_owned(),
            strict_bool(from_venv.as_ref())?,
        )
    }

    /// The root package of a dotted name (`a` for `a.b.c`), or the module itself.
    pub fn root_package(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }

    /// The leader path under which the module's resource is registered (Toil's `_resourcePath`
    /// as a worker computes it, from the descriptor alone): the virtualenv's `site-packages`
    /// itself, the root package directory of a dotted name, or the directory of a stand-alone
    /// module.
    ///
    /// ```
    /// use std::path::Path;
    /// use resource_core::ModuleDescriptor;
    ///
    /// let module = ModuleDescriptor::new("/src".into(), "pkg.sub.mod".into(), false)?;
    /// assert_eq!(module.resource_path(), Path::new("/src/pkg"));
    /// # Ok::<(), resource_core::module::DescriptorError>(())
    /// ```
    pub fn resource_path(&self) -> PathBuf {
        if self.from_virtual_env || !self.name.contains('.') {
            self.dir_path.clone()
        } else {
            self.dir_path.join(self.root_package())
        }
    }

    /// Whether the module belongs to the engine (its name starts with `prefix`,
    /// [`DEFAULT_ENGINE_PREFIX`] by default) and so is never shipped or localised.
    pub fn is_engine_module(&self, prefix: Option<&str>) -> bool {
        self.name
            .starts_with(prefix.unwrap_or(DEFAULT_ENGINE_PREFIX))
    }

    /// The bytes Toil writes to `.stash` when localising: `1`/`0` then the original `dirPath`.
    pub fn stash_contents(&self) -> Vec<u8> {
        let mut out = vec![if self.from_virtual_env { b'1' } else { b'0' }];
        out.extend_from_slice(self.dir_path.as_os_str().as_bytes());
        out
    }

    /// The descriptor of the same module localised at `local_dir`.
    pub fn localized_at(&self, local_dir: &Path) -> Self {
        Self {
            dir_path: local_dir.to_path_buf(),
            name: self.name.clone(),
            from_virtual_env: self.from_virtual_env,
        }
    }

    /// Toil's `globalize()`: the original descriptor of a module localised at `self.dir_path`, from
    /// the content of its `.stash` file.
    pub fn globalized_from_stash(&self, stash: &[u8]) -> Result<Self, DescriptorError> {
        let (flag, dir) = stash
            .split_first()
            .ok_or_else(|| DescriptorError::MalformedStash(String::new()))?;
        let from_virtual_env = match flag {
            b'1' => true,
            b'0' => false,
            _ => {
                let shown = String::from_utf8_lossy(&stash[..stash.len().min(16)]).into_owned();
                return Err(DescriptorError::MalformedStash(shown));
            }
        };
        Ok(Self {
            dir_path: PathBuf::from(OsString::from_vec(dir.to_vec())),
            name: self.name.clone(),
            from_virtual_env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_command_is_strict() {
        let check = |command: &[&str], ok: bool| {
            assert_eq!(
                ModuleDescriptor::from_command(command).is_ok(),
                ok,
                "{command:?}"
            );
        };
        check(&["/d", "m", "True"], true);
        check(&["/d", "a.b", "False"], true);
        check(&["/d", "m", "true"], false);
        check(&["/d", "m", "1"], false);
        check(&["/d", "m", ""], false);
        check(&["/d", "m"], false);
        check(&["/d", "m", "True", "x"], false);
        check(&["/d", "a..b", "True"], false);
    }

    #[test]
    fn resource_paths_follow_toils_rules() -> Result<(), DescriptorError> {
        let check =
            |dir: &str, name: &str, venv: bool, expected: &str| -> Result<(), DescriptorError> {
                let module = ModuleDescriptor::new(dir.into(), name.into(), venv)?;
                assert_eq!(
                    module.resource_path(),
                    Path::new(expected),
                    "{dir} {name} {venv}"
                );
                Ok(())
            };
        check("/src", "flow", false, "/src")?;
        check("/src", "pkg.sub.mod", false, "/src/pkg")?;
        check(
            "/venv/lib/python3.11/site-packages",
            "pkg.mod",
            true,
            "/venv/lib/python3.11/site-packages",
        )?;
        Ok(())
    }

    #[test]
    fn engine_modules_start_with_the_prefix() -> Result<(), DescriptorError> {
        let engine = ModuleDescriptor::new("/x".into(), "toil.resource".into(), false)?;
        let mine = ModuleDescriptor::new("/x".into(), "toilet".into(), false)?;
        assert!(engine.is_engine_module(None));
        assert!(!mine.is_engine_module(None));
        assert!(mine.is_engine_module(Some("toil")));
        Ok(())
    }

    #[test]
    fn stash_round_trips() -> Result<(), DescriptorError> {
        let module = ModuleDescriptor::new("/home/u/src".into(), "a.b".into(), true)?;
        let stash = module.stash_contents();
        assert_eq!(stash, b"1/home/u/src");
        let local = module.localized_at(Path::new("/root/abc"));
        assert_eq!(local.globalized_from_stash(&stash)?, module);
        assert!(local.globalized_from_stash(b"x/a").is_err());
        assert!(local.globalized_from_stash(b"").is_err());
        Ok(())
    }
}
