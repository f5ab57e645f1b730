//! Bounded by the sandbox: a flood of violations folds. Blocked datagrams
//! to 250 addresses of a denied /24 for 10 s leave a log of a few MB that
//! still names every destination, with counts that add up to what the
//! kernel counted.

use std::collections::BTreeMap;
use std::fs;

use purple_integration::audited::{delete_and_wait, sleeper};
use purple_integration::*;
use purple_runtime::audit;

#[test]
fn a_flood_of_blocked_datagrams_folds_and_names_every_destination() {
    let (_net, oci, id, _b) = sleeper("203.0.113.0/24", None);
    let out = oci.run(&[
        "exec",
        &id,
        "netprobe",
        "udp-flood",
        "203.0.113",
        "250",
        "10",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let stats: serde_json::Value =
        serde_json::from_str(&oci.ok(&["events", "--stats", &id])).unwrap();
    let denied = stats["purple"]["network"]["denied"].as_u64().unwrap();
    let in_kernel = stats["purple"]["network"]["events_lost"].as_u64().unwrap();
    delete_and_wait(&oci, &id);
    assert_no_leftovers(&oci, &id);
    let log = audit::default_path(&id);
    let size = fs::metadata(&log).unwrap().len();
    let recs = audit::verify(&log).unwrap();
    let mut by_dest: BTreeMap<String, u64> = BTreeMap::new();
    let mut folded = 0;
    for r in recs.iter().filter(|r| r.kind == "network.blocked") {
        let n = audit::stands_for(audit::Kind::NetworkBlocked, &r.details);
        folded += u64::from(n > 1);
        *by_dest
            .entry(r.details["destination"].as_str().unwrap().to_owned())
            .or_default() += n;
    }
    let recorded: u64 = by_dest.values().sum();
    eprintln!(
        "{said}: {denied} denied, {recorded} in {} records ({folded} folded), {in_kernel} lost in \
         the kernel, log {size} bytes",
        recs.len()
    );
    assert!(said.starts_with("sent "), "{said}");
    assert_eq!(by_dest.len(), 250, "{:?}", by_dest.keys());
    assert!((1..=250).all(|i| by_dest.contains_key(&format!("203.0.113.{i}"))));
    assert_eq!(recorded + in_kernel, denied);
    assert!(folded >= 250, "{folded} folded records");
    assert!(size < 8 << 20, "log of {size} bytes");
    fs::remove_file(&log).unwrap();
}
