//! `resource module …`: ship, localise and run Python modules as Toil's `ModuleDescriptor` does.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use resource_archive::PackOptions;
use resource_core::ModuleDescriptor;
use resource_core::module::STASH_FILE;
use resource_core::registry::shell_quote;
use resource_modules::{
    Discoverer, FactsCache, InterpreterChoice, ModuleSource, PythonEnv, run_module_command,
    scan_site_packages,
};
use resource_store::{InstallOptions, LocalizeError, LocalizeOptions, Localized, PublishOptions};
use serde::Serialize;

use crate::cli::{
    DescribeArgs, DescriptorArgs, ExecArgs, ModuleCommand, ModuleSelector, PythonArgs, SaveArgs,
    ScanArgs,
};
use crate::output::{print_json, print_line};
use crate::plumbing::{
    env_var, environment_config, exit_code_of, no_root, pack_options, publish_and_print,
    root_of_local_copies, user_cache_dir,
};

/// Runs a `module` subcommand.
pub(crate) fn run(command: ModuleCommand) -> anyhow::Result<ExitCode> {
    match command {
        ModuleCommand::Describe(args) => describe(args),
        ModuleCommand::Save(args) => save(args),
        ModuleCommand::Scan(args) => scan(args),
        ModuleCommand::Localize(args) => localize_command(args),
        ModuleCommand::Globalize(args) => globalize(args),
        ModuleCommand::Exec(args) => exec(args),
    }
}

/// The interpreter to ask: `--python`, else `$VIRTUAL_ENV/bin/python`, else `python3`.
fn interpreter(python: Option<&Path>) -> InterpreterChoice {
    let choice = InterpreterChoice::from_env(env_var);
    match python {
        Some(python) => InterpreterChoice::new(python, PythonEnv::from_vars(env_var)),
        None => choice,
    }
}

/// Interpreter facts are cached in the per-user cache directory, beside the default root of
/// local copies.
fn facts_cache() -> FactsCache {
    match user_cache_dir() {
        Some(dir) => FactsCache::in_user_cache(&dir),
        None => FactsCache::in_memory(),
    }
}

fn module_source(selector: &ModuleSelector, name: Option<&str>) -> anyhow::Result<ModuleSource> {
    if let Some(script) = &selector.script {
        return Ok(ModuleSource::Script(script.clone()));
    }
    if let Some(main) = &selector.main {
        return Ok(ModuleSource::Main(main.clone()));
    }
    match (&selector.file, name) {
        (Some(file), Some(name)) => Ok(ModuleSource::Imported {
            file: file.clone(),
            name: name.to_owned(),
        }),
        _ => bail!("give SCRIPT.py, -m NAME, or --file FILE --name NAME"),
    }
}

fn discover(
    selector: &ModuleSelector,
    name: Option<&str>,
    python: &PythonArgs,
) -> anyhow::Result<resource_modules::Discovery> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let discoverer = Discoverer::new(interpreter(python.python.as_deref()), facts_cache(), &cwd)
        .with_engine_prefix(&python.engine_prefix);
    Ok(discoverer.discover(&module_source(selector, name)?)?)
}

/// The three command strings, quoted for a shell, on one line.
fn command_line(module: &ModuleDescriptor) -> anyhow::Result<String> {
    let strings = module.to_command()?;
    Ok(strings
        .iter()
        .map(|part| shell_quote(part))
        .collect::<Vec<_>>()
        .join(" "))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson<'a> {
    dir_path: &'a Path,
    name: &'a str,
    from_virtual_env: bool,
}

impl<'a> DescriptorJson<'a> {
    fn new(module: &'a ModuleDescriptor) -> Self {
        Self {
            dir_path: &module.dir_path,
            name: &module.name,
            from_virtual_env: module.from_virtual_env,
        }
    }
}

fn print_descriptor(module: &ModuleDescriptor, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&DescriptorJson::new(module))
    } else {
        print_line(command_line(module)?)?;
        Ok(())
    }
}

fn describe(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let found = discover(&args.selector, args.name.as_deref(), &args.python)?;
    if args.json {
        print_json(&found)?;
    } else {
        print_line(command_line(&found.descriptor)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn save(args: SaveArgs) -> anyhow::Result<ExitCode> {
    let found = discover(&args.selector, args.name.as_deref(), &args.python)?;
    let plan = found.shipping.plan().ok_or_else(|| {
        anyhow!(
            "{}: the module belongs to the engine (its name starts with {:?}) and is never shipped",
            found.descriptor.name,
            args.python.engine_prefix
        )
    })?;
    let options = PublishOptions {
        kind: Some(plan.kind),
        pack: PackOptions {
            // A namespace root package keeps its directory in the archive, unlike in Toil.
            package_root: plan.package_root,
            ..pack_options(&args.pack)?
        },
        progress: None,
    };
    publish_and_print(&args.store, &plan.path, &options, args.json)
}

fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let site_packages = match args.site_packages {
        Some(dir) => dir,
        None => {
            let lookup = facts_cache().lookup(&interpreter(args.python.as_deref()))?;
            lookup
                .snapshot
                .facts
                .install_site_packages()
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("the interpreter reports no site-packages directory"))?
        }
    };
    let report = scan_site_packages(&site_packages)?;
    if args.json {
        print_json(&report)?;
    } else {
        print_line(serde_json::to_string_pretty(&report)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn descriptor(args: &DescriptorArgs) -> anyhow::Result<ModuleDescriptor> {
    let dir = args
        .dir
        .to_str()
        .ok_or_else(|| anyhow!("{}: not valid UTF-8", args.dir.display()))?;
    Ok(ModuleDescriptor::from_command(&[
        dir,
        args.name.as_str(),
        args.from_virtual_env.as_str(),
    ])?)
}

/// Toil's `localize()` with the options of the command line: the descriptor pointing at the
/// local copy, with the entry held, or the descriptor unchanged.
fn localize(module: &ModuleDescriptor, args: &DescriptorArgs) -> anyhow::Result<Localized> {
    let options = LocalizeOptions {
        engine_prefix: Some(args.engine_prefix.clone()),
        root: root_of_local_copies(args.root.clone()),
        config: environment_config(),
        install: InstallOptions::default(),
    };
    match resource_store::localize(module, env_var, &options) {
        Err(LocalizeError::NoRoot { .. }) => Err(no_root()),
        localized => Ok(localized?),
    }
}

fn localize_command(args: DescriptorArgs) -> anyhow::Result<ExitCode> {
    let module = descriptor(&args)?;
    let localized = localize(&module, &args)?;
    print_descriptor(&localized.module, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn globalize(args: DescriptorArgs) -> anyhow::Result<ExitCode> {
    let module = descriptor(&args)?;
    let stash_path = module.dir_path.join(STASH_FILE);
    let stash = fs_err::read(&stash_path)?;
    let original = module
        .globalized_from_stash(&stash)
        .with_context(|| stash_path.display().to_string())?;
    print_descriptor(&original, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let module = descriptor(&args.descriptor)?;
    // The entry stays held (no gc or clean removes it) until the module exits.
    let localized = localize(&module, &args.descriptor)?;
    let python = interpreter(args.python.as_deref()).python;
    let pythonpath = std::env::var_os("PYTHONPATH");
    let status = run_module_command(
        &python,
        &localized.module,
        &args.args,
        pythonpath.as_deref(),
    )
    .status()
    .with_context(|| format!("cannot run {}", python.display()))?;
    Ok(exit_code_of(status))
}
