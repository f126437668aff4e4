//! Virtualenvs: whether the interpreter runs in one, where it is, and what its `pyvenv.cfg` says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::env::PythonEnv;
use crate::interpreter::{InterpreterError, InterpreterSnapshot, PythonVersion};

/// The parsed `pyvenv.cfg` of a virtualenv: `key = value` lines, keys lower-cased and trimmed,
/// as CPython's `site` module reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PyvenvCfg {
    /// The file.
    pub path: PathBuf,
    /// Every `key = value` pair.
    pub entries: BTreeMap<String, String>,
}

impl PyvenvCfg {
    /// Parses the text of a `pyvenv.cfg` file found at `path`.
    ///
    /// ```
    /// use std::path::Path;
    /// use resource_modules::venv::PyvenvCfg;
    ///
    /// let cfg = PyvenvCfg::parse(
    ///     Path::new("/v/pyvenv.cfg"),
    ///     "home = /usr/bin\nInclude-System-Site-Packages = true\nversion = 3.11.7\n",
    /// );
    /// assert_eq!(cfg.home(), Some(Path::new("/usr/bin")));
    /// assert!(cfg.include_system_site_packages());
    /// assert_eq!(cfg.version(), Some("3.11.7"));
    /// ```
    pub fn parse(path: &Path, text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                Some((key.trim().to_lowercase(), value.trim().to_owned()))
            })
            .collect();
        Self {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// Reads `<prefix>/pyvenv.cfg`; `Ok(None)` if there is none.
    pub fn read_in(prefix: &Path) -> Result<Option<Self>, InterpreterError> {
        let path = prefix.join("pyvenv.cfg");
        match fs_err::read(&path) {
            Ok(bytes) => Ok(Some(Self::parse(&path, &String::from_utf8_lossy(&bytes)))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(InterpreterError::Io { path, source }),
        }
    }

    /// A value by its (lower-case) key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// `home`: the directory of the base interpreter.
    pub fn home(&self) -> Option<&Path> {
        self.get("home").map(Path::new)
    }

    /// `include-system-site-packages`, true only for `true` (any case), as `site` reads it.
    pub fn include_system_site_packages(&self) -> bool {
        self.get("include-system-site-packages")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `version` (written by `venv`) or `version_info` (written by `virtualenv`).
    pub fn version(&self) -> Option<&str> {
        self.get("version").or_else(|| self.get("version_info"))
    }
}

/// Why the interpreter counts as running in a virtualenv (Toil's `inVirtualEnv()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VenvReason {
    /// `sys.prefix != sys.base_prefix` (a `venv`-style environment).
    PrefixDiffers,
    /// `sys.real_prefix` is set (an old `virtualenv`).
    RealPrefix,
    /// `VIRTUAL_ENV` is set.
    VirtualEnvVariable,
    /// `CONDA_DEFAULT_ENV` is set.
    CondaVariable,
}

/// What is known about the virtualenv (if any) an interpreter runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualEnvInfo {
    /// The interpreter.
    pub python: PathBuf,
    /// Its version.
    pub version: PythonVersion,
    /// `sys.prefix`.
    pub prefix: PathBuf,
    /// `sys.base_prefix`.
    pub base_prefix: PathBuf,
    /// Whether it counts as a virtualenv for Toil (any reason at all).
    pub in_virtualenv: bool,
    /// Every reason it counts as one.
    pub reasons: Vec<VenvReason>,
    /// `purelib` and `platlib` (one entry when they are the same).
    pub site_packages: Vec<PathBuf>,
    /// `sys.path` of a script run by it (without the script's directory).
    pub sys_path: Vec<PathBuf>,
    /// `VIRTUAL_ENV` as passed in.
    pub virtual_env_variable: Option<String>,
    /// `CONDA_DEFAULT_ENV` as passed in.
    pub conda_default_env: Option<String>,
    /// `<prefix>/pyvenv.cfg`, if there is one.
    pub pyvenv_cfg: Option<PyvenvCfg>,
}

/// The reasons the interpreter counts as running in a virtualenv (empty: it does not).
pub fn venv_reasons(snapshot: &InterpreterSnapshot, env: &PythonEnv) -> Vec<VenvReason> {
    let facts = &snapshot.facts;
    let mut reasons = Vec::new();
    if facts.prefix != facts.base_prefix {
        reasons.push(VenvReason::PrefixDiffers);
    }
    if facts.real_prefix.is_some() {
        reasons.push(VenvReason::RealPrefix);
    }
    if env.virtual_env().is_some() {
        reasons.push(VenvReason::VirtualEnvVariable);
    }
    if env.conda_default_env().is_some() {
        reasons.push(VenvReason::CondaVariable);
    }
    reasons
}

/// Everything about the interpreter's virtualenv, from its snapshot, the environment values and
/// its `pyvenv.cfg`.
pub fn virtual_env_info(
    snapshot: &InterpreterSnapshot,
    env: &PythonEnv,
) -> Result<VirtualEnvInfo, InterpreterError> {
    let facts = &snapshot.facts;
    let reasons = venv_reasons(snapshot, env);
    let mut site_packages: Vec<PathBuf> = Vec::new();
    for dir in facts.purelib.iter().chain(&facts.platlib) {
        if !site_packages.contains(dir) {
            site_packages.push(dir.clone());
        }
    }
    Ok(VirtualEnvInfo {
        python: snapshot.python.clone(),
        version: facts.version,
        prefix: facts.prefix.clone(),
        base_prefix: facts.base_prefix.clone(),
        in_virtualenv: !reasons.is_empty(),
        reasons,
        site_packages,
        sys_path: facts.sys_path.clone(),
        virtual_env_variable: env.virtual_env().map(str::to_owned),
        conda_default_env: env.conda_default_env().map(str::to_owned),
        pyvenv_cfg: PyvenvCfg::read_in(&facts.prefix)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtualenv_tool_style() {
        let cfg = PyvenvCfg::parse(
            Path::new("pyvenv.cfg"),
            "home=/opt/py\nimplementation = CPython\nversion_info = 3.9.1.final.0\n\
             include-system-site-packages = false\nno equals sign here\n",
        );
        assert_eq!(cfg.version(), Some("3.9.1.final.0"));
        assert!(!cfg.include_system_site_packages());
        assert_eq!(cfg.get("implementation"), Some("CPython"));
        assert_eq!(cfg.entries.len(), 4);
    }
}
