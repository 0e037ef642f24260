//! Loading RPKI data from a JSON file: VRPs (with rpki-client's expiry times) and ASPAs.
//!
//! # Input formats: VRPs
//!
//! Three producers are accepted; all put the VRPs in a top-level `roas` array of objects with
//! `asn`, `prefix` and `maxLength` members. Everything else — other top-level members, other
//! members of a VRP object — is ignored at every level. What the sources say (checked against
//! their code and documentation, not guessed):
//!
//! - **Routinator `--format json`** (NLnetLabs/routinator `src/output.rs`, `Json` formatter, and
//!   `doc/manual/source/output-formats.rst`): `{"metadata": {"generated": <unix>,
//!   "generatedTime": "<iso>"}, "roas": [{"asn": "AS196615", "prefix": "93.175.147.0/24",
//!   "maxLength": 24, "ta": "ripe"}]}`. The ASN is a *string* with the `AS` prefix. Routinator
//!   0.15's own test outputs (`test/output/*.json`) add `routerKeys` and `aspas` arrays next to
//!   `roas`.
//! - **Routinator `--format jsonext`** (same file, `ExtendedJson` formatter): the same three
//!   members without `ta`, plus `"source": [...]`, one object per source: `{"type": "roa", "uri":
//!   "rsync://…", "validity": {"notBefore": …, "notAfter": …}, "chainValidity": {"notBefore": …,
//!   "notAfter": …}}` or, for a local exception (SLURM), `{"type": "exception", "path": …,
//!   "comment": …}`. Ignored here.
//! - **rpki-client `-j`** (openbsd/src `usr.sbin/rpki-client/output-json.c`, rev. 1.57 of
//!   2025-09): `{"metadata": {"buildmachine": …, "buildtime": …, "roas": <count>, …,
//!   "talfiles": [...], …}, "roas": [{"asn": 13335, "prefix": "1.1.1.0/24", "maxLength": 24,
//!   "ta": "apnic", "expires": <unix>}], "bgpsec_keys": [...], "nonfunc_cas": [...], "aspas":
//!   [...]}`. The ASN is a JSON *number* (`json_do_int("asn", …)`). Older rpki-client releases
//!   (output-json.c rev. 1.13, 2020) wrote `"asn": "AS13335"` and no `expires`, like Routinator.
//!   Note that `metadata` also has a member called `roas` (a count): only the top-level one is
//!   the VRP list.
//!
//! So `asn` is accepted as a number, as `"AS<n>"` (any case) and as a plain numeric string.
//! `maxLength` must be present: all three producers always write it.
//!
//! # Bad input (VRPs)
//!
//! A file that is not JSON, not a JSON object, or has no top-level `roas` array is an error
//! ([`ParseError`]); the caller keeps its previous set. A bad *entry* (not an object, bad ASN,
//! unparsable prefix, host bits set, `maxLength` missing or outside prefix length..=32/128) is
//! counted in the [`LoadReport`] under its [`SkipReason`] and skipped; the rest of the file is
//! used. Duplicate VRPs (the same prefix, maxLength and ASN from several ROAs or trust anchors)
//! are merged and counted.
//!
//! A malformed `expires` member is treated as absent (the VRP is kept without an expiry time).
//!
//! # Expiry times
//!
//! rpki-client writes `expires` (unix seconds: when the VRP stops being valid unless its ROA,
//! manifest, CRL or certificate chain is renewed) on every VRP and ASPA; Routinator's `json`
//! and StayRTR's input have none. It is kept per VRP ([`VrpSet::expires`]); when duplicates
//! merge, the earliest time is kept (the VRP is certainly valid until then). ASPA expiry times
//! are read past and not kept.
//!
//! # ASPAs
//!
//! Three shapes are accepted, all optional (no ASPA member: an empty ASPA set, path
//! verification off):
//!
//! - **rpki-client `-j`** (output-json.c `output_aspa`/`print_vap`): a top-level `"aspas":
//!   [{"customer_asid": 64496, "expires": <unix>, "providers": [64497, 64498]}]`, numbers.
//! - **Routinator `--format json`/`jsonext`** (NLnetLabs/routinator `src/output.rs`, its
//!   `aspas` array): `"aspas": [{"customer": "AS64496", "providers": ["AS64499", "AS64511"]}]`,
//!   `"AS…"` strings (older releases added `"afi"`, ignored here).
//! - **StayRTR's input and the older rpki-client shape** (StayRTR `prefixfile`
//!   `ProviderAuthorizationsJson`): `"provider_authorizations": {"ipv4": [{"customer_asid": …,
//!   "providers": [...]}], "ipv6": [...]}`, one list per address family. The current ASPA profile
//!   has no address family, so records of one customer (from both lists, or repeated) are
//!   merged into the union of their providers ([`AspaSet::from_records`]); a union can only make
//!   a hop "Provider+", so the merge never raises a leak either record alone would not.
//!
//! The customer is `customer_asid` or `customer`; each ASN a number or an `"AS<n>"` / numeric
//! string, as `asn` above. A bad ASPA record (not an object, customer missing, bad or AS0,
//! `providers` missing, empty, not an array, or with one bad ASN) is counted under its
//! [`AspaSkipReason`] and skipped as a whole: a provider set with a provider left out could make
//! valid paths look like leaks, no record at all cannot. The rest of the file is used. An
//! `aspas` or `provider_authorizations` member of the wrong JSON type makes the file unusable,
//! like a bad `roas`.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::aspa::AspaSet;
use super::data::RpkiData;
use super::{Entry, Vrp, VrpSet};

/// Why a VRP entry of a file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The `roas` element is not a JSON object.
    NotObject,
    /// `asn` missing, not an integer / `"AS<n>"` / numeric string, or above 2^32-1.
    BadAsn,
    /// `prefix` missing, not a string, or not an address/length.
    BadPrefix,
    /// `prefix` has bits set past its length (e.g. `192.0.2.1/24`).
    HostBits,
    /// `maxLength` missing, not an integer, shorter than the prefix or longer than 32/128.
    BadMaxLength,
}

impl SkipReason {
    /// Every reason, in a stable order (the index of [`LoadReport::skipped`]).
    pub const ALL: [SkipReason; 5] = [
        SkipReason::NotObject,
        SkipReason::BadAsn,
        SkipReason::BadPrefix,
        SkipReason::HostBits,
        SkipReason::BadMaxLength,
    ];

    /// The stable snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotObject => "not_object",
            SkipReason::BadAsn => "bad_asn",
            SkipReason::BadPrefix => "bad_prefix",
            SkipReason::HostBits => "host_bits",
            SkipReason::BadMaxLength => "bad_max_length",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an ASPA record of a file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AspaSkipReason {
    /// The element is not a JSON object.
    NotObject,
    /// `customer_asid` / `customer` missing, not an ASN, or AS0.
    BadCustomer,
    /// `providers` missing, not an array, empty, or with an element that is not an ASN.
    BadProviders,
}

impl AspaSkipReason {
    /// Every reason, in a stable order (the index of [`LoadReport::aspa_skipped`]).
    pub const ALL: [AspaSkipReason; 3] = [
        AspaSkipReason::NotObject,
        AspaSkipReason::BadCustomer,
        AspaSkipReason::BadProviders,
    ];

    /// The stable snake_case name, for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            AspaSkipReason::NotObject => "not_object",
            AspaSkipReason::BadCustomer => "bad_customer",
            AspaSkipReason::BadProviders => "bad_providers",
        }
    }
}

impl fmt::Display for AspaSkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What loading a VRP file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Elements of the `roas` array.
    pub entries: usize,
    /// Distinct VRPs in the resulting set (IPv4 + IPv6).
    pub loaded: usize,
    /// Of those, IPv4.
    pub loaded_v4: usize,
    /// Of those, IPv6.
    pub loaded_v6: usize,
    /// Well-formed entries equal to an earlier one (merged, not counted in `loaded`).
    pub duplicates: usize,
    /// Skipped entries per reason, indexed like [`SkipReason::ALL`].
    pub skipped: [usize; 5],
    /// ASPA records read (`aspas` and both `provider_authorizations` lists).
    pub aspa_entries: usize,
    /// Customer ASes with an ASPA in the resulting set (records of one customer merged).
    pub aspas_loaded: usize,
    /// Skipped ASPA records per reason, indexed like [`AspaSkipReason::ALL`].
    pub aspa_skipped: [usize; 3],
    /// The first [`LoadReport::MAX_EXAMPLES`] skipped entries, as `roas[i]: reason: detail`
    /// (`aspas[i]: …`, `provider_authorizations.ipv4[i]: …` for ASPA records).
    pub examples: Vec<String>,
}

impl LoadReport {
    /// How many skipped entries are described in `examples`.
    pub const MAX_EXAMPLES: usize = 5;

    /// Skipped entries for one reason.
    pub fn skipped_for(&self, reason: SkipReason) -> usize {
        self.skipped[reason.index()]
    }

    /// All skipped VRP entries.
    pub fn skipped_total(&self) -> usize {
        self.skipped.iter().sum()
    }

    /// Skipped ASPA records for one reason.
    pub fn aspa_skipped_for(&self, reason: AspaSkipReason) -> usize {
        self.aspa_skipped[reason as usize]
    }

    /// All skipped ASPA records.
    pub fn aspa_skipped_total(&self) -> usize {
        self.aspa_skipped.iter().sum()
    }

    fn skip(&mut self, index: usize, reason: SkipReason, detail: impl FnOnce() -> String) {
        self.skipped[reason.index()] += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples
                .push(format!("roas[{index}]: {}: {}", reason.as_str(), detail()));
        }
    }

    fn skip_aspa(&mut self, at: &str, index: usize, reason: AspaSkipReason, detail: String) {
        self.aspa_skipped[reason as usize] += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples
                .push(format!("{at}[{index}]: {}: {detail}", reason.as_str()));
        }
    }
}

/// ` (reason: n, reason: n)` for the reasons with a count, nothing when none has one.
fn write_reasons<R: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    counts: impl IntoIterator<Item = (R, usize)>,
) -> fmt::Result {
    let mut first = true;
    for (reason, n) in counts {
        if n > 0 {
            f.write_str(if first { " (" } else { ", " })?;
            write!(f, "{reason}: {n}")?;
            first = false;
        }
    }
    if !first {
        f.write_str(")")?;
    }
    Ok(())
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entries: {} VRPs loaded ({} IPv4, {} IPv6), {} duplicates, {} skipped",
            self.entries,
            self.loaded,
            self.loaded_v4,
            self.loaded_v6,
            self.duplicates,
            self.skipped_total()
        )?;
        write_reasons(f, SkipReason::ALL.map(|r| (r, self.skipped_for(r))))?;
        if self.aspa_entries == 0 {
            return Ok(());
        }
        write!(
            f,
            "; {} ASPA records: {} customers loaded, {} skipped",
            self.aspa_entries,
            self.aspas_loaded,
            self.aspa_skipped_total()
        )?;
        write_reasons(
            f,
            AspaSkipReason::ALL.map(|r| (r, self.aspa_skipped_for(r))),
        )
    }
}

/// Why a VRP file could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, not a JSON object, or `roas` is not an array.
    #[error("not a VRP JSON file: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON object without a top-level `roas` member.
    #[error(
        "no top-level `roas` array (expected Routinator `json`/`jsonext` or rpki-client `json` \
         output)"
    )]
    NoRoas,
}

/// Errors of [`VrpFile::load`], naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RpkiError {
    /// The file could not be stat'ed or read.
    #[error("VRP file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The file was read but is not a usable VRP file.
    #[error("VRP file {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: ParseError,
    },
}

/// Parses a VRP file's bytes (Routinator `json`/`jsonext`, rpki-client `json`, StayRTR's
/// input): its VRPs and ASPAs.
pub fn parse(bytes: &[u8]) -> Result<(RpkiData, LoadReport), ParseError> {
    let file: FileShape = serde_json::from_slice(bytes)?;
    let list = file.roas.ok_or(ParseError::NoRoas)?;
    let RoaList { v4, v6, mut report } = list;
    let (vrps, duplicates) = VrpSet::build(v4, v6);
    report.duplicates = duplicates;
    report.loaded = vrps.len();
    report.loaded_v4 = vrps.len_v4;
    report.loaded_v6 = vrps.len_v6;
    let mut records: Vec<(u32, Vec<u32>)> = Vec::new();
    let lists = [
        ("aspas", file.aspas),
        ("provider_authorizations.ipv4", file.provider_ipv4),
        ("provider_authorizations.ipv6", file.provider_ipv6),
    ];
    for (at, list) in lists {
        for (i, raw) in list.into_iter().flatten().enumerate() {
            report.aspa_entries += 1;
            match aspa_record(raw) {
                Ok(r) => records.push(r),
                Err((reason, detail)) => report.skip_aspa(at, i, reason, detail),
            }
        }
    }
    let aspas = AspaSet::from_records(records);
    report.aspas_loaded = aspas.len();
    Ok((RpkiData::new(vrps, aspas), report))
}

/// One ASPA record: (customer, providers), or why it is skipped.
fn aspa_record(raw: serde_json::Value) -> Result<(u32, Vec<u32>), (AspaSkipReason, String)> {
    let serde_json::Value::Object(obj) = raw else {
        return Err((AspaSkipReason::NotObject, format!("{raw}, not an object")));
    };
    let customer = match obj.get("customer_asid").or_else(|| obj.get("customer")) {
        None => {
            return Err((
                AspaSkipReason::BadCustomer,
                "no `customer_asid` or `customer`".into(),
            ))
        }
        Some(v) => match parse_asn(v) {
            Some(c) if c != 0 => c,
            _ => return Err((AspaSkipReason::BadCustomer, format!("customer {v}"))),
        },
    };
    let providers = match obj.get("providers") {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => a,
        Some(v) => {
            return Err((
                AspaSkipReason::BadProviders,
                format!("AS{customer}: providers {v}"),
            ))
        }
        None => {
            return Err((
                AspaSkipReason::BadProviders,
                format!("AS{customer}: no `providers`"),
            ))
        }
    };
    let mut out = Vec::with_capacity(providers.len());
    for p in providers {
        match parse_asn(p) {
            Some(asn) => out.push(asn),
            None => {
                return Err((
                    AspaSkipReason::BadProviders,
                    format!("AS{customer}: provider {p}"),
                ))
            }
        }
    }
    Ok((customer, out))
}

// ---------------------------------------------------------------------------------------------
// Parsing: a streaming visitor over `roas`, so a 500k-entry file is never held as a JSON tree
// and one bad entry costs one count, not the file. ASPA records are few (one per customer AS):
// they are read as JSON values.

/// The top level: `roas` and the ASPA members are kept, other members are skipped.
struct FileShape {
    roas: Option<RoaList>,
    aspas: Option<Vec<serde_json::Value>>,
    provider_ipv4: Option<Vec<serde_json::Value>>,
    provider_ipv6: Option<Vec<serde_json::Value>>,
}

impl<'de> Deserialize<'de> for FileShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_map`, not a derived struct: serde_json would also accept a JSON array
        // as a struct written positionally.
        d.deserialize_map(FileVisitor)
    }
}

/// Top-level member names.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum TopField {
    #[serde(rename = "roas")]
    Roas,
    #[serde(rename = "aspas")]
    Aspas,
    #[serde(rename = "provider_authorizations")]
    ProviderAuthorizations,
    #[serde(other)]
    Other,
}

/// StayRTR's `provider_authorizations`: one list per address family.
#[derive(Deserialize)]
struct ProviderAuthorizations {
    ipv4: Option<Vec<serde_json::Value>>,
    ipv6: Option<Vec<serde_json::Value>>,
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = FileShape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a `roas` array (a VRP file)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileShape, A::Error> {
        let mut roas: Option<Option<RoaList>> = None;
        let mut aspas: Option<Option<Vec<serde_json::Value>>> = None;
        let mut pa: Option<Option<ProviderAuthorizations>> = None;
        while let Some(k) = map.next_key::<TopField>()? {
            match k {
                TopField::Roas if roas.is_some() => {
                    return Err(de::Error::duplicate_field("roas"));
                }
                // `"roas": null` counts as no `roas`.
                TopField::Roas => roas = Some(map.next_value()?),
                TopField::Aspas if aspas.is_some() => {
                    return Err(de::Error::duplicate_field("aspas"));
                }
                TopField::Aspas => aspas = Some(map.next_value()?),
                TopField::ProviderAuthorizations if pa.is_some() => {
                    return Err(de::Error::duplicate_field("provider_authorizations"));
                }
                TopField::ProviderAuthorizations => pa = Some(map.next_value()?),
                TopField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (provider_ipv4, provider_ipv6) = match pa.flatten() {
            Some(p) => (p.ipv4, p.ipv6),
            None => (None, None),
        };
        Ok(FileShape {
            roas: roas.flatten(),
            aspas: aspas.flatten(),
            provider_ipv4,
            provider_ipv6,
        })
    }
}

/// No expiry time known (sorts after every real one, so a merge keeps the earliest known).
pub(super) const NO_EXPIRY: u64 = u64::MAX;

/// The parsed `roas` array: well-formed VRPs per family with their expiry ([`NO_EXPIRY`] when
/// unknown), and the report so far.
struct RoaList {
    v4: Vec<(Ipv4Net, Entry, u64)>,
    v6: Vec<(Ipv6Net, Entry, u64)>,
    report: LoadReport,
}

impl<'de> Deserialize<'de> for RoaList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(RoaListVisitor)
    }
}

struct RoaListVisitor;

impl<'de> Visitor<'de> for RoaListVisitor {
    type Value = RoaList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`roas` to be an array of VRP objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RoaList, A::Error> {
        let mut list = RoaList {
            v4: Vec::with_capacity(seq.size_hint().unwrap_or(0)),
            v6: Vec::new(),
            report: LoadReport::default(),
        };
        while let Some(raw) = seq.next_element::<RawEntry>()? {
            let index = list.report.entries;
            list.report.entries += 1;
            match raw.into_vrp() {
                Ok((v, expires)) => {
                    let e = Entry {
                        asn: v.asn,
                        max_length: v.max_length,
                    };
                    let x = expires.unwrap_or(NO_EXPIRY);
                    match v.prefix {
                        IpNet::V4(p) => list.v4.push((p, e, x)),
                        IpNet::V6(p) => list.v6.push((p, e, x)),
                    }
                }
                Err((reason, detail)) => list.report.skip(index, reason, || detail),
            }
        }
        Ok(list)
    }
}

/// One element of `roas`, kept only as far as validation needs it.
enum RawEntry {
    Object {
        asn: Option<serde_json::Value>,
        prefix: Option<serde_json::Value>,
        max_length: Option<serde_json::Value>,
        expires: Option<serde_json::Value>,
    },
    NotObject(&'static str),
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawEntryVisitor)
    }
}

/// Member names of a VRP object that matter; the rest are skipped without being built.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum Field {
    #[serde(rename = "asn")]
    Asn,
    #[serde(rename = "prefix")]
    Prefix,
    #[serde(rename = "maxLength")]
    MaxLength,
    #[serde(rename = "expires")]
    Expires,
    #[serde(other)]
    Other,
}

struct RawEntryVisitor;

impl<'de> Visitor<'de> for RawEntryVisitor {
    type Value = RawEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a VRP object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let (mut asn, mut prefix, mut max_length, mut expires) = (None, None, None, None);
        while let Some(k) = map.next_key::<Field>()? {
            // A repeated member: the last one wins, as in most JSON readers.
            match k {
                Field::Asn => asn = Some(map.next_value()?),
                Field::Prefix => prefix = Some(map.next_value()?),
                Field::MaxLength => max_length = Some(map.next_value()?),
                Field::Expires => expires = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RawEntry::Object {
            asn,
            prefix,
            max_length,
            expires,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawEntry::NotObject("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("null"))
    }
}

impl RawEntry {
    /// The VRP and its expiry time (a malformed `expires` is no expiry time).
    fn into_vrp(self) -> Result<(Vrp, Option<u64>), (SkipReason, String)> {
        let (asn, prefix, max_length, expires) = match self {
            RawEntry::Object {
                asn,
                prefix,
                max_length,
                expires,
            } => (asn, prefix, max_length, expires),
            RawEntry::NotObject(what) => {
                return Err((SkipReason::NotObject, format!("{what}, not an object")))
            }
        };
        let asn = match asn {
            None => return Err((SkipReason::BadAsn, "no `asn`".into())),
            Some(v) => parse_asn(&v).ok_or_else(|| (SkipReason::BadAsn, format!("asn {v}")))?,
        };
        let prefix = match prefix {
            None => return Err((SkipReason::BadPrefix, "no `prefix`".into())),
            Some(serde_json::Value::String(s)) => s
                .parse::<IpNet>()
                .map_err(|_| (SkipReason::BadPrefix, format!("prefix {s:?}")))?,
            Some(v) => return Err((SkipReason::BadPrefix, format!("prefix {v}"))),
        };
        let max_length = match max_length {
            None => {
                return Err((
                    SkipReason::BadMaxLength,
                    format!("{prefix}: no `maxLength`"),
                ))
            }
            Some(v) => v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| (SkipReason::BadMaxLength, format!("{prefix}: maxLength {v}")))?,
        };
        let expires = expires.and_then(|v| v.as_u64());
        let vrp = Vrp::new(prefix, max_length, asn).map_err(|reason| {
            let detail = match reason {
                SkipReason::HostBits => format!("prefix {prefix} has host bits set"),
                _ => format!("{prefix}: maxLength {max_length}"),
            };
            (reason, detail)
        })?;
        Ok((vrp, expires))
    }
}

/// `13335`, `"AS13335"` (any case) or `"13335"`.
pub(crate) fn parse_asn(v: &serde_json::Value) -> Option<u32> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => {
            let digits = match s.get(..2) {
                Some(p) if p.eq_ignore_ascii_case("AS") => &s[2..],
                _ => s.as_str(),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------

/// A VRP file the daemon polls: remembers the modification time and size it last loaded, so
/// [`VrpFile::changed`] is one `stat`.
#[derive(Debug, Clone)]
pub struct VrpFile {
    /// The file.
    pub path: PathBuf,
    /// Modification time seen just before the last load (`None`: never loaded).
    pub last_modified: Option<SystemTime>,
    /// Size seen just before the last load (`None`: never loaded).
    pub len: Option<u64>,
}

impl VrpFile {
    /// A file not loaded yet: [`VrpFile::changed`] is true while it exists.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        VrpFile {
            path: path.into(),
            last_modified: None,
            len: None,
        }
    }

    /// Whether the file's modification time or size differs from what the last load saw (or
    /// nothing was loaded yet). Errors when the file cannot be stat'ed (e.g. it is missing).
    pub fn changed(&self) -> io::Result<bool> {
        let (mtime, len) = stat(&self.path)?;
        Ok(self.last_modified != Some(mtime) || self.len != Some(len))
    }

    /// Reads and parses the file. The modification time and size are taken *before* reading, so
    /// a writer that is still busy shows up as a change at the next poll. They are remembered
    /// when the file could be read, even if it does not parse, so a broken file is not re-read
    /// at every poll but as soon as it is rewritten; on an I/O error nothing is remembered.
    pub fn load(&mut self) -> Result<(RpkiData, LoadReport), RpkiError> {
        let io_err = |source| RpkiError::Io {
            path: self.path.clone(),
            source,
        };
        let (mtime, len) = stat(&self.path).map_err(io_err)?;
        let bytes = fs::read(&self.path).map_err(io_err)?;
        self.last_modified = Some(mtime);
        self.len = Some(len);
        parse(&bytes).map_err(|source| RpkiError::Parse {
            path: self.path.clone(),
            source,
        })
    }
}

fn stat(path: &Path) -> io::Result<(SystemTime, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}
