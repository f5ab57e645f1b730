//! Host entries the runtime adds to and removes from a running container's
//! rule tries: addresses learned from DNS answers, each as long as its TTL.

use std::net::IpAddr;
use std::path::Path;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Map, MapData, MapError};
use purple_policy::plan::{Action, Cidr, Protocol, Rule};

use crate::maps::{key_data, KeyData, RuleValue};
use crate::EbpfError;

/// The pinned `rules_v4` and `rules_v6` tries of one container.
///
/// ```no_run
/// use purple_policy::plan::Action;
/// let pins = std::path::Path::new("/sys/fs/bpf/purple/demo");
/// let mut hosts = purple_ebpf::LearnedHosts::open(pins)?;
/// let addr = "10.99.0.1".parse().unwrap();
/// hosts.insert(addr, 7, Action::Allow)?; // rule id 7 names why it is there
/// hosts.remove(addr)?;
/// # Ok::<(), purple_ebpf::EbpfError>(())
/// ```
pub struct LearnedHosts {
    v4: LpmTrie<MapData, [u8; 4], RuleValue>,
    v6: LpmTrie<MapData, [u8; 16], RuleValue>,
}

fn trie<K: aya::Pod>(
    pin_dir: &Path,
    name: &str,
) -> Result<LpmTrie<MapData, K, RuleValue>, EbpfError> {
    let data = MapData::from_pin(pin_dir.join(name))?;
    Ok(LpmTrie::try_from(Map::from_map_data(data)?)?)
}

impl LearnedHosts {
    pub fn open(pin_dir: &Path) -> Result<Self, EbpfError> {
        Ok(Self {
            v4: trie(pin_dir, "rules_v4")?,
            v6: trie(pin_dir, "rules_v6")?,
        })
    }

    /// Adds (or replaces) the host entry for `addr` (/32 or /128) with rule
    /// `id`. The caller keeps entries the plan wrote itself out of here.
    pub fn insert(&mut self, addr: IpAddr, id: u32, action: Action) -> Result<(), EbpfError> {
        let rule = Rule {
            cidr: Cidr::host(addr),
            action,
            ports: Vec::new(),
            protocol: Protocol::Any,
            name: None,
        };
        let value = RuleValue::new(id, &rule)?;
        match key_data(addr) {
            KeyData::V4(a) => self.v4.insert(&Key::new(32, a), value, 0)?,
            KeyData::V6(a) => self.v6.insert(&Key::new(128, a), value, 0)?,
        }
        Ok(())
    }

    /// Removes the host entry for `addr`; one already gone is fine.
    pub fn remove(&mut self, addr: IpAddr) -> Result<(), EbpfError> {
        let removed = match key_data(addr) {
            KeyData::V4(a) => self.v4.remove(&Key::new(32, a)),
            KeyData::V6(a) => self.v6.remove(&Key::new(128, a)),
        };
        match removed {
            Ok(()) | Err(MapError::ElementNotFound) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
