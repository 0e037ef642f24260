//! The BGP UPDATE walker: the first input byte holds the options (bit 0: IPv4 families carry
//! ADD-PATH path ids, bit 1: IPv6 ones do, bit 2: 2-byte AS numbers), the rest is one BGP
//! message. It is split (`split_update`), its End-of-RIB marker and MP_REACH family read, its
//! routes walked (`Update::for_each_route`), once whole and once stopped early, and its AS path
//! decoded (`decode_as_path`) and converted.
//!
//! Invariants: no panic; every route is of a family that carries routes, of that family's
//! address type, with its host bits clear, and with path id 0 unless its family uses ADD-PATH;
//! withdrawals come before announcements; a walk stopped after k routes visits exactly k; the
//! families returned are those of the routes visited.

#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use routewatch::ingest::bgp::{convert_path, decode_as_path, split_update, Family, Nlri};

fuzz_target!(|data: &[u8]| {
    let Some((&options, pdu)) = data.split_first() else {
        return;
    };
    let add_path = |f: Family| match f.afi {
        1 => options & 1 != 0,
        2 => options & 2 != 0,
        _ => false,
    };
    let legacy_as_path = options & 4 != 0;
    let Ok(update) = split_update(pdu) else {
        return;
    };
    let _ = update.end_of_rib();
    let _ = update.reach_family();

    let mut routes: Vec<Nlri> = Vec::new();
    let walked = update.for_each_route(add_path, |n| {
        routes.push(n);
        ControlFlow::<()>::Continue(())
    });
    if let Ok(ControlFlow::Continue(sections)) = walked {
        let families: Vec<Family> = sections.families().collect();
        let mut announced = false;
        for n in &routes {
            assert!(n.family.carries_routes(), "{n:?}");
            assert_eq!(n.prefix.addr().is_ipv6(), n.family.afi == 2, "{n:?}");
            assert_eq!(n.prefix.trunc(), n.prefix, "host bits: {n:?}");
            assert!(add_path(n.family) || n.path_id == 0, "{n:?}");
            assert!(families.contains(&n.family), "{n:?} not in {families:?}");
            assert!(
                !(announced && n.withdrawn),
                "withdrawal after an announcement"
            );
            announced |= !n.withdrawn;
        }
        // Stopped early after k routes: exactly k visited, and the walk says it stopped.
        if !routes.is_empty() {
            let k = routes.len().div_ceil(2);
            let mut visited = 0;
            let stopped = update.for_each_route(add_path, |_| {
                visited += 1;
                if visited == k {
                    ControlFlow::Break(visited)
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert!(matches!(stopped, Ok(ControlFlow::Break(v)) if v == k));
        }
    }
    // The AS path, as BMP decodes it for a matched announcement (whatever the walk said).
    if let Ok(Some(path)) = decode_as_path(update.pdu, options & 3 != 0, legacy_as_path) {
        let _ = convert_path(&path);
    }
});
