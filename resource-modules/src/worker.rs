//! The worker's side of a module: the command that runs the localised module. (The leader path
//! its resource is registered under is [`ModuleDescriptor::resource_path`], in `resource-core`.)

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Command;

use resource_core::ModuleDescriptor;

/// `PYTHONPATH` with `first` in front of what `existing` holds.
pub fn search_path_with(first: &Path, existing: Option<&OsStr>) -> OsString {
    let mut value = first.as_os_str().to_owned();
    if let Some(existing) = existing.filter(|existing| !existing.is_empty()) {
        value.push(":");
        value.push(existing);
    }
    value
}

/// Runs a module as `python -m` does, but with the directory given first on `sys.path` in place
/// of the current directory (which `-m` would put there, ahead of `PYTHONPATH`).
const RUN_MODULE: &str = "import runpy, sys\n\
directory, name = sys.argv[1], sys.argv[2]\n\
del sys.argv[1:3]\n\
sys.path[0] = directory\n\
runpy.run_module(name, run_name='__main__', alter_sys=True)\n";

/// The command that runs the localised module like `python -m NAME ARGS…`, with its directory
/// first on the interpreter's search path (and first on `PYTHONPATH`, for the processes it
/// starts). The caller's environment is inherited; `existing_pythonpath` is the `PYTHONPATH` to
/// keep after it (the library never reads the environment itself).
pub fn run_module_command(
    python: &Path,
    localized: &ModuleDescriptor,
    args: &[OsString],
    existing_pythonpath: Option<&OsStr>,
) -> Command {
    let mut command = Command::new(python);
    command
        .arg("-c")
        .arg(RUN_MODULE)
        .arg(&localized.dir_path)
        .arg(&localized.name)
        .args(args)
        .env(
            "PYTHONPATH",
            search_path_with(&localized.dir_path, existing_pythonpath),
        );
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_localized_directory_comes_first_on_the_search_path() {
        assert_eq!(
            search_path_with(Path::new("/r/h"), None),
            OsString::from("/r/h")
        );
        assert_eq!(
            search_path_with(Path::new("/r/h"), Some(OsStr::new("/a:/b"))),
            OsString::from("/r/h:/a:/b")
        );
        assert_eq!(
            search_path_with(Path::new("/r/h"), Some(OsStr::new(""))),
            OsString::from("/r/h")
        );
    }
}
