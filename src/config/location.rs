//! `[[location]]`: a location as written, converted to a registry location; the prefix rules
//! of a configuration; the registry's errors mapped back to file, line and key.

use super::*;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawLocation {
    pub(super) name: Spanned<String>,
    pub(super) provider: Option<String>,
    #[serde(default)]
    pub(super) provider_asns: Vec<Spanned<i64>>,
    pub(super) region: Option<String>,
    pub(super) origin_asns: Spanned<Vec<Spanned<i64>>>,
    pub(super) prefixes: Spanned<Vec<Spanned<String>>>,
    pub(super) max_length: Option<Spanned<i64>>,
    pub(super) max_length_v6: Option<Spanned<i64>>,
    pub(super) min_peers: Option<Spanned<i64>>,
    pub(super) min_visibility: Option<Spanned<i64>>,
}

/// Where each location's values stand in the source, to report registry errors.
pub(super) struct LocationSpans {
    file: usize,
    name: Range<usize>,
    prefixes: Vec<Range<usize>>,
    max_length: Option<Range<usize>>,
    max_length_v6: Option<Range<usize>>,
}

pub(super) fn asn(src: &Source, v: &Spanned<i64>, key: &str) -> Result<u32, ConfigError> {
    let x = *v.get_ref();
    if !(1..=u32::MAX as i64).contains(&x) {
        return Err(src.invalid(
            &v.span(),
            key,
            format!(
                "ASN {x} is out of range 1..=4294967295 (AS0 is not a valid origin or upstream)"
            ),
        ));
    }
    Ok(x as u32)
}

pub(super) fn convert_location(
    src: &Source,
    file: usize,
    index: usize,
    raw: RawLocation,
) -> Result<(Location, LocationSpans), ConfigError> {
    let key = |k: &str| format!("location[{index}].{k}");
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()) {
        return Err(src.invalid(
            &raw.name.span(),
            key("name"),
            "must be 1 to 128 printable characters",
        ));
    }
    let origin_asns = raw
        .origin_asns
        .get_ref()
        .iter()
        .map(|a| asn(src, a, &key("origin-asns")))
        .collect::<Result<Vec<_>, _>>()?;
    if origin_asns.is_empty() {
        return Err(src.invalid(
            &raw.origin_asns.span(),
            key("origin-asns"),
            "at least one expected origin AS is required",
        ));
    }
    let provider_asns = raw
        .provider_asns
        .iter()
        .map(|a| asn(src, a, &key("provider-asns")))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.prefixes.get_ref().is_empty() {
        return Err(src.invalid(
            &raw.prefixes.span(),
            key("prefixes"),
            "at least one prefix is required",
        ));
    }
    let mut prefixes = Vec::with_capacity(raw.prefixes.get_ref().len());
    let mut prefix_spans = Vec::with_capacity(prefixes.capacity());
    for p in raw.prefixes.get_ref() {
        let net = parse_prefix(p.get_ref())
            .and_then(|net| registrable(p.get_ref(), net))
            .map_err(|m| src.invalid(&p.span(), key("prefixes"), m))?;
        prefixes.push(net);
        prefix_spans.push(p.span());
    }
    let len = |v: &Option<Spanned<i64>>, k: &str, max: i64| -> Result<Option<u8>, ConfigError> {
        v.as_ref()
            .map(|s| positive(src, s, &key(k), 0, max).map(|x| x as u8))
            .transpose()
    };
    let max_length = len(&raw.max_length, "max-length", 32)?;
    let max_length_v6 = len(&raw.max_length_v6, "max-length-v6", 128)?;
    let min_visibility = match &raw.min_visibility {
        Some(m) => positive(src, m, &key("min-visibility"), 0, 100_000)? as u32,
        None => 0,
    };
    let min_peers = match &raw.min_peers {
        Some(m) => positive(src, m, &key("min-peers"), 1, 100_000)? as u32,
        None => DEFAULT_MIN_PEERS,
    };
    Ok((
        Location {
            name,
            provider: raw.provider,
            provider_asns,
            region: raw.region,
            origin_asns,
            prefixes,
            max_length,
            max_length_v6,
            min_peers,
            min_visibility,
        },
        LocationSpans {
            file,
            name: raw.name.span(),
            prefixes: prefix_spans,
            max_length: raw.max_length.as_ref().map(|s| s.span()),
            max_length_v6: raw.max_length_v6.as_ref().map(|s| s.span()),
        },
    ))
}

/// Refuses what cannot sensibly be registered: a default route (every route would match it)
/// and an IPv4-mapped IPv6 prefix (BGP carries IPv4 routes as IPv4; it would never match).
/// Whether `net` (written `text`) may be registered: not a default route, not IPv4-mapped IPv6.
pub(crate) fn registrable(text: &str, net: IpNet) -> Result<IpNet, String> {
    if net.prefix_len() == 0 {
        let family = if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(format!(
            "{net} is the default route: every {family} route on the Internet would match it; \
             register the location's own prefixes"
        ));
    }
    if let IpNet::V6(v6) = net {
        let mapped = ipnet::Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
            .map_err(|e| e.to_string())?;
        if mapped.contains(&v6) {
            let instead = match v6
                .addr()
                .to_ipv4_mapped()
                .and_then(|a| ipnet::Ipv4Net::new(a, v6.prefix_len() - 96).ok())
            {
                Some(v4) if v4.prefix_len() > 0 => format!("write the IPv4 prefix {v4} instead"),
                _ => "it stands for all of IPv4: write the location's IPv4 prefixes".to_string(),
            };
            return Err(format!(
                "'{}' is an IPv4-mapped IPv6 prefix, which no IPv4 route matches; {instead}",
                text.trim()
            ));
        }
    }
    Ok(net)
}

/// Parses a registered prefix strictly: host bits must be zero and the length in range.
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.trim().parse().map_err(|_| {
        format!("'{s}' is not a prefix in address/length form (or its length is too long)")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "'{s}' has host bits set beyond /{} (did you mean {}?)",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}

pub(super) fn registry_error_to_config(
    sources: &[Source],
    spans: &[LocationSpans],
    err: RegistryError,
) -> ConfigError {
    match err {
        RegistryError::DuplicateLocationName { location, first } => {
            let sp = &spans[location];
            sources[sp.file].invalid(
                &sp.name,
                format!("location[{location}].name"),
                format!("duplicate location name (first used by location[{first}])"),
            )
        }
        RegistryError::DuplicatePrefix {
            location,
            prefix_index,
            prefix,
            first_location,
        } => {
            let sp = &spans[location];
            sources[sp.file].invalid(
                &sp.prefixes[prefix_index],
                format!("location[{location}].prefixes"),
                format!("{prefix} is already registered by location[{first_location}]"),
            )
        }
        RegistryError::MaxLengthShorterThanPrefix {
            location,
            prefix_index,
            prefix,
            max_length,
        } => {
            let sp = &spans[location];
            let (k, span) = if prefix.addr().is_ipv4() {
                ("max-length", sp.max_length.clone())
            } else {
                ("max-length-v6", sp.max_length_v6.clone())
            };
            sources[sp.file].invalid(
                &span.unwrap_or_else(|| sp.prefixes[prefix_index].clone()),
                format!("location[{location}].{k}"),
                format!("{max_length} is shorter than the registered prefix {prefix}"),
            )
        }
    }
}
