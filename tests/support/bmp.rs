//! BMP messages built byte by byte (RFC 7854) for tests that play a router over TCP.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The local AS of the monitored router in these messages.
pub const ROUTER_AS: u32 = 65001;

/// A BMP message of `msg_type` with the common header of `version`.
pub fn bmp_message(version: u8, msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![version];
    m.extend_from_slice(&((6 + body.len()) as u32).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// An information TLV.
pub fn tlv(t: u16, value: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// An Initiation naming the router `sys_name`.
pub fn initiation(sys_name: &str) -> Vec<u8> {
    let body = [tlv(1, b"routewatch test"), tlv(2, sys_name.as_bytes())].concat();
    bmp_message(3, 4, &body)
}

/// Timestamp (seconds) of the messages built without one.
pub const TIMESTAMP: u32 = 1_700_000_000;

/// The per-peer header of a global IPv4 pre-policy peer with 4-byte AS paths.
pub fn peer_header(peer: Ipv4Addr, asn: u32) -> Vec<u8> {
    peer_header_at(peer, asn, TIMESTAMP)
}

/// [`peer_header`] with the timestamp `seconds`.
pub fn peer_header_at(peer: Ipv4Addr, asn: u32, seconds: u32) -> Vec<u8> {
    let mut h = vec![0, 0];
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&[0; 12]);
    h.extend_from_slice(&peer.octets());
    h.extend_from_slice(&asn.to_be_bytes());
    h.extend_from_slice(&peer.octets());
    h.extend_from_slice(&seconds.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h
}

/// A BGP message of `msg_type`.
pub fn bgp_message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// An OPEN with IPv4 unicast and 4-octet AS capabilities.
pub fn bgp_open(asn: u32, id: Ipv4Addr) -> Vec<u8> {
    let mut caps = vec![1, 4, 0, 1, 0, 1, 65, 4];
    caps.extend_from_slice(&asn.to_be_bytes());
    let mut b = vec![4];
    b.extend_from_slice(&u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    b.extend_from_slice(&90u16.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push((caps.len() + 2) as u8);
    b.push(2);
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    bgp_message(1, &b)
}

/// A Peer Up of `peer` (AS `asn`) at a router of AS `local_as`.
pub fn peer_up(peer: Ipv4Addr, asn: u32, local_as: u32) -> Vec<u8> {
    let mut b = peer_header(peer, asn);
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&[127, 0, 0, 2]);
    b.extend_from_slice(&179u16.to_be_bytes());
    b.extend_from_slice(&40179u16.to_be_bytes());
    b.extend_from_slice(&bgp_open(local_as, Ipv4Addr::new(127, 0, 0, 2)));
    b.extend_from_slice(&bgp_open(asn, peer));
    bmp_message(3, 3, &b)
}

/// NLRI encoding of an IPv4 /24.
pub fn nlri_24(prefix: [u8; 3]) -> Vec<u8> {
    vec![24, prefix[0], prefix[1], prefix[2]]
}

/// Route Monitoring: `prefix` announced with the AS_SEQUENCE `path`, or withdrawn (`None`).
pub fn route_monitoring(
    peer: Ipv4Addr,
    asn: u32,
    prefix: [u8; 3],
    path: Option<&[u32]>,
) -> Vec<u8> {
    route_monitoring_at(peer, asn, prefix, path, TIMESTAMP)
}

/// [`route_monitoring`] with the timestamp `seconds`.
pub fn route_monitoring_at(
    peer: Ipv4Addr,
    asn: u32,
    prefix: [u8; 3],
    path: Option<&[u32]>,
    seconds: u32,
) -> Vec<u8> {
    let mut update = Vec::new();
    match path {
        Some(path) => {
            let mut seg = vec![2, path.len() as u8];
            for a in path {
                seg.extend_from_slice(&a.to_be_bytes());
            }
            let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
            attrs.extend_from_slice(&[0x40, 2, seg.len() as u8]);
            attrs.extend_from_slice(&seg);
            attrs.extend_from_slice(&[0x40, 3, 4, 10, 0, 0, 1]); // NEXT_HOP
            update.extend_from_slice(&0u16.to_be_bytes());
            update.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
            update.extend_from_slice(&attrs);
            update.extend_from_slice(&nlri_24(prefix));
        }
        None => {
            let withdrawn = nlri_24(prefix);
            update.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
            update.extend_from_slice(&withdrawn);
            update.extend_from_slice(&0u16.to_be_bytes());
        }
    }
    let mut b = peer_header_at(peer, asn, seconds);
    b.extend_from_slice(&bgp_message(2, &update));
    bmp_message(3, 0, &b)
}

/// Route Monitoring announcing every /24 of `prefixes` in one UPDATE with the AS_SEQUENCE
/// `path` (at most about 1,000 /24s fit a 4,096-byte BGP message).
pub fn route_monitoring_many(
    peer: Ipv4Addr,
    asn: u32,
    prefixes: &[[u8; 3]],
    path: &[u32],
    seconds: u32,
) -> Vec<u8> {
    let mut seg = vec![2, path.len() as u8];
    for a in path {
        seg.extend_from_slice(&a.to_be_bytes());
    }
    let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
    attrs.extend_from_slice(&[0x40, 2, seg.len() as u8]);
    attrs.extend_from_slice(&seg);
    attrs.extend_from_slice(&[0x40, 3, 4, 10, 0, 0, 1]); // NEXT_HOP
    let mut update = Vec::new();
    update.extend_from_slice(&0u16.to_be_bytes());
    update.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    update.extend_from_slice(&attrs);
    for p in prefixes {
        update.extend_from_slice(&nlri_24(*p));
    }
    let mut b = peer_header_at(peer, asn, seconds);
    b.extend_from_slice(&bgp_message(2, &update));
    bmp_message(3, 0, &b)
}

/// A TCP connection to 127.0.0.1:`port` from `local` (any port; another loopback address
/// plays another router): std cannot bind before connecting, so tokio's socket connects and
/// the stream is handed back as a blocking one.
pub fn connect_from(local: Ipv4Addr, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((local, 0)))?;
            let target = SocketAddr::from(([127, 0, 0, 1], port));
            tokio::time::timeout(Duration::from_secs(5), socket.connect(target))
                .await
                .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "connect timed out"))?
        })
        .unwrap_or_else(|e| panic!("connect from {local} to 127.0.0.1:{port}: {e}"));
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), local);
    stream
}

/// Waits (at most `within`) for the other end to close `stream` (EOF or reset) without sending
/// anything; returns when it did.
pub fn wait_closed(stream: &mut TcpStream, within: Duration, what: &str) -> Instant {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        Ok(n) => panic!("{what}: routewatch sent {n} bytes"),
        Err(e) => panic!("{what}: not closed within {within:?} ({e})"),
    }
    Instant::now()
}
