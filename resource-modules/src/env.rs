//! Which interpreter to ask, and the environment values it runs with.
//!
//! The library never reads or changes the process environment: the caller hands in the values
//! (the CLI passes `std::env::var`), and the interpreter is started with exactly those.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variables handed to the interpreter, and so the ones that can change its
/// answers (its search path, its prefix) or are needed to start it at all (`PATH` for a `pyenv`
/// shim, `HOME` for the user site directory).
pub const PASSED_VARIABLES: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONSAFEPATH",
    "PYTHONPLATLIBDIR",
    "PYTHONUTF8",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "PYENV_DIR",
];

/// The environment values the interpreter runs with (only [`PASSED_VARIABLES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PythonEnv {
    vars: BTreeMap<String, String>,
}

impl PythonEnv {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes each of [`PASSED_VARIABLES`] from `vars` (the CLI passes `|name| std::env::var(name).ok()`).
    pub fn from_vars(vars: impl Fn(&str) -> Option<String>) -> Self {
        let vars = PASSED_VARIABLES
            .iter()
            .filter_map(|name| vars(name).map(|value| ((*name).to_owned(), value)))
            .collect();
        Self { vars }
    }

    /// The same environment with `name` set to `value` (any name, not only the passed ones).
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Every variable, sorted by name.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `VIRTUAL_ENV`, if set (even to the empty string, as Toil counts it).
    pub fn virtual_env(&self) -> Option<&str> {
        self.get("VIRTUAL_ENV")
    }

    /// `CONDA_DEFAULT_ENV`, if set.
    pub fn conda_default_env(&self) -> Option<&str> {
        self.get("CONDA_DEFAULT_ENV")
    }

    /// A stable text that differs whenever a value the interpreter sees differs (a cache key part).
    pub(crate) fn fingerprint(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.vars {
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            out.push('\0');
        }
        out
    }
}

/// The interpreter to ask about modules, and the environment to run it in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InterpreterChoice {
    /// The interpreter: a path, or a bare name looked up on the environment's `PATH` when started.
    pub python: PathBuf,
    /// The environment values it runs with.
    pub env: PythonEnv,
}

impl InterpreterChoice {
    /// The default interpreter for these environment values: `$VIRTUAL_ENV/bin/python` when
    /// `VIRTUAL_ENV` is set and not empty, else `python3` found on `PATH` (or the bare name
    /// `python3` if `PATH` has none, so that starting it fails with a clear error).
    ///
    /// ```
    /// use std::path::Path;
    /// use resource_modules::InterpreterChoice;
    ///
    /// let choice = InterpreterChoice::from_env(|name| match name {
    ///     "VIRTUAL_ENV" => Some("/home/me/venv".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(choice.python, Path::new("/home/me/venv/bin/python"));
    /// assert_eq!(choice.env.virtual_env(), Some("/home/me/venv"));
    /// ```
    pub fn from_env(vars: impl Fn(&str) -> Option<String>) -> Self {
        let env = PythonEnv::from_vars(vars);
        let python = default_python(&env);
        Self { python, env }
    }

    /// A given interpreter with the given environment. A bare name (no `/`) is looked up on the
    /// environment's `PATH` now, so that the cache is keyed by the real file.
    pub fn new(python: &Path, env: PythonEnv) -> Self {
        let python = resolve_program(python, env.get("PATH"));
        Self { python, env }
    }

    /// The same environment with another interpreter (the CLI's `--python`).
    pub fn with_python(self, python: &Path) -> Self {
        Self::new(python, self.env)
    }
}

fn default_python(env: &PythonEnv) -> PathBuf {
    match env.virtual_env() {
        Some(venv) if !venv.is_empty() => Path::new(venv).join("bin").join("python"),
        _ => resolve_program(Path::new("python3"), env.get("PATH")),
    }
}

fn resolve_program(program: &Path, path_var: Option<&str>) -> PathBuf {
    let is_bare = program.components().count() == 1 && !program.is_absolute();
    if is_bare
        && let Some(name) = program.to_str()
        && let Some(found) = find_on_path(name, path_var)
    {
        return found;
    }
    program.to_path_buf()
}

/// The first executable file named `program` in the directories of `path_var` (a `PATH` value).
pub fn find_on_path(program: &str, path_var: Option<&str>) -> Option<PathBuf> {
    path_var?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passed_variables_are_taken() {
        let env = PythonEnv::from_vars(|name| match name {
            "PATH" => Some("/bin".into()),
            "SECRET" => Some("x".into()),
            _ => None,
        });
        assert_eq!(env.vars().collect::<Vec<_>>(), [("PATH", "/bin")]);
        assert_ne!(
            env.fingerprint(),
            env.clone().with_var("PYTHONPATH", "/a").fingerprint()
        );
    }

    #[test]
    fn empty_virtual_env_falls_back_to_path() {
        let choice = InterpreterChoice::from_env(|name| match name {
            "VIRTUAL_ENV" => Some(String::new()),
            "PATH" => Some("/nonexistent-dir".into()),
            _ => None,
        });
        assert_eq!(choice.python, Path::new("python3"));
        // Toil counts a set-but-empty VIRTUAL_ENV as being in a virtualenv.
        assert_eq!(choice.env.virtual_env(), Some(""));
    }
}
