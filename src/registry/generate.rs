//! `routewatch registry generate`: a locations file from what a RIB (or update dump) shows an AS
//! originating. Pure: [`Observations`] takes routes, [`Observations::render`] writes TOML; the
//! command (`cli.rs`) reads the files.
//!
//! For each AS asked for, one `[[location]]` named `as<N>`:
//!
//! * `prefixes`: the prefixes it originates that no other prefix of the location covers (a
//!   prefix another requested AS originates too goes to the lowest requested AS, whose
//!   `origin-asns` then lists both);
//! * `max-length` / `max-length-v6`: only where it also originates more-specifics of those, the
//!   longest such length of the family;
//! * `provider-asns`: the ASes seen adjacent to the origin (prepending skipped), each kept when at
//!   least `min_upstream_peers` distinct peers' paths show it, or when it is the collector's peer
//!   itself (a direct session with the origin, not hearsay); the others are listed in a comment
//!   (a leak or a hijack in the dump should not become an expected upstream). With more than
//!   `max_upstreams` of them the AS is widely peered and upstreams are not checked (the key is
//!   left out, with a comment), as when none is seen.
//!
//! Paths ending in an AS_SET have no single origin and are not counted. Default routes and
//! IPv4-mapped IPv6 prefixes cannot be registered and are left out, counted in a comment. The
//! output is deterministic (sorted, no time stamps): the same files give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::AsPath;

/// A peer: its address and AS.
type Peer = (IpAddr, u32);

/// What was seen of one prefix originated by a requested AS.
#[derive(Debug, Default)]
struct PrefixSeen {
    /// The requested ASes seen originating it.
    origins: BTreeSet<u32>,
    /// Peers carrying it.
    peers: BTreeSet<Peer>,
    /// Upstream AS -> peers whose path showed it.
    upstreams: BTreeMap<u32, BTreeSet<Peer>>,
    /// Upstreams that were the collector's peer itself.
    direct: BTreeSet<u32>,
}

/// Routes seen, restricted to those a requested AS originates.
#[derive(Debug)]
pub struct Observations {
    asns: BTreeSet<u32>,
    prefixes: BTreeMap<IpNet, PrefixSeen>,
    /// Routes with a requested origin that cannot be registered (default route, IPv4-mapped).
    unregistrable: BTreeSet<IpNet>,
    /// Routes read in all.
    routes: u64,
}

/// How [`Observations::render`] decides.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// An upstream is expected when at least this many distinct peers show it (or it is the
    /// peer).
    pub min_upstream_peers: usize,
    /// More expected upstreams than this: upstreams are not checked (a widely peered AS).
    pub max_upstreams: usize,
    /// The files read (named in the header comment).
    pub files: Vec<String>,
}

impl Observations {
    /// Observations for the origins `asns`.
    pub fn new(asns: &[u32]) -> Observations {
        Observations {
            asns: asns.iter().copied().collect(),
            prefixes: BTreeMap::new(),
            unregistrable: BTreeSet::new(),
            routes: 0,
        }
    }

    /// One announced route.
    pub fn observe(&mut self, peer: Peer, prefix: IpNet, path: &AsPath) {
        self.routes += 1;
        let Some(origin) = path.origin_asn() else {
            return;
        };
        if !self.asns.contains(&origin) {
            return;
        }
        let prefix = prefix.trunc();
        if crate::config::registrable(&prefix.to_string(), prefix).is_err() {
            self.unregistrable.insert(prefix);
            return;
        }
        let seen = self.prefixes.entry(prefix).or_default();
        seen.origins.insert(origin);
        seen.peers.insert(peer);
        if let Some(up) = path.upstream() {
            seen.upstreams.entry(up).or_default().insert(peer);
            if up == peer.1 {
                seen.direct.insert(up);
            }
        }
    }

    /// Routes observed (any origin).
    pub fn routes(&self) -> u64 {
        self.routes
    }

    /// Prefixes a requested AS originates.
    pub fn prefix_count(&self) -> usize {
        self.prefixes.len()
    }

    /// The locations file; `None` when no requested AS originates anything.
    pub fn render(&self, options: &RenderOptions) -> Option<String> {
        // Each prefix belongs to the lowest requested AS that originates it.
        let mut by_owner: BTreeMap<u32, Vec<(&IpNet, &PrefixSeen)>> = BTreeMap::new();
        for (p, seen) in &self.prefixes {
            if let Some(&owner) = seen.origins.iter().next() {
                by_owner.entry(owner).or_default().push((p, seen));
            }
        }
        if by_owner.is_empty() {
            return None;
        }
        let mut out = String::new();
        let asns: Vec<String> = self.asns.iter().map(|a| format!("--asn {a}")).collect();
        let _ = writeln!(
            out,
            "# Locations generated by `routewatch registry generate {}`",
            asns.join(" ")
        );
        let _ = writeln!(
            out,
            "# from {} ({} routes read).",
            options.files.join(", "),
            self.routes
        );
        let _ = writeln!(
            out,
            "# Review before use: provider, region, min-peers and min-visibility are yours to add;\n\
             # an upstream is listed when at least {} peers' paths show it. Use the file as the\n\
             # main configuration or include it: include = [\"this-file.toml\"].",
            options.min_upstream_peers
        );
        for asn in &self.asns {
            let Some(list) = by_owner.get(asn) else {
                let shared = by_owner
                    .iter()
                    .find(|(_, l)| l.iter().any(|(_, s)| s.origins.contains(asn)));
                let _ = match shared {
                    Some((owner, _)) => writeln!(
                        out,
                        "\n# AS{asn}: every prefix it originates AS{owner} originates too: see as{owner}."
                    ),
                    None => writeln!(
                        out,
                        "\n# AS{asn}: no route originated by it in these files."
                    ),
                };
                continue;
            };
            render_location(&mut out, *asn, list, options);
        }
        if !self.unregistrable.is_empty() {
            let list: Vec<String> = self.unregistrable.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(
                out,
                "\n# Left out (a default route or IPv4-mapped IPv6 cannot be registered): {}",
                list.join(", ")
            );
        }
        Some(out)
    }
}

fn render_location(
    out: &mut String,
    asn: u32,
    list: &[(&IpNet, &PrefixSeen)],
    options: &RenderOptions,
) {
    let all: BTreeSet<IpNet> = list.iter().map(|(p, _)| **p).collect();
    let covered = |p: &IpNet| {
        all.iter()
            .any(|q| q != p && q.prefix_len() < p.prefix_len() && q.contains(p))
    };
    let (mut top, mut more): (Vec<_>, Vec<_>) = list.iter().partition(|(p, _)| !covered(p));
    top.sort_by_key(|(p, _)| (p.addr().is_ipv6(), **p));
    more.sort_by_key(|(p, _)| (p.addr().is_ipv6(), **p));
    let longest = |v6: bool| {
        more.iter()
            .filter(|(p, _)| p.addr().is_ipv6() == v6)
            .map(|(p, _)| p.prefix_len())
            .max()
    };
    let origins: BTreeSet<u32> = list
        .iter()
        .flat_map(|(_, s)| s.origins.iter().copied())
        .collect();
    let mut upstreams: BTreeMap<u32, BTreeSet<Peer>> = BTreeMap::new();
    let mut direct: BTreeSet<u32> = BTreeSet::new();
    for (_, seen) in list {
        for (up, peers) in &seen.upstreams {
            upstreams
                .entry(*up)
                .or_default()
                .extend(peers.iter().copied());
        }
        direct.extend(seen.direct.iter().copied());
    }
    let (kept, left): (Vec<_>, Vec<_>) = upstreams
        .iter()
        .partition(|(up, peers)| peers.len() >= options.min_upstream_peers || direct.contains(up));
    let (v4, v6) = top.iter().fold((0, 0), |(a, b), (p, _)| {
        if p.addr().is_ipv4() {
            (a + 1, b)
        } else {
            (a, b + 1)
        }
    });
    let _ = writeln!(
        out,
        "\n# AS{asn}: {} prefixes ({v4} IPv4, {v6} IPv6) and {} more-specifics of them.",
        top.len(),
        more.len()
    );
    let _ = writeln!(out, "[[location]]\nname = \"as{asn}\"");
    let origins: Vec<String> = origins.iter().map(u32::to_string).collect();
    let _ = writeln!(out, "origin-asns = [{}]", origins.join(", "));
    if kept.is_empty() {
        let _ = writeln!(
            out,
            "# No upstream seen by {} or more peers: upstreams are not checked.",
            options.min_upstream_peers
        );
    } else if kept.len() > options.max_upstreams {
        let list: Vec<String> = kept.iter().map(|(up, _)| format!("AS{up}")).collect();
        let _ = writeln!(
            out,
            "# {} neighbours seen (more than {}): a widely peered AS, upstreams are not checked.\n\
             # {}",
            kept.len(),
            options.max_upstreams,
            list.join(", ")
        );
    } else {
        let _ = writeln!(out, "provider-asns = [");
        for (up, peers) in &kept {
            let how = if direct.contains(up) {
                ", a peer of the collector"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {up}, # seen by {} peer{}{how}",
                peers.len(),
                plural(peers.len())
            );
        }
        let _ = writeln!(out, "]");
    }
    if !left.is_empty() {
        let list: Vec<String> = left
            .iter()
            .map(|(up, peers)| format!("AS{up} ({} peer{})", peers.len(), plural(peers.len())))
            .collect();
        let _ = writeln!(out, "# Upstreams left out: {}", list.join(", "));
    }
    let _ = writeln!(out, "prefixes = [");
    for (p, seen) in &top {
        let _ = writeln!(
            out,
            "    \"{p}\", # {} peer{}",
            seen.peers.len(),
            plural(seen.peers.len())
        );
    }
    let _ = writeln!(out, "]");
    for (v6, key) in [(false, "max-length"), (true, "max-length-v6")] {
        if let Some(len) = longest(v6) {
            let examples: Vec<String> = more
                .iter()
                .filter(|(p, _)| p.addr().is_ipv6() == v6)
                .take(5)
                .map(|(p, _)| p.to_string())
                .collect();
            let _ = writeln!(
                out,
                "# more-specifics originated: {}{}",
                examples.join(", "),
                if more
                    .iter()
                    .filter(|(p, _)| p.addr().is_ipv6() == v6)
                    .count()
                    > 5
                {
                    ", ..."
                } else {
                    ""
                }
            );
            let _ = writeln!(out, "{key} = {len}");
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(asns: &[u32]) -> AsPath {
        AsPath::from_sequence(asns)
    }

    fn peer(n: u8) -> Peer {
        (IpAddr::from([192, 0, 2, n]), 64_000 + u32::from(n))
    }

    fn options() -> RenderOptions {
        RenderOptions {
            min_upstream_peers: 2,
            max_upstreams: 16,
            files: vec!["rib.bz2".into()],
        }
    }

    #[test]
    fn prefixes_more_specifics_and_upstreams() {
        let mut o = Observations::new(&[64500, 64501]);
        let p = |s: &str| s.parse::<IpNet>().unwrap();
        o.observe(peer(1), p("198.51.0.0/16"), &path(&[64001, 3356, 64500]));
        o.observe(
            peer(2),
            p("198.51.0.0/16"),
            &path(&[64002, 3356, 64500, 64500]),
        );
        o.observe(peer(2), p("198.51.100.0/24"), &path(&[64002, 174, 64500]));
        o.observe(peer(3), p("2001:db8::/32"), &path(&[64003, 64500]));
        // Another origin, an AS_SET origin, a default route: not for these locations.
        o.observe(peer(1), p("203.0.113.0/24"), &path(&[64001, 64999]));
        o.observe(peer(1), p("0.0.0.0/0"), &path(&[64001, 64500]));
        let text = o.render(&options()).unwrap();
        assert!(text.contains("name = \"as64500\""), "{text}");
        assert!(text.contains("origin-asns = [64500]"), "{text}");
        // 3356 by two peers (prepending skipped), 174 by one; 64003 is the peer itself.
        assert!(
            text.contains(
                "provider-asns = [\n    3356, # seen by 2 peers\n    64003, # seen by 1 peer, a peer of the collector\n]"
            ),
            "{text}"
        );
        assert!(
            text.contains("# Upstreams left out: AS174 (1 peer)\n"),
            "{text}"
        );
        assert!(
            text.contains("prefixes = [\n    \"198.51.0.0/16\", # 2 peers\n    \"2001:db8::/32\", # 1 peer\n]"),
            "{text}"
        );
        assert!(text.contains("max-length = 24"), "{text}");
        assert!(!text.contains("max-length-v6"), "{text}");
        assert!(
            text.contains("# AS64501: no route originated by it"),
            "{text}"
        );
        assert!(text.contains("Left out (a default route"), "{text}");
        assert!(!text.contains("203.0.113.0"), "{text}");
        // Deterministic.
        assert_eq!(o.render(&options()).unwrap(), text);
    }

    #[test]
    fn a_prefix_two_requested_ases_originate_is_registered_once() {
        let mut o = Observations::new(&[64501, 64500]);
        let p = "198.51.100.0/24".parse::<IpNet>().unwrap();
        o.observe(peer(1), p, &path(&[64001, 64501]));
        o.observe(peer(2), p, &path(&[64002, 64500]));
        let text = o.render(&options()).unwrap();
        assert_eq!(text.matches("\"198.51.100.0/24\"").count(), 1, "{text}");
        assert!(text.contains("origin-asns = [64500, 64501]"), "{text}");
        assert!(
            text.contains("# AS64501: every prefix it originates AS64500"),
            "{text}"
        );
    }

    #[test]
    fn a_widely_peered_as_gets_no_upstream_check() {
        let mut o = Observations::new(&[64500]);
        let p = "198.51.100.0/24".parse::<IpNet>().unwrap();
        for n in 1..=20 {
            o.observe(peer(n), p, &path(&[64_000 + u32::from(n), 64500]));
        }
        let opts = RenderOptions {
            max_upstreams: 19,
            ..options()
        };
        let text = o.render(&opts).unwrap();
        assert!(!text.contains("provider-asns"), "{text}");
        assert!(
            text.contains("# 20 neighbours seen (more than 19)"),
            "{text}"
        );
        let opts = RenderOptions {
            max_upstreams: 20,
            ..options()
        };
        assert!(o
            .render(&opts)
            .unwrap()
            .contains("provider-asns = [\n    64001,"));
    }

    #[test]
    fn nothing_originated_renders_nothing() {
        let mut o = Observations::new(&[64500]);
        o.observe(
            peer(1),
            "203.0.113.0/24".parse().unwrap(),
            &path(&[64001, 64999]),
        );
        assert!(o.render(&options()).is_none());
        assert_eq!(o.routes(), 1);
    }
}
