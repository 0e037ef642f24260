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
