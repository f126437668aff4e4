//! The parsers of files found in a `site-packages` or a virtualenv, and of the interpreter's
//! answer.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use resource_modules::fuzzing;
use resource_modules::venv::PyvenvCfg;

use crate::split_choice;

/// Distribution metadata: `METADATA`/`PKG-INFO` headers, `RECORD`, `direct_url.json`, metadata
/// directory names and the interpreter's facts, chosen by the first byte.
pub fn dist_metadata(data: &[u8]) {
    let (choice, bytes) = split_choice(data, 5);
    let text = String::from_utf8_lossy(bytes);
    match choice {
        0 => {
            for (key, value) in fuzzing::metadata_headers(bytes) {
                assert!(!key.contains(':') && !key.contains('\n'), "key {key:?}");
                assert_eq!(key, key.trim().to_ascii_lowercase(), "key {key:?}");
                assert_eq!(value, value.trim(), "value {value:?}");
            }
        }
        1 => {
            let (entries, top_level, pth_files) = fuzzing::record(bytes);
            let lines = bytes.split(|&b| b == b'\n').count();
            assert!(entries <= lines, "{entries} entries in {lines} lines");
            for name in &top_level {
                assert!(
                    !name.is_empty() && !name.contains(['/', '.', '\n']),
                    "top-level name {name:?}"
                );
            }
            for pth in &pth_files {
                assert!(pth.ends_with(".pth") && !pth.contains('/'), "{pth:?}");
            }
        }
        2 => {
            let (parsed, problems) = fuzzing::direct_url(&text);
            let json = serde_json::from_str::<serde_json::Value>(&text).ok();
            assert_eq!(problems, usize::from(json.is_none()), "problems");
            if let Some(direct) = parsed {
                let url = json.as_ref().and_then(|v| v.get("url")?.as_str());
                assert_eq!(url, Some(direct.url.as_str()));
            }
        }
        3 => {
            for suffix in [".dist-info", ".egg-info"] {
                let (name, version) = fuzzing::metadata_dir_name(&text, suffix);
                assert!(text.contains(&name), "name {name:?} of {text:?}");
                if let Some(version) = version {
                    assert!(!version.contains('-') && text.contains(&version));
                    assert!(!name.contains('-'), "name {name:?}");
                }
            }
            if let Some(path) = fuzzing::editable_file_url(&text) {
                assert!(path.is_absolute(), "{path:?} from {text:?}");
            }
        }
        _ => {
            let _ = fuzzing::interpreter_facts(bytes);
        }
    }
}

/// `.pth` files (resolved against a `site-packages` that does not exist) and `pyvenv.cfg`.
pub fn pth_pyvenv(data: &[u8]) {
    let (choice, bytes) = split_choice(data, 2);
    if choice == 0 {
        let site = Path::new("/nonexistent/resource-fuzz/site-packages");
        let pth = fuzzing::pth(site, bytes);
        for entry in &pth.paths {
            assert!(entry.path.is_absolute(), "{:?}", entry.path);
            assert!(!entry.exists || entry.path.exists(), "{:?}", entry.path);
        }
        for import in &pth.imports {
            assert!(import.starts_with("import"), "{import:?}");
        }
        assert!(pth.finders.is_empty(), "a finder in a missing directory");
        let lines = bytes.split(|&b| b == b'\n').count();
        assert!(pth.paths.len() + pth.imports.len() <= lines);
    } else {
        let text = String::from_utf8_lossy(bytes);
        let cfg = PyvenvCfg::parse(Path::new("/v/pyvenv.cfg"), &text);
        for (key, value) in &cfg.entries {
            assert_eq!(key, &key.trim().to_lowercase(), "key {key:?}");
            assert_eq!(value, value.trim(), "value {value:?}");
        }
        let _ = (
            cfg.home(),
            cfg.version(),
            cfg.include_system_site_packages(),
        );
    }
}

/// The literals of setuptools' editable finders: whatever parses, written back as Python source
/// (with every escape form), parses to the same value.
pub fn pyliteral(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    let (mapping, namespaces) = fuzzing::finder_literals(&source);
    let mut rewritten = String::new();
    if let Some(mapping) = &mapping {
        rewritten.push_str("MAPPING: dict[str, str] = {");
        for (key, value) in mapping {
            write_str(&mut rewritten, key.as_bytes());
            rewritten.push_str(": ");
            write_str(&mut rewritten, value.as_bytes());
            rewritten.push_str(",\n ");
        }
        rewritten.push_str("}\n");
    }
    if let Some(namespaces) = &namespaces {
        rewritten.push_str("NAMESPACES = {");
        for (key, values) in namespaces {
            write_str(&mut rewritten, key.as_bytes());
            rewritten.push_str(": [");
            for value in values {
                write_str(&mut rewritten, value.as_bytes());
                rewritten.push_str(", ");
            }
            rewritten.push_str("], ");
        }
        rewritten.push_str("}\n");
    }
    let again: fuzzing::FinderLiterals = fuzzing::finder_literals(&rewritten);
    assert_eq!(again, (mapping, namespaces), "rewritten as {rewritten:?}");
}

/// A Python string literal of `bytes`, cycling through the escape forms Python has: text that is
/// UTF-8 as itself or as `\u`/`\U`/`\x`/octal escapes, other bytes as `surrogateescape` (`\udcXX`).
fn write_str(out: &mut String, bytes: &[u8]) {
    let quote = if bytes.len().is_multiple_of(2) {
        '\''
    } else {
        '"'
    };
    out.push(quote);
    for (i, chunk) in bytes.utf8_chunks().enumerate() {
        for (j, ch) in chunk.valid().chars().enumerate() {
            let code = u32::from(ch);
            match (i + j) % 4 {
                _ if ch == quote || ch == '\\' => {
                    let _ = write!(out, "\\{ch}");
                }
                _ if ch == '\n' => out.push_str("\\n"),
                0 => out.push(ch),
                1 if code < 0x100 => {
                    let _ = write!(out, "\\x{code:02x}");
                }
                1 if code < 0x10000 => {
                    let _ = write!(out, "\\u{code:04X}");
                }
                2 if code < 0o400 => {
                    let _ = write!(out, "\\{code:03o}");
                }
                _ => {
                    let _ = write!(out, "\\U{code:08x}");
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\udc{byte:02x}");
        }
    }
    out.push(quote);
}
