//! `purple profiles`: the profiles `--profile` finds, with their descriptions.

use anyhow::Result;
use purple_policy::load::Context;
use purple_policy::profiles;

pub fn profiles() -> Result<i32> {
    let names = profiles::names();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut broken = 0;
    for name in names {
        match profiles::resolve(&name, &Context::default()) {
            Ok(l) => println!("{name:width$}  {}  [{}]", l.policy.description, l.origin),
            Err(e) => {
                broken += 1;
                println!("{name:width$}  (invalid: run `purple policy show {name}`)");
                tracing::debug!("{e}");
            }
        }
    }
    Ok(i32::from(broken > 0))
}
