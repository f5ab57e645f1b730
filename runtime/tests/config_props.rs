//! Whatever a bundle's config.json says, `create`'s reading and checking of
//! it (before libcontainer runs) returns a spec or an error: never a panic.
//! Cases: `PROPTEST_CASES` (default 256 per property, a few seconds); raise it
//! for a longer fuzzing run.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use purple_policy::supervision::{AuditPlan, SessionPlan};
use purple_runtime::bundle::Bundle;
use purple_runtime::network::Enforcement;
use serde_json::{json, Value};

/// A busybox-like config.json, as `purple-oci spec` and the engines write it.
fn base() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0, "additionalGids": [1]},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "agent",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]}
        ],
        "annotations": {
            "io.purple.network": "{\"mode\":\"deny-list\",\"blocked_cidrs\":[\"10.0.0.0/8\"]}",
            "io.purple.audit": "{}",
            "io.purple.session": "{\"timeout_seconds\":5}"
        },
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "cgroupsPath": "/purple/x",
            "resources": {"memory": {"limit": 1048576}, "pids": {"limit": 10}},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            },
            "maskedPaths": ["/proc/kcore"]
        }
    })
}

/// Every value's place in `v` (a list of object keys and array indexes).
fn paths(v: &Value, here: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(json!(k));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(json!(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match k {
        Value::String(k) => &mut v[k.as_str()],
        Value::Number(i) => &mut v[i.as_u64().unwrap() as usize],
        _ => unreachable!(),
    })
}

/// Values a hostile bundle author would try: the edges libcontainer trips on.
fn hostile() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "=",
            "=x",
            "KEY",
            "K=\u{0}",
            "\u{0}",
            "relative/path",
            "/",
            "..",
            "/../..",
            "RLIMIT_NOFILE",
            "SCMP_ACT_NOTIFY",
            "user",
            "pid",
            "rbind",
            "\u{0}=x",
        ])
        .prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What `create` does with a config.json before libcontainer sees it.
fn create_checks(dir: &Path, text: &str) {
    fs::write(dir.join("config.json"), text).unwrap();
    let Ok(bundle) = Bundle::load(dir) else {
        return;
    };
    let mut spec = bundle.effective_spec(Some(Path::new("/purple/x")));
    let annotations = spec.annotations().clone();
    let _ = Enforcement::from_annotations(annotations.as_ref(), false);
    let _ = AuditPlan::from_annotations(annotations.as_ref());
    let _ = SessionPlan::from_annotations(annotations.as_ref());
    let _ = purple_runtime::seccomp::rewrite(&mut spec, &dir.join("seccomp.sock"));
}

fn bundle_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("rootfs")).unwrap();
    d
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let d = bundle_dir();
        create_checks(d.path(), &text);
    }

    /// The base config with one value anywhere replaced by a hostile one.
    #[test]
    fn mutated_configs_never_panic(pick in any::<prop::sample::Index>(), value in hostile()) {
        let mut v = base();
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        let path = pick.get(&all).clone();
        *at(&mut v, &path) = value;
        let d = bundle_dir();
        create_checks(d.path(), &v.to_string());
    }

    /// A hostile entry added to each list libcontainer walks in its init.
    #[test]
    fn hostile_list_entries_are_refused_or_accepted_never_panic(
        list in prop::sample::select(vec![
            "/process/env", "/process/args", "/process/rlimits", "/mounts",
            "/linux/uidMappings", "/linux/namespaces", "/linux/seccomp/syscalls",
        ]),
        value in hostile(),
    ) {
        let mut v = base();
        v.pointer_mut(list).unwrap().as_array_mut().unwrap().push(value);
        let d = bundle_dir();
        create_checks(d.path(), &v.to_string());
    }
}

/// The values that made libcontainer 0.7's init panic (or fail with no word
/// of the cause) are refused at load, naming the field.
#[test]
fn what_libcontainer_chokes_on_is_refused_naming_the_field() {
    let cases: &[(&str, Value, &str)] = &[
        ("/process/env/0", json!(""), "process.env[0]"),
        ("/process/env/0", json!("=x"), "process.env[0]"),
        ("/process/env/0", json!("KEY"), "process.env[0]"),
        ("/process/env/0", json!("K=a\u{0}b"), "process.env[0]"),
        ("/process/args", json!([]), "process.args"),
        ("/process/args", json!([""]), "process.args[0]"),
        ("/process/args/1", json!("a\u{0}"), "process.args[1]"),
        ("/process/cwd", json!("tmp"), "process.cwd"),
        ("/process/rlimits/0/soft", json!(4096), "process.rlimits[0]"),
        (
            "/mounts/1/destination",
            json!("data"),
            "mounts[1].destination",
        ),
        (
            "/linux/uidMappings/0/size",
            json!(0),
            "linux.uidMappings[0]",
        ),
        (
            "/linux/gidMappings/0/hostID",
            json!(u32::MAX),
            "linux.gidMappings[0]",
        ),
        ("/hostname", json!("a".repeat(65)), "hostname"),
    ];
    for (path, value, field) in cases {
        let mut v = base();
        *v.pointer_mut(path).unwrap() = value.clone();
        let d = bundle_dir();
        fs::write(d.path().join("config.json"), v.to_string()).unwrap();
        let err = Bundle::load(d.path()).err().map(|e| e.to_string());
        let err = err.unwrap_or_else(|| panic!("{path} = {value} was accepted"));
        assert!(
            err.contains(field) && err.contains("config.json"),
            "{path}: {err}"
        );
    }
    for missing in ["/process", "/linux"] {
        let mut v = base();
        let (parent, key) = missing.rsplit_once('/').unwrap();
        v.pointer_mut(if parent.is_empty() { "" } else { parent })
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
        let d = bundle_dir();
        fs::write(d.path().join("config.json"), v.to_string()).unwrap();
        let err = Bundle::load(d.path()).err().unwrap().to_string();
        assert!(err.contains(&format!("missing \"{key}\"")), "{err}");
    }
    let d = bundle_dir();
    fs::write(d.path().join("config.json"), base().to_string()).unwrap();
    Bundle::load(d.path()).expect("the base config is valid");
}
