//! Tests of the shared BGP wire layer: the cursor, UPDATE splitting and walking. The byte
//! builders here serve the feeds' tests too.

use std::net::{IpAddr, Ipv6Addr};
use std::ops::ControlFlow;

use ipnet::IpNet;

use super::wire::Cursor;
use super::{split_update, Family, UpdateError, WireError};

mod rfc7606;

// ---------------------------------------------------------------------------------------------
// Byte builders (BGP)

pub(crate) fn bgp_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

pub(crate) fn update(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut b = Vec::new();
    b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(&attrs);
    b.extend_from_slice(nlri);
    bgp_msg(2, &b)
}

pub(crate) fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code];
    if value.len() > 255 || flags & 0x10 != 0 {
        a[0] |= 0x10;
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

pub(crate) fn origin_igp() -> Vec<u8> {
    attr(0x40, 1, &[0])
}

pub(crate) fn as_path4(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v)
}

pub(crate) fn as_path2(asns: &[u16]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v)
}

pub(crate) fn as4_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0xc0, 17, &v)
}

pub(crate) fn next_hop(ip: [u8; 4]) -> Vec<u8> {
    attr(0x40, 3, &ip)
}

pub(crate) fn mp_reach_v6(nh: Ipv6Addr, nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&nh.octets());
    v.push(0);
    v.extend_from_slice(nlri);
    attr(0x80, 14, &v)
}

pub(crate) fn mp_unreach(afi: u16, safi: u8, nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v.extend_from_slice(nlri);
    attr(0x80, 15, &v)
}

/// One NLRI entry, with a path identifier when given.
pub(crate) fn pfx(s: &str, path_id: Option<u32>) -> Vec<u8> {
    let net: IpNet = s.parse().unwrap();
    let mut v = Vec::new();
    if let Some(id) = path_id {
        v.extend_from_slice(&id.to_be_bytes());
    }
    v.push(net.prefix_len());
    let n = (net.prefix_len() as usize).div_ceil(8);
    match net.addr() {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()[..n]),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()[..n]),
    }
    v
}

pub(crate) fn cap_as4(asn: u32) -> Vec<u8> {
    let mut c = vec![65, 4];
    c.extend_from_slice(&asn.to_be_bytes());
    c
}

pub(crate) fn cap_mp(afi: u16, safi: u8) -> Vec<u8> {
    let mut c = vec![1, 4];
    c.extend_from_slice(&afi.to_be_bytes());
    c.extend_from_slice(&[0, safi]);
    c
}

pub(crate) fn cap_add_path(entries: &[(u16, u8, u8)]) -> Vec<u8> {
    let mut c = vec![69, (entries.len() * 4) as u8];
    for (afi, safi, mode) in entries {
        c.extend_from_slice(&afi.to_be_bytes());
        c.extend_from_slice(&[*safi, *mode]);
    }
    c
}

/// A BGP OPEN with one capabilities parameter.
pub(crate) fn open(asn: u32, id: [u8; 4], caps: &[Vec<u8>]) -> Vec<u8> {
    let caps = caps.concat();
    let my_as = u16::try_from(asn).unwrap_or(23456);
    let mut b = vec![4];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&180u16.to_be_bytes());
    b.extend_from_slice(&id);
    if caps.is_empty() {
        b.push(0);
    } else {
        b.push((caps.len() + 2) as u8);
        b.push(2);
        b.push(caps.len() as u8);
        b.extend_from_slice(&caps);
    }
    bgp_msg(1, &b)
}

// ---------------------------------------------------------------------------------------------

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn prefixes_are_masked_and_lengths_checked() {
    let mut c = Cursor::new(&[13, 11, 13, 0]);
    assert_eq!(c.prefix(false).unwrap(), net("11.8.0.0/13"));
    assert_eq!(Cursor::new(&[0]).prefix(false).unwrap(), net("0.0.0.0/0"));
    assert_eq!(
        Cursor::new(&[33, 1, 2, 3, 4, 5]).prefix(false),
        Err(WireError::Invalid("prefix length"))
    );
    assert_eq!(
        Cursor::new(&[24, 1, 2]).prefix(false),
        Err(WireError::Truncated("prefix"))
    );
}

/// Every prefix the walker visits (no ADD-PATH), or its error.
fn walk(pdu: &[u8]) -> Result<Vec<(IpNet, bool)>, UpdateError> {
    let u = split_update(pdu)?;
    let mut seen = Vec::new();
    let walked = u.for_each_route(
        |_| false,
        |n| {
            seen.push((n.prefix, n.withdrawn));
            ControlFlow::<()>::Continue(())
        },
    )?;
    assert!(walked.is_continue());
    Ok(seen)
}

#[test]
fn the_walker_visits_withdrawals_then_announcements_and_stops_when_asked() {
    let pdu = update(
        &pfx("10.1.0.0/16", None),
        &[
            origin_igp(),
            as_path4(&[65001, 64496]),
            mp_reach_v6("2001:db8::1".parse().unwrap(), &pfx("2001:db8::/32", None)),
            mp_unreach(2, 1, &pfx("2001:db8:1::/48", None)),
        ],
        &[pfx("203.0.113.0/24", None), pfx("198.51.100.128/25", None)].concat(),
    );
    assert_eq!(
        walk(&pdu).unwrap(),
        vec![
            (net("10.1.0.0/16"), true),
            (net("2001:db8:1::/48"), true),
            (net("2001:db8::/32"), false),
            (net("203.0.113.0/24"), false),
            (net("198.51.100.128/25"), false),
        ]
    );
    // Stopping early on a match.
    let u = split_update(&pdu).unwrap();
    let mut n = 0;
    let walked = u.for_each_route(
        |_| false,
        |nlri| {
            n += 1;
            if nlri.prefix == net("2001:db8:1::/48") {
                ControlFlow::Break(nlri.prefix)
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert_eq!(walked, Ok(ControlFlow::Break(net("2001:db8:1::/48"))));
    assert_eq!(n, 2);
    // What the walk saw of the families.
    let sections = match u.for_each_route(|_| false, |_| ControlFlow::<()>::Continue(())) {
        Ok(ControlFlow::Continue(s)) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        sections.families().collect::<Vec<_>>(),
        vec![
            Family::IPV4_UNICAST,
            Family::IPV6_UNICAST,
            Family::IPV6_UNICAST
        ]
    );
}

#[test]
fn a_repeated_mp_attribute_fails_the_walk_before_any_prefix_is_visited() {
    let reach = mp_reach_v6("2001:db8::1".parse().unwrap(), &pfx("2001:db8::/32", None));
    let pdu = update(
        &pfx("10.1.0.0/16", None),
        &[origin_igp(), as_path4(&[64496]), reach.clone(), reach],
        &[],
    );
    let u = split_update(&pdu).unwrap();
    let mut visited = 0;
    let walked = u.for_each_route(
        |_| false,
        |_| {
            visited += 1;
            ControlFlow::<()>::Continue(())
        },
    );
    assert!(matches!(walked, Err(UpdateError::MalformedMp(_))));
    assert_eq!(visited, 0);
    assert_eq!(walked.unwrap_err().label(), "malformed_mp_attribute");
}
