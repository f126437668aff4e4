//! Property tests of the wire form and the registry.

use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;
use resource_core::{ContentHash, PathHash, Resource, ResourceKind, registry, wire};

fn any_kind() -> impl Strategy<Value = ResourceKind> {
    prop::sample::select(ResourceKind::ALL.to_vec())
}

fn any_resource() -> impl Strategy<Value = (Resource, String)> {
    (
        any_kind(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<Vec<u8>>(),
    )
        .prop_map(|(kind, name, leader_path, url, content)| {
            let resource = Resource {
                kind,
                name,
                path_hash: PathHash::of_bytes(leader_path.as_bytes()),
                url,
                content_hash: ContentHash::of_bytes(&content),
            };
            (resource, leader_path)
        })
}

proptest! {
    #[test]
    fn prop_wire_form_round_trips((resource, _) in any_resource()) {
        let encoded = wire::encode(&resource);
        prop_assert!(encoded.is_ascii());
        prop_assert_eq!(wire::decode(&encoded).ok(), Some(resource));
    }

    #[test]
    fn prop_wire_decoding_accepts_any_json_spacing((resource, _) in any_resource()) {
        let fields = [
            resource.name.as_str(),
            resource.path_hash.as_str(),
            resource.url.as_str(),
            resource.content_hash.as_str(),
        ];
        let pretty = serde_json::to_string_pretty(&fields).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let wire_form = format!("{}:{pretty}", resource.kind.toil_class());
        prop_assert_eq!(wire::decode(&wire_form).ok(), Some(resource));
    }

    #[test]
    fn prop_registry_finds_what_was_registered((resource, leader_path) in any_resource()) {
        let vars: HashMap<String, String> = [registry::entry(&resource)].into();
        let found = registry::lookup(Path::new(&leader_path), |name| vars.get(name).cloned());
        prop_assert_eq!(found.ok().flatten(), Some(resource));
    }

    #[test]
    fn prop_shell_quoting_survives_a_real_shell(value in any::<String>().prop_filter("no NUL", |v| !v.contains('\0'))) {
        let line = registry::export_line("V", &value);
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{line}\nprintf %s \"$V\""))
            .env_clear()
            .output()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(String::from_utf8_lossy(&output.stdout), value);
    }
}
