//! docs/quickstart.md as a newcomer follows it: every `sh` block run in
//! order in one shell, from the checkout, with the binaries under test first
//! on PATH; what the page says you see is checked.

use std::fs;
use std::process::Command;

use purple_integration::{purple, repo};

/// The `sh` blocks of the page, in order.
fn sh_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an sh block is not closed");
    blocks
}

/// The fixed names the page uses, gone before and after.
fn clean() {
    let _ = fs::remove_dir_all("/tmp/purple-quickstart");
    for id in ["first-agent", "first-policy"] {
        let _ = fs::remove_file(format!("/var/log/purple/{id}.jsonl"));
    }
}

#[test]
fn every_command_of_the_quick_start_works_as_it_says() {
    let page = fs::read_to_string(repo().join("docs/quickstart.md")).unwrap();
    let blocks = sh_blocks(&page);
    assert_eq!(blocks.len(), 4, "{blocks:#?}");
    let script = blocks.concat();
    clean();
    let bin = purple().parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-x", "-c", &script])
        .current_dir(repo())
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    clean();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // What step 3 shows, line for line (the time and memory vary).
    let shown = page
        .split("You see:\n\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let mut lines = shown.lines();
    for expected in lines.by_ref().take(2) {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    let exit_line = lines.next().unwrap();
    let fixed = exit_line.split(" in ").next().unwrap();
    assert!(stderr.contains(fixed), "{fixed:?} not in:\n{stderr}");
    assert!(
        stderr.contains(
            "1 violation (network.blocked 1); audit log /var/log/purple/first-agent.jsonl"
        ),
        "{stderr}"
    );
    for said in [
        "#2 deny 169.254.169.254/32",
        "intact and closed",
        "valid (my-agent)",
        "name: my-agent",
    ] {
        assert!(stdout.contains(said), "{said:?} not in:\n{stdout}");
    }
    assert!(
        stderr.contains("wrote my-agent.yaml from secure-agent"),
        "{stderr}"
    );
    // The runs left no sandbox behind.
    for id in ["first-agent", "first-policy"] {
        let state = Command::new(purple_integration::purple_oci())
            .args(["state", id])
            .output()
            .unwrap();
        assert!(!state.status.success(), "{id} still exists");
    }
}
