//! Tests of the ASPA verification procedures.

use super::*;

fn set(records: &[(u32, &[u32])]) -> AspaSet {
    AspaSet::from_records(records.iter().map(|(c, p)| (*c, p.iter().copied())))
}

#[test]
fn a_customer_to_provider_chain_is_valid_both_ways_and_a_valley_is_a_leak() {
    // 64501 (origin) is a customer of 64502; 64503 a customer of 64502 and of 64504.
    let aspas = set(&[
        (64501, &[64502]),
        (64502, &[64510]),
        (64503, &[64502, 64504]),
        (64504, &[64599]),
    ]);
    // Path as received: 64504 64503 64502 64501 — 64503 took it from its provider 64502 and
    // gave it to its other provider 64504: the textbook leak, 64503 the leaker.
    let leak = [64504, 64503, 64502, 64501];
    for p in [Procedure::Upstream, Procedure::Downstream] {
        let v = aspas.verify(&leak, false, p);
        assert_eq!(v.map(|v| v.state), Some(AspaState::Invalid), "{p:?}");
        assert_eq!(v.and_then(|v| v.leaker), Some(64503), "{p:?}");
    }
    // Up only: 64502 64501 (received by the provider's provider) is Valid.
    let up = [64502, 64501];
    assert_eq!(
        aspas
            .verify(&up, false, Procedure::Upstream)
            .map(|v| v.state),
        Some(AspaState::Valid)
    );
    // Prepending collapses.
    let prepended = [64502, 64502, 64501, 64501, 64501];
    assert_eq!(
        aspas.verify(&prepended, false, Procedure::Upstream),
        aspas.verify(&up, false, Procedure::Upstream)
    );
}

#[test]
fn an_as_set_is_invalid_and_an_empty_path_is_not_verified() {
    let aspas = set(&[(64501, &[64502])]);
    let v = aspas.verify(&[64502], true, Procedure::Downstream);
    assert_eq!(
        v.map(|v| (v.state, v.as_set)),
        Some((AspaState::Invalid, true))
    );
    assert_eq!(aspas.verify(&[], false, Procedure::Upstream), None);
}

/// The relationship a valley-free path gives one hop AS(i) → AS(i+1).
#[derive(Clone, Copy, PartialEq)]
enum Rel {
    /// AS(i+1) is AS(i)'s provider.
    Up,
    /// AS(i+1) is AS(i)'s lateral peer (at most once, at the apex).
    Lateral,
    /// AS(i) is AS(i+1)'s provider.
    Down,
}

/// A reference written from the definitions rather than the ramp arithmetic: `path` is
/// collapsed, origin first. Upstream: every hop must go up. Downstream: some valley-free
/// assignment (up*, at most one lateral, down*) must exist. A hop may go up unless the lower
/// AS's ASPA rules it out, and is proven up when its ASPA lists the upper AS (down: the same
/// with the roles swapped). Invalid: no possible assignment; Valid: a proven one; else Unknown.
fn reference(set: &AspaSet, path: &[u32], procedure: Procedure) -> AspaState {
    let n = path.len();
    let may = |c, p| set.hop(c, p) != Hop::NotProviderPlus;
    let proven = |c, p| set.hop(c, p) == Hop::ProviderPlus;
    let fits = |rels: &[Rel], ok: &dyn Fn(u32, u32) -> bool| {
        rels.iter().enumerate().all(|(i, r)| match r {
            Rel::Up => ok(path[i], path[i + 1]),
            Rel::Down => ok(path[i + 1], path[i]),
            Rel::Lateral => true,
        })
    };
    let candidates: Vec<Vec<Rel>> = match procedure {
        Procedure::Upstream => vec![vec![Rel::Up; n.saturating_sub(1)]],
        Procedure::Downstream => {
            let hops = n.saturating_sub(1);
            let mut all = Vec::new();
            // up^k, then either down^(hops-k) or lateral down^(hops-k-1).
            for k in 0..=hops {
                let mut v = vec![Rel::Up; k];
                v.extend(std::iter::repeat_n(Rel::Down, hops - k));
                all.push(v);
                if k < hops {
                    let mut v = vec![Rel::Up; k];
                    v.push(Rel::Lateral);
                    v.extend(std::iter::repeat_n(Rel::Down, hops - k - 1));
                    all.push(v);
                }
            }
            all
        }
    };
    if candidates.iter().any(|c| fits(c, &proven)) {
        AspaState::Valid
    } else if candidates.iter().any(|c| fits(c, &may)) {
        AspaState::Unknown
    } else {
        AspaState::Invalid
    }
}

/// Checks `set.verify` against the reference for `path` (as received: sender first) and both
/// procedures, and that an Invalid verdict names the first AS, from the origin, that is not an
/// attested provider of the AS before it.
fn check(set: &AspaSet, received: &[u32]) {
    let mut collapsed: Vec<u32> = received.iter().rev().copied().collect();
    collapsed.dedup();
    for procedure in [Procedure::Upstream, Procedure::Downstream] {
        let got = set.verify(received, false, procedure).expect("non-empty");
        let want = reference(set, &collapsed, procedure);
        assert_eq!(got.state, want, "{received:?} {procedure:?} {set:?}");
        let leaker = (got.state == AspaState::Invalid)
            .then(|| {
                collapsed
                    .windows(2)
                    .find(|w| set.hop(w[0], w[1]) == Hop::NotProviderPlus)
                    .map(|w| w[1])
            })
            .flatten();
        assert_eq!(got.leaker, leaker, "{received:?} {procedure:?}");
    }
    // Downstream is the lenient procedure: whatever it finds Invalid, upstream does too.
    let down = set
        .verify(received, false, Procedure::Downstream)
        .map(|v| v.state);
    let up = set
        .verify(received, false, Procedure::Upstream)
        .map(|v| v.state);
    if down == Some(AspaState::Invalid) {
        assert_eq!(up, Some(AspaState::Invalid), "{received:?}");
    }
}

/// Every ASPA set over four ASes (each: no ASPA, or any subset of the other three as
/// providers — 9^4 = 6561 sets) against every path of one to four distinct ASes (64 paths):
/// 419,904 cases per procedure, each checked against the reference.
#[test]
fn every_aspa_set_and_path_over_four_ases_agrees_with_the_reference() {
    const ASES: [u32; 4] = [64501, 64502, 64503, 64504];
    let mut paths: Vec<Vec<u32>> = Vec::new();
    fn extend(prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if !prefix.is_empty() {
            out.push(prefix.clone());
        }
        if prefix.len() == ASES.len() {
            return;
        }
        for a in ASES {
            if !prefix.contains(&a) {
                prefix.push(a);
                extend(prefix, out);
                prefix.pop();
            }
        }
    }
    extend(&mut Vec::new(), &mut paths);
    assert_eq!(paths.len(), 64);
    let mut counts = [0usize; 3];
    for code in 0..9usize.pow(4) {
        let mut records = Vec::new();
        let mut c = code;
        for (i, &customer) in ASES.iter().enumerate() {
            let choice = c % 9;
            c /= 9;
            if choice == 0 {
                continue; // no ASPA
            }
            // choice-1 as a 3-bit mask over the other three ASes (0: an ASPA with AS0 only).
            let others: Vec<u32> = ASES.iter().copied().filter(|&a| a != ASES[i]).collect();
            let mask = choice - 1;
            let mut providers: Vec<u32> = (0..3)
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| others[b])
                .collect();
            if providers.is_empty() {
                providers.push(0);
            }
            records.push((customer, providers));
        }
        let set = AspaSet::from_records(records);
        for p in &paths {
            check(&set, p);
            let state = set.verify(p, false, Procedure::Downstream).map(|v| v.state);
            counts[AspaState::ALL
                .iter()
                .position(|s| Some(*s) == state)
                .unwrap_or(0)] += 1;
        }
    }
    // The space holds every outcome, so the test exercises all three.
    assert!(counts.iter().all(|&n| n > 10_000), "{counts:?}");
}

/// Random longer paths with prepending over a larger AS space.
#[test]
fn random_long_prepended_paths_agree_with_the_reference() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for _ in 0..3000 {
        let universe = 3 + next(6) as u32;
        let mut records: Vec<(u32, Vec<u32>)> = Vec::new();
        for c in 0..universe {
            if next(3) == 0 {
                continue; // no ASPA
            }
            let mut providers = Vec::new();
            for p in 0..universe {
                if p != c && next(2) == 0 {
                    providers.push(64500 + p);
                }
            }
            records.push((64500 + c, providers));
        }
        let set = AspaSet::from_records(records);
        let len = 1 + next(9) as usize;
        let mut path = Vec::with_capacity(len);
        while path.len() < len {
            let a = 64500 + next(u64::from(universe)) as u32;
            if path.last() != Some(&a) && path.contains(&a) {
                continue; // a loop is not a path; prepending (a repeat in place) is
            }
            path.push(a);
        }
        check(&set, &path);
    }
}

#[test]
fn paths_past_the_fixed_buffer_verify_like_short_ones() {
    // 40 distinct ASes, each the provider of the one before: Valid upstream; break one hop.
    let path: Vec<u32> = (0..40).map(|i| 65000 + i).rev().collect();
    let mut records: Vec<(u32, Vec<u32>)> = (0..39).map(|i| (65000 + i, vec![65001 + i])).collect();
    let set = AspaSet::from_records(records.clone());
    assert_eq!(
        set.verify(&path, false, Procedure::Upstream)
            .map(|v| v.state),
        Some(AspaState::Valid)
    );
    records[34].1 = vec![1];
    let set = AspaSet::from_records(records);
    let v = set.verify(&path, false, Procedure::Upstream);
    assert_eq!(
        v.map(|v| (v.state, v.leaker)),
        Some((AspaState::Invalid, Some(65035)))
    );
}

#[test]
fn union_and_change_detection() {
    let a = set(&[(64501, &[64502])]);
    let b = set(&[(64501, &[64503]), (64504, &[64505])]);
    let u = a.union(&b);
    assert_eq!(u.providers(64501), Some(&[64502, 64503][..]));
    assert_eq!(u.len(), 2);
    assert_eq!(a.changed_customers(&b), vec![64501, 64504]);
    assert!(u.changed_customers(&u.clone()).is_empty());
    // Per-AFI records of one customer merge.
    let merged = AspaSet::from_records([(64501u32, vec![64502u32]), (64501, vec![64503])]);
    assert_eq!(merged, set(&[(64501, &[64502, 64503])]));
}
