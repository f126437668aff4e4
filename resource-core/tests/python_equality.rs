//! Our wire form and path hash against the real `python3`: `json.dumps` and `hashlib.md5` over
//! generated cases, all checked by one Python process.

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use resource_core::{ContentHash, PathHash, Resource, ResourceKind, wire};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CASES: usize = 1500;

const PYTHON_CHECKER: &str = r#"
import hashlib, json, sys
cases = json.loads(sys.stdin.buffer.read().decode("utf-8"))
out = []
for name, path, url in cases:
    path_hash = hashlib.md5(path.encode()).hexdigest()
    content_hash = hashlib.md5(url.encode()).hexdigest()
    out.append([json.dumps([name, path_hash, url, content_hash]), path_hash])
sys.stdout.buffer.write(json.dumps(out).encode("ascii"))
"#;

/// Strings that stress the encoder: any Unicode scalar, with ASCII controls, quotes, backslashes
/// and astral characters made common.
fn tricky_string() -> impl Strategy<Value = String> {
    let special = prop_oneof![
        Just('"'),
        Just('\\'),
        Just('/'),
        Just('\u{7f}'),
        Just('\u{2028}'),
        Just('\u{fffd}'),
        Just('😀'),
        Just('\u{10ffff}'),
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or(' ')),
    ];
    proptest::collection::vec(
        prop_oneof![3 => any::<char>(), 1 => special, 2 => proptest::char::range(' ', '~')],
        0..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[test]
fn wire_form_and_path_hash_equal_pythons_over_generated_cases() -> TestResult {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (tricky_string(), tricky_string(), tricky_string());
    let mut cases = Vec::with_capacity(CASES);
    for _ in 0..CASES {
        cases.push(
            strategy
                .new_tree(&mut runner)
                .map_err(|reason| reason.to_string())?
                .current(),
        );
    }

    let mut python = Command::new("python3")
        .args(["-c", PYTHON_CHECKER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("python3 is required for this test: {error}"))?;
    python
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(&serde_json::to_vec(&cases)?)?;
    let output = python.wait_with_output()?;
    assert!(output.status.success(), "python3 failed");
    let expected: Vec<(String, String)> = serde_json::from_slice(&output.stdout)?;
    assert_eq!(expected.len(), CASES);

    for ((name, path, url), (python_json, python_path_hash)) in cases.iter().zip(&expected) {
        let path_hash = PathHash::of_bytes(path.as_bytes());
        assert_eq!(
            path_hash.as_str(),
            python_path_hash,
            "path hash of {path:?}"
        );
        let resource = Resource {
            kind: ResourceKind::File,
            name: name.clone(),
            path_hash,
            url: url.clone(),
            content_hash: ContentHash::of_bytes(url.as_bytes()),
        };
        assert_eq!(
            &wire::resource_json(&resource),
            python_json,
            "json of {name:?} {url:?}"
        );
        assert_eq!(wire::decode(&wire::encode(&resource))?, resource);
    }
    Ok(())
}
