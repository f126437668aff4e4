//! Discovery, virtualenv facts, caching and scanning against a real virtualenv with real pip
//! installs (normal, editable with a path `.pth`, editable with a finder) and an egg-link.

mod common;

use std::path::{Path, PathBuf};

use common::{
    Fixture, TestResult, fixture, python_command, python_find_spec_origin, run, shared_cache,
    test_env,
};
use resource_core::ResourceKind;
use resource_modules::scan::{DistFormat, EditableVia, ModuleKind};
use resource_modules::venv::VenvReason;
use resource_modules::{
    Discoverer, FactsCache, InterpreterChoice, ModuleSource, SnapshotSource, editable_sources,
    scan_site_packages,
};

fn venv_discoverer(f: &Fixture, cwd: &Path) -> Discoverer {
    let choice = InterpreterChoice::new(&f.python, test_env());
    Discoverer::new(choice, shared_cache(), cwd)
}

/// A module resolved with `-m` by the virtualenv's interpreter: the expected `dirPath`,
/// `fromVirtualEnv` and plan, and the same file Python's `find_spec` finds.
fn check_main(
    f: &Fixture,
    module: &str,
    dir: &Path,
    from_venv: bool,
    ship: (PathBuf, ResourceKind),
) -> TestResult {
    let cwd = tempfile::tempdir()?;
    let found = venv_discoverer(f, cwd.path()).discover(&ModuleSource::Main(module.into()))?;
    assert_eq!(found.descriptor.dir_path, dir, "{module}");
    assert_eq!(found.descriptor.name, module);
    assert_eq!(found.descriptor.from_virtual_env, from_venv, "{module}");
    let plan = found.shipping.plan().ok_or("not shipped")?;
    assert_eq!((plan.path.clone(), plan.kind), ship, "{module}");
    let origin = python_find_spec_origin(&f.python, cwd.path(), module)?;
    assert_eq!(found.file, Path::new(&origin), "{module}");
    Ok(())
}

#[test]
fn virtualenv_facts_come_from_the_interpreter() -> TestResult {
    let f = fixture()?;
    let info = venv_discoverer(f, &f.root).virtual_env()?;
    assert!(info.in_virtualenv);
    assert_eq!(info.reasons, [VenvReason::PrefixDiffers]);
    assert_eq!(info.prefix, f.venv);
    assert_ne!(info.base_prefix, f.venv);
    assert_eq!(info.site_packages, std::slice::from_ref(&f.site_packages));
    assert!(info.sys_path.contains(&f.site_packages));
    // The path editable install and the egg-link put their trees on sys.path.
    assert!(info.sys_path.contains(&f.edpkg_root));
    assert!(info.sys_path.contains(&f.legpkg_root));
    let cfg = info.pyvenv_cfg.ok_or("no pyvenv.cfg")?;
    assert!(cfg.home().is_some());
    assert!(!cfg.include_system_site_packages());
    assert_eq!(
        cfg.version()
            .map(|v| v.starts_with(&format!("{}.{}", info.version.major, info.version.minor))),
        Some(true)
    );
    Ok(())
}

#[test]
fn toil_virtualenv_case_ships_site_packages() -> TestResult {
    // Toil's testVirtualEnv: a package placed in the virtualenv's site-packages, imported.
    let f = fixture()?;
    let file = f.site_packages.join("venvfoo/userScript.py");
    let source = ModuleSource::Imported {
        file,
        name: "venvfoo.userScript".into(),
    };
    let found = venv_discoverer(f, &f.root).discover(&source)?;
    assert_eq!(found.descriptor.dir_path, f.site_packages);
    assert!(found.descriptor.from_virtual_env);
    let plan = found.shipping.plan().ok_or("not shipped")?;
    assert_eq!(plan.path, f.site_packages);
    assert_eq!(plan.kind, ResourceKind::VirtualEnv);
    assert_eq!(
        found.descriptor.to_command()?[2],
        "True",
        "Toil's command form"
    );
    Ok(())
}

#[test]
fn modules_run_with_the_venv_interpreter() -> TestResult {
    let f = fixture()?;
    let site = f.site_packages.clone();
    // Installed normally: lives in the virtualenv, ships its site-packages.
    check_main(
        f,
        "normpkg.tool",
        &site,
        true,
        (site.clone(), ResourceKind::VirtualEnv),
    )?;
    check_main(
        f,
        "de.pen.dency",
        &site,
        true,
        (site.clone(), ResourceKind::VirtualEnv),
    )?;
    // Editable (path .pth, src layout): the source tree is outside the prefix, ships on its own.
    check_main(
        f,
        "edpkg.tool",
        &f.edpkg_root,
        false,
        (f.edpkg_root.join("edpkg"), ResourceKind::Directory),
    )?;
    // Editable through setuptools' finder (flat layout): found via MAPPING, not sys.path.
    check_main(
        f,
        "fpkg.tool",
        &f.fpkg_root,
        false,
        (f.fpkg_root.join("fpkg"), ResourceKind::Directory),
    )?;
    // setup.py develop (egg-link + easy-install.pth).
    check_main(
        f,
        "legpkg.tool",
        &f.legpkg_root,
        false,
        (f.legpkg_root.join("legpkg"), ResourceKind::Directory),
    )?;
    Ok(())
}

#[test]
fn finder_only_names_collide_and_unmapped_files_stay_hidden() -> TestResult {
    let f = fixture()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().canonicalize()?;
    std::fs::write(dir.join("fmod.py"), "")?;
    std::fs::write(dir.join("notes.py"), "")?;
    let discoverer = venv_discoverer(f, &dir);
    // `fmod` is provided by the finder of the flat editable install: a collision.
    let err = discoverer
        .discover(&ModuleSource::Script(dir.join("fmod.py")))
        .err()
        .ok_or("fmod.py should collide")?;
    assert!(err.to_string().contains("fmod.py'"), "{err}");
    // `notes.py` sits in that project's root but the finder does not map it.
    let found = discoverer.discover(&ModuleSource::Script(dir.join("notes.py")))?;
    assert_eq!(found.descriptor.name, "notes");
    Ok(())
}

#[test]
fn warm_discovery_never_starts_the_interpreter() -> TestResult {
    let f = fixture()?;
    let tmp = tempfile::tempdir()?;
    // An interpreter wrapper that counts its starts.
    let counter = tmp.path().join("starts");
    let wrapper = tmp.path().join("python");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho x >> '{}'\nexec '{}' \"$@\"\n",
            counter.display(),
            f.python.display()
        ),
    )?;
    run(std::process::Command::new("chmod").arg("755").arg(&wrapper))?;
    let starts = || -> TestResult<usize> {
        Ok(std::fs::read_to_string(&counter)
            .map(|s| s.lines().count())
            .unwrap_or(0))
    };
    let cache_dir = tmp.path().join("cache");
    let choice = InterpreterChoice::new(&wrapper, test_env());
    let source = ModuleSource::Main("normpkg.tool".into());

    let cold = FactsCache::with_dir(&cache_dir);
    assert_eq!(cold.lookup(&choice)?.source, SnapshotSource::Interpreter);
    assert_eq!(cold.lookup(&choice)?.source, SnapshotSource::Memory);
    assert_eq!(starts()?, 1);

    // A new process's cache: from disk, and discovery runs without the interpreter.
    let warm = FactsCache::with_dir(&cache_dir);
    let lookup = warm.lookup(&choice)?;
    assert_eq!(lookup.source, SnapshotSource::Disk);
    assert_eq!(lookup.cache_problem, None);
    let found = Discoverer::new(choice.clone(), warm.clone(), tmp.path()).discover(&source)?;
    assert!(found.descriptor.from_virtual_env);
    assert_eq!(starts()?, 1);

    // A changed interpreter (size) invalidates the cached facts.
    let mut text = std::fs::read_to_string(&wrapper)?;
    text.push_str("# changed\n");
    std::fs::write(&wrapper, text)?;
    assert_eq!(warm.lookup(&choice)?.source, SnapshotSource::Interpreter);
    assert_eq!(starts()?, 2);

    // Another environment is another cache entry.
    let other = InterpreterChoice::new(&wrapper, test_env().with_var("PYTHONPATH", "/nonexistent"));
    assert_eq!(warm.lookup(&other)?.source, SnapshotSource::Interpreter);
    assert_eq!(starts()?, 3);
    Ok(())
}

#[test]
fn a_new_pth_file_invalidates_the_cached_facts() -> TestResult {
    let f = fixture()?;
    let tmp = tempfile::tempdir()?;
    // Our own copy of a tiny virtualenv (no pip: fast), so the shared fixture stays unchanged.
    let venv = tmp.path().join("v");
    run(python_command(&common::base_python()?)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv))?;
    let choice = InterpreterChoice::new(&venv.join("bin/python"), test_env());
    let cache = FactsCache::with_dir(&tmp.path().join("cache"));
    let first = cache.lookup(&choice)?;
    let site = first.snapshot.facts.purelib.clone().ok_or("no purelib")?;
    assert_eq!(cache.lookup(&choice)?.source, SnapshotSource::Memory);
    std::fs::write(
        site.join("extra.pth"),
        format!("{}\n", f.edpkg_root.display()),
    )?;
    let second = cache.lookup(&choice)?;
    assert_eq!(second.source, SnapshotSource::Interpreter);
    assert!(second.snapshot.facts.sys_path.contains(&f.edpkg_root));
    Ok(())
}

#[test]
fn from_env_picks_the_virtual_env_interpreter() -> TestResult {
    let f = fixture()?;
    let venv = f.venv.to_string_lossy().into_owned();
    let choice = InterpreterChoice::from_env(|name| match name {
        "VIRTUAL_ENV" => Some(venv.clone()),
        other => test_env().get(other).map(str::to_owned),
    });
    assert_eq!(choice.python, f.venv.join("bin/python"));
    let info = Discoverer::new(choice, shared_cache(), &f.root).virtual_env()?;
    assert_eq!(
        info.reasons,
        [VenvReason::PrefixDiffers, VenvReason::VirtualEnvVariable]
    );
    Ok(())
}

#[test]
fn scan_finds_normal_and_editable_installs() -> TestResult {
    let f = fixture()?;
    let report = scan_site_packages(&f.site_packages)?;
    assert_eq!(report.problems, []);
    let dist = |name: &str| {
        report
            .distributions
            .iter()
            .find(|d| d.name == name)
            .ok_or(format!("no distribution {name}"))
    };
    let normpkg = dist("normpkg")?;
    assert_eq!(normpkg.version.as_deref(), Some("1.0.0"));
    assert_eq!(normpkg.format, DistFormat::DistInfo);
    assert_eq!(normpkg.top_level, ["normpkg", "normns", "normfast"]);
    assert_eq!(normpkg.installer.as_deref(), Some("pip"));
    assert!(!normpkg.editable);
    // pip records where a local directory install came from, not editable.
    assert!(normpkg.direct_url.as_ref().is_some_and(|d| !d.editable));
    assert!(normpkg.record_entries.is_some_and(|n| n >= 6));
    for (name, version) in [("edpkg", "2.0"), ("fpkg", "0.9")] {
        let d = dist(name)?;
        assert!(d.editable, "{name}");
        assert_eq!(d.version.as_deref(), Some(version));
    }
    let legpkg = dist("legpkg")?;
    assert_eq!(legpkg.format, DistFormat::EggInfo);
    assert_eq!(legpkg.version.as_deref(), Some("0.4"));
    assert!(legpkg.editable);
    assert!(dist("pip").is_ok());

    let kind = |name: &str| {
        report
            .top_level
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.kind.clone())
    };
    assert_eq!(kind("normpkg"), Some(ModuleKind::Package));
    assert_eq!(kind("normns"), Some(ModuleKind::NamespacePackage));
    assert_eq!(
        kind("normfast"),
        Some(ModuleKind::Extension {
            abi_tag: Some("abi3".into())
        })
    );
    assert_eq!(kind("venvfoo"), Some(ModuleKind::Package));
    assert_eq!(kind("edpkg"), None, "editable code is not in site-packages");

    let pth = |suffix: &str| {
        report
            .pth_files
            .iter()
            .find(|p| p.path.to_string_lossy().ends_with(suffix))
            .ok_or(format!("no {suffix}"))
    };
    assert_eq!(
        pth("__editable__.edpkg-2.0.pth")?.paths[0].path,
        f.edpkg_root
    );
    let finder_pth = pth("__editable__.fpkg-0.9.pth")?;
    assert_eq!(finder_pth.paths, []);
    assert_eq!(finder_pth.imports.len(), 1);
    assert!(
        pth("easy-install.pth")?
            .paths
            .iter()
            .any(|p| p.path == f.legpkg_root && p.exists)
    );
    Ok(())
}

/// (distribution, how, tree, [(top-level name, its code)])
type EditableSummary<'a> = (
    Option<&'a str>,
    EditableVia,
    &'a Path,
    Vec<(&'a str, &'a Path)>,
);

#[test]
fn editable_sources_name_trees_and_top_level_names() -> TestResult {
    let f = fixture()?;
    let sources = editable_sources(&f.site_packages)?;
    let summary: Vec<EditableSummary> = sources
        .iter()
        .map(|s| {
            (
                s.distribution.as_deref(),
                s.via,
                s.root.as_path(),
                s.top_level
                    .iter()
                    .map(|r| (r.name.as_str(), r.path.as_path()))
                    .collect(),
            )
        })
        .collect();
    let fmod = f.fpkg_root.join("fmod.py");
    let fpkg = f.fpkg_root.join("fpkg");
    let edpkg = f.edpkg_root.join("edpkg");
    let legpkg = f.legpkg_root.join("legpkg");
    let expected: Vec<EditableSummary> = vec![
        (
            Some("edpkg"),
            EditableVia::PthPath,
            &f.edpkg_root,
            vec![("edpkg", &edpkg)],
        ),
        (
            Some("fpkg"),
            EditableVia::PthFinder,
            &fmod,
            vec![("fmod", &fmod)],
        ),
        (
            Some("fpkg"),
            EditableVia::PthFinder,
            &fpkg,
            vec![("fpkg", &fpkg)],
        ),
        (
            Some("legpkg"),
            EditableVia::EggLink,
            &f.legpkg_root,
            vec![("legpkg", &legpkg)],
        ),
    ];
    assert_eq!(summary, expected);
    Ok(())
}

#[test]
fn scan_json_uses_camel_case() -> TestResult {
    let f = fixture()?;
    let json = serde_json::to_value(scan_site_packages(&f.site_packages)?)?;
    for key in [
        "sitePackages",
        "distributions",
        "topLevel",
        "pthFiles",
        "editables",
        "problems",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let dist = &json["distributions"][0];
    for key in ["metadataPath", "topLevel", "recordEntries", "directUrl"] {
        assert!(dist.get(key).is_some(), "{key}");
    }
    Ok(())
}

#[test]
fn python_agrees_about_the_fixture() -> TestResult {
    // The fixture's installs are real: the virtualenv imports them.
    let f = fixture()?;
    let out = run(python_command(&f.python).args([
        "-c",
        "import normpkg.tool, edpkg.tool, fpkg.tool, fmod, legpkg.tool; print('ok')",
    ]))?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}
