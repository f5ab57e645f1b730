//! Who asked a DNS query: the BPF programs note the process when they
//! redirect its socket to Purple's resolver and file it under the query's
//! source port as the packet leaves, so the resolver names the asker with one
//! map lookup, whatever number of processes and descriptors the sandbox holds.

use std::path::Path;

use aya::maps::{HashMap, Map, MapData};

use crate::maps::{Asker, AskerKey};
use crate::EbpfError;

/// The pinned `dns_askers` map of one container.
///
/// ```no_run
/// let pins = std::path::Path::new("/sys/fs/bpf/purple/demo");
/// let askers = purple_ebpf::DnsAskers::open(pins)?;
/// if let Some((pid, comm)) = askers.get(false, 40000) {
///     println!("{pid} {comm}");
/// }
/// # Ok::<(), purple_ebpf::EbpfError>(())
/// ```
pub struct DnsAskers(HashMap<MapData, AskerKey, Asker>);

impl DnsAskers {
    pub fn open(pin_dir: &Path) -> Result<Self, EbpfError> {
        let data = MapData::from_pin(pin_dir.join("dns_askers"))?;
        Ok(Self(HashMap::try_from(Map::from_map_data(data)?)?))
    }

    /// The (pid, comm) that sent a query from local `port` over TCP or UDP.
    pub fn get(&self, tcp: bool, port: u16) -> Option<(u32, String)> {
        let protocol = if tcp {
            libc::IPPROTO_TCP
        } else {
            libc::IPPROTO_UDP
        } as u8;
        let key = AskerKey {
            port,
            protocol,
            pad: 0,
        };
        let a = self.0.get(&key, 0).ok()?;
        let end = a.comm.iter().position(|&c| c == 0).unwrap_or(a.comm.len());
        Some((a.pid, String::from_utf8_lossy(&a.comm[..end]).into_owned()))
    }
}
