//! Decision counters read back from a container's pinned maps.

use std::path::Path;

use aya::maps::{Array, Map, MapData};
use serde::Serialize;

use crate::maps::{
    STAT_ALLOWED, STAT_DENIED, STAT_DNS_REDIRECTED, STAT_EVENTS_LOST, STAT_PORTLESS_DENIED,
};
use crate::EbpfError;

/// Totals and per-rule hits (rule 0: the mode's default decided).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub allowed: u64,
    pub denied: u64,
    pub events_lost: u64,
    /// DNS queries (connects and datagrams to port 53) sent to Purple's resolver.
    pub dns_redirected: u64,
    /// Denied packets and calls without a port (ICMP, raw IP), also in `denied`.
    pub portless_denied: u64,
    /// (rule id, hits) for every rule that was hit at least once.
    pub rule_hits: Vec<(u32, u64)>,
}

fn array(pin_dir: &Path, name: &str) -> Result<Array<MapData, u64>, EbpfError> {
    let data = MapData::from_pin(pin_dir.join(name))?;
    Ok(Array::try_from(Map::from_map_data(data)?)?)
}

/// Reads the counters of the container whose objects are pinned in `pin_dir`.
pub fn stats(pin_dir: &Path) -> Result<Stats, EbpfError> {
    let s = array(pin_dir, "stats")?;
    let hits = array(pin_dir, "rule_hits")?;
    let rule_hits = hits
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.ok().filter(|&n| n > 0).map(|n| (i as u32, n)))
        .collect();
    Ok(Stats {
        allowed: s.get(&STAT_ALLOWED, 0)?,
        denied: s.get(&STAT_DENIED, 0)?,
        events_lost: s.get(&STAT_EVENTS_LOST, 0)?,
        dns_redirected: s.get(&STAT_DNS_REDIRECTED, 0)?,
        portless_denied: s.get(&STAT_PORTLESS_DENIED, 0)?,
        rule_hits,
    })
}
