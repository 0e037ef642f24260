//! Tests of the BMP feed, by subject: framing edge cases ([`framing`]), message decoding
//! ([`message`]), Route Monitoring's UPDATEs ([`update`]), the session's peers and route
//! sources ([`session`]), garbage ([`garbage`]) and the recorded router streams in
//! `fixtures/bmp/raw/` ([`captures`]). The BMP byte builders and the harness are here; the BGP
//! ones are in the BGP wire layer's tests.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use super::framing::{CommonHeader, FrameError, FrameReader};
use super::message::{
    decode_message, format_distinguisher, Message, MessageType, OpenMessage, PeerDownReason,
    PeerType, RibView, StatValue, TerminationReason,
};
use super::session::{Output, PeerState, RouterSession, SessionState};
use crate::engine::Engine;
use crate::ingest::bgp::tests::*;
use crate::ingest::bgp::{split_update, Family};
use crate::model::{Origin, PeerKey, RouteChange};
use crate::registry::{Location, Registry};

mod captures;
mod framing;
mod garbage;
mod message;
mod role_otc;
mod session;
mod update;

// ---------------------------------------------------------------------------------------------
// Byte builders (BMP)

fn bmp(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![3];
    m.extend_from_slice(&((6 + body.len()) as u32).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

#[derive(Clone, Copy)]
pub(crate) struct Peer {
    peer_type: u8,
    flags: u8,
    rd: u64,
    address: IpAddr,
    asn: u32,
    bgp_id: [u8; 4],
    ts: u32,
    remote_port: u16,
}

pub(crate) const ROUTER: &str = "192.0.2.1:17001";

pub(crate) fn peer(address: &str, asn: u32) -> Peer {
    let address: IpAddr = address.parse().unwrap();
    Peer {
        peer_type: 0,
        flags: if address.is_ipv6() { 0x80 } else { 0 },
        rd: 0,
        address,
        asn,
        bgp_id: [198, 51, 100, 1],
        ts: 1_700_000_000,
        remote_port: 50000,
    }
}

impl Peer {
    fn flags(self, flags: u8) -> Peer {
        Peer { flags, ..self }
    }

    fn header(&self) -> Vec<u8> {
        let mut h = vec![self.peer_type, self.flags];
        h.extend_from_slice(&self.rd.to_be_bytes());
        match self.address {
            IpAddr::V4(a) => {
                h.extend_from_slice(&[0; 12]);
                h.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => h.extend_from_slice(&a.octets()),
        }
        h.extend_from_slice(&self.asn.to_be_bytes());
        h.extend_from_slice(&self.bgp_id);
        h.extend_from_slice(&self.ts.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes());
        h
    }

    pub(crate) fn route_monitoring(&self, pdu: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(pdu);
        bmp(0, &b)
    }

    fn peer_up(&self, sent: &[u8], received: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[192, 0, 2, 1]);
        b.extend_from_slice(&179u16.to_be_bytes());
        b.extend_from_slice(&self.remote_port.to_be_bytes());
        b.extend_from_slice(sent);
        b.extend_from_slice(received);
        b.extend_from_slice(tlvs);
        bmp(3, &b)
    }

    fn peer_down(&self, reason: u8, data: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.push(reason);
        b.extend_from_slice(data);
        bmp(2, &b)
    }

    fn stats(&self, count: u32, tlvs: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(tlvs);
        bmp(1, &b)
    }
}

fn tlv(ty: u16, value: &[u8]) -> Vec<u8> {
    let mut t = ty.to_be_bytes().to_vec();
    t.extend_from_slice(&(value.len() as u16).to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn initiation(sys_name: &str, sys_descr: &str) -> Vec<u8> {
    bmp(
        4,
        &[tlv(1, sys_descr.as_bytes()), tlv(2, sys_name.as_bytes())].concat(),
    )
}

fn termination(reason: u16) -> Vec<u8> {
    bmp(5, &tlv(1, &reason.to_be_bytes()))
}

/// OPENs of a plain 4-byte-AS session between the router (AS 64500) and a peer.
fn plain_opens(peer_asn: u32) -> (Vec<u8>, Vec<u8>) {
    (
        open(
            64500,
            [192, 0, 2, 1],
            &[cap_mp(1, 1), cap_mp(2, 1), cap_as4(64500)],
        ),
        open(
            peer_asn,
            [198, 51, 100, 1],
            &[cap_mp(1, 1), cap_mp(2, 1), cap_as4(peer_asn)],
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Harness

pub(crate) fn registry(prefixes: &[&str]) -> Registry {
    Registry::new(vec![Location {
        name: "test".into(),
        provider: None,
        provider_asns: vec![],
        region: None,
        origin_asns: vec![64496],
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        max_length: Some(32),
        max_length_v6: Some(128),
        min_peers: 1,
        min_visibility: 0,
    }])
    .unwrap()
}

pub(crate) fn everything() -> Registry {
    registry(&["0.0.0.0/0", "::/0"])
}

pub(crate) const NOW: f64 = 1_800_000_000.0;

struct Harness {
    registry: Arc<Registry>,
    session: RouterSession,
    engine: Engine,
}

impl Harness {
    fn new(prefixes: &[&str]) -> Harness {
        let registry = Arc::new(registry(prefixes));
        Harness {
            engine: Engine::new(registry.clone()),
            registry,
            session: RouterSession::new(ROUTER.parse().unwrap(), None),
        }
    }

    /// Feeds messages (as one stream) and applies the output to the engine.
    fn feed(&mut self, msgs: &[Vec<u8>]) -> Output {
        let mut out = Output::default();
        let mut frames = FrameReader::default();
        let (session, registry) = (&mut self.session, &self.registry);
        frames
            .feed(&msgs.concat(), |f| {
                session.handle_frame(f, registry, NOW, &mut out)
            })
            .unwrap();
        frames.finish().unwrap();
        crate::pipeline::apply_batch(&mut self.engine, &out.batch);
        out
    }

    fn close(&mut self) -> Output {
        let mut out = Output::default();
        self.session.close(NOW, &mut out);
        crate::pipeline::apply_batch(&mut self.engine, &out.batch);
        out
    }

    fn visibility(&self, prefix: &str) -> u32 {
        let p: IpNet = prefix.parse().unwrap();
        let r = self.registry.lookup(&p).unwrap();
        self.engine.stats(r.prefix).visibility
    }
}

fn announced(out: &Output) -> Vec<(String, String, u32, Vec<u32>)> {
    out.batch
        .updates
        .iter()
        .filter_map(|u| match &u.change {
            RouteChange::Announce(p) => Some((
                u.peer.source.to_string(),
                u.prefix.to_string(),
                u.path_id,
                p.asns.to_vec(),
            )),
            RouteChange::Withdraw => None,
        })
        .collect()
}

fn withdrawn(out: &Output) -> Vec<(String, String, u32)> {
    out.batch
        .updates
        .iter()
        .filter(|u| u.change == RouteChange::Withdraw)
        .map(|u| (u.peer.source.to_string(), u.prefix.to_string(), u.path_id))
        .collect()
}

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bmp/raw")
}
