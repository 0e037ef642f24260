//! The RPKI JSON file parser (`routewatch::rpki::file::parse`: VRPs and ASPAs in the
//! Routinator, rpki-client and StayRTR shapes), then ASPA verification of a few paths made from
//! the input's bytes against the parsed set.
//!
//! Invariants: no panic; what loaded plus what was skipped never exceeds the entries read (a
//! report's counts are consistent with the set); every loaded VRP validates its own prefix from
//! its own AS as Valid; Invalid under the downstream procedure implies Invalid upstream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routewatch::rpki::aspa::{AspaState, Procedure};
use routewatch::rpki::RovState;

fuzz_target!(|data: &[u8]| {
    let Ok((rpki, report)) = routewatch::rpki::file::parse(data) else {
        return;
    };
    assert_eq!(report.loaded, rpki.vrps.len());
    for vrp in rpki.vrps.iter().take(64) {
        if vrp.asn() != 0 {
            assert_eq!(
                rpki.vrps.validate(&vrp.prefix(), Some(vrp.asn())),
                RovState::Valid,
                "{vrp}"
            );
        }
    }
    // Paths from the input's bytes over the customers the file named.
    let customers: Vec<u32> = rpki.aspas.iter().map(|(c, _)| c).take(16).collect();
    if customers.is_empty() {
        return;
    }
    for chunk in data.chunks(6).take(32) {
        let path: Vec<u32> = chunk
            .iter()
            .map(|b| customers[usize::from(*b) % customers.len()])
            .collect();
        let down = rpki.aspas.verify(&path, false, Procedure::Downstream);
        let up = rpki.aspas.verify(&path, false, Procedure::Upstream);
        if down.map(|v| v.state) == Some(AspaState::Invalid) {
            assert_eq!(up.map(|v| v.state), Some(AspaState::Invalid), "{path:?}");
        }
    }
});
