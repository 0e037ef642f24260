//! The per-registered-prefix metric families, stored compactly and rendered directly in the
//! Prometheus text format.
//!
//! These are most of routewatch's series (28 per registered prefix: six per-prefix values, four
//! RPKI state counts, and two per anomaly kind, of which there are nine). Through the `prometheus` crate each series costs about a kilobyte and a
//! scrape re-encodes every one; here a row of label text plus its numbers costs about 200 bytes
//! and a scrape is one pass of string formatting. Rows are the registered prefixes within
//! `max-prefix-series`, then one `prefix="other"` row per location for the rest.

use std::fmt::Write as _;

use crate::engine::{AnomalyKind, PrefixStats, KINDS};
use crate::registry::Registry;

/// The numbers of one row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowValues {
    /// Peers with a route for exactly the prefix (summed over folded prefixes).
    pub visibility: i64,
    /// Distinct origins (summed over folded prefixes).
    pub origins: i64,
    /// Announcements received.
    pub announcements: u64,
    /// Withdrawals received.
    pub withdrawals: u64,
    /// Path changes.
    pub path_changes: u64,
    /// Latest change (0 = none).
    pub last_change: f64,
    /// Open anomalies per kind.
    pub anomalies_active: [i64; KINDS],
    /// Anomalies opened per kind.
    pub anomalies_opened: [u64; KINDS],
    /// Routes per RPKI state.
    pub rpki_routes: [i64; 4],
    /// Earliest expiry time of the ROAs covering the prefix (unix seconds; 0 = none known);
    /// of a folded row, the earliest of its prefixes. Set by [`PrefixTable::set_roa_expiry`].
    pub roa_expiry: u64,
}

/// Rows of per-prefix series and the map from registered prefix to row.
#[derive(Debug)]
pub struct PrefixTable {
    /// Label text of each row: `location="…",prefix="…"`.
    labels: Vec<Box<str>>,
    values: Vec<RowValues>,
    row_of: Vec<u32>,
    folded: usize,
}

/// Escapes a label value for the text format (backslash, double quote, line feed).
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// (name, help, type) of the families, in render order.
const FAMILIES: [(&str, &str, &str); 6] = [
    (
        "routewatch_prefix_visibility_peers",
        "Peers with a route for exactly the registered prefix.",
        "gauge",
    ),
    (
        "routewatch_prefix_origins",
        "Distinct origin ASes seen for exactly the registered prefix.",
        "gauge",
    ),
    (
        "routewatch_prefix_announcements_total",
        "Announcements received for the registered prefix or its more-specifics.",
        "counter",
    ),
    (
        "routewatch_prefix_withdrawals_total",
        "Withdrawals received for the registered prefix or its more-specifics.",
        "counter",
    ),
    (
        "routewatch_prefix_path_changes_total",
        "AS path changes of a peer's route for the prefix or its more-specifics.",
        "counter",
    ),
    (
        "routewatch_prefix_last_change_timestamp_seconds",
        "BGP time of the last route change for the prefix (0 = none yet).",
        "gauge",
    ),
];

impl PrefixTable {
    /// Rows for `registry`: the first `max_prefix_series` prefixes get their own.
    pub fn new(registry: &Registry, max_prefix_series: usize) -> PrefixTable {
        let mut labels: Vec<Box<str>> = Vec::new();
        let mut row_of = Vec::with_capacity(registry.prefixes().len());
        let mut other_row: Vec<Option<u32>> = vec![None; registry.locations().len()];
        let mut folded = 0;
        for (i, p) in registry.prefixes().iter().enumerate() {
            let loc = escape_label(&registry.locations()[p.location as usize].name);
            if i < max_prefix_series {
                labels.push(format!("location=\"{loc}\",prefix=\"{}\"", p.prefix).into());
                row_of.push((labels.len() - 1) as u32);
            } else {
                folded += 1;
                let slot = &mut other_row[p.location as usize];
                let row = *slot.get_or_insert_with(|| {
                    labels.push(format!("location=\"{loc}\",prefix=\"other\"").into());
                    (labels.len() - 1) as u32
                });
                row_of.push(row);
            }
        }
        let values = vec![RowValues::default(); labels.len()];
        PrefixTable {
            labels,
            values,
            row_of,
            folded,
        }
    }

    /// Registered prefixes folded into `prefix="other"` rows.
    pub fn folded(&self) -> usize {
        self.folded
    }

    /// Applies the change of one prefix's statistics from `old` to `new` to its row.
    pub fn apply(&mut self, prefix: u32, old: &PrefixStats, new: &PrefixStats) {
        let v = &mut self.values[self.row_of[prefix as usize] as usize];
        v.visibility += new.visibility as i64 - old.visibility as i64;
        v.origins += new.origins as i64 - old.origins as i64;
        v.announcements += new.announcements - old.announcements;
        v.withdrawals += new.withdrawals - old.withdrawals;
        v.path_changes += new.path_changes - old.path_changes;
        if let Some(t) = new.last_change {
            if t > v.last_change {
                v.last_change = t;
            }
        }
        for i in 0..4 {
            v.rpki_routes[i] += new.rpki_routes[i] as i64 - old.rpki_routes[i] as i64;
        }
        for k in 0..KINDS {
            v.anomalies_active[k] +=
                new.anomalies_active[k] as i64 - old.anomalies_active[k] as i64;
            v.anomalies_opened[k] += new.anomalies_opened[k] - old.anomalies_opened[k];
        }
    }

    /// Sets every row's earliest ROA expiry from the per-prefix times (indexed by prefix id;
    /// `None`: no covering ROA with an expiry time): a folded row gets the earliest of its
    /// prefixes.
    pub fn set_roa_expiry(&mut self, earliest: &[Option<u64>]) {
        for v in &mut self.values {
            v.roa_expiry = 0;
        }
        for (prefix, x) in earliest.iter().enumerate() {
            let (Some(x), Some(&row)) = (x, self.row_of.get(prefix)) else {
                continue;
            };
            let v = &mut self.values[row as usize].roa_expiry;
            if *v == 0 || *x < *v {
                *v = *x;
            }
        }
    }

    /// The row values of a registered prefix (for tests).
    pub fn row(&self, prefix: u32) -> &RowValues {
        &self.values[self.row_of[prefix as usize] as usize]
    }

    /// Appends the families in the text exposition format.
    pub fn render(&self, out: &mut String) {
        out.reserve(self.labels.len() * (18 * 90));
        for (f, (name, help, ty)) in FAMILIES.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            for (labels, v) in self.labels.iter().zip(&self.values) {
                let _ = match f {
                    0 => writeln!(out, "{name}{{{labels}}} {}", v.visibility),
                    1 => writeln!(out, "{name}{{{labels}}} {}", v.origins),
                    2 => writeln!(out, "{name}{{{labels}}} {}", v.announcements),
                    3 => writeln!(out, "{name}{{{labels}}} {}", v.withdrawals),
                    4 => writeln!(out, "{name}{{{labels}}} {}", v.path_changes),
                    _ => writeln!(out, "{name}{{{labels}}} {}", v.last_change),
                };
            }
        }
        let name = "routewatch_prefix_rpki_routes";
        let _ = writeln!(
            out,
            "# HELP {name} Routes of the prefix and its more-specifics by RPKI state (0 without VRPs).\n# TYPE {name} gauge"
        );
        for (labels, v) in self.labels.iter().zip(&self.values) {
            for (i, state) in crate::rpki::RovState::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{{labels},state=\"{}\"}} {}",
                    state.as_str(),
                    v.rpki_routes[i]
                );
            }
        }
        let name = "routewatch_rpki_roa_expiry_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Earliest expiry time of the ROAs covering the registered prefix, from sources that carry one (rpki-client); 0 = none known.\n# TYPE {name} gauge"
        );
        for (labels, v) in self.labels.iter().zip(&self.values) {
            let _ = writeln!(out, "{name}{{{labels}}} {}", v.roa_expiry);
        }
        for (name, help, ty, opened) in [
            (
                "routewatch_anomalies_active",
                "Open anomaly instances by kind.",
                "gauge",
                false,
            ),
            (
                "routewatch_anomalies_opened_total",
                "Anomaly instances opened by kind.",
                "counter",
                true,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            for (labels, v) in self.labels.iter().zip(&self.values) {
                for kind in AnomalyKind::ALL {
                    let k = kind.index();
                    let kind = kind.as_str();
                    let _ = if opened {
                        writeln!(
                            out,
                            "{name}{{kind=\"{kind}\",{labels}}} {}",
                            v.anomalies_opened[k]
                        )
                    } else {
                        writeln!(
                            out,
                            "{name}{{kind=\"{kind}\",{labels}}} {}",
                            v.anomalies_active[k]
                        )
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::registry::Location;

    #[test]
    fn folded_rows_sum_their_prefixes_and_keep_the_latest_time() {
        let reg = Registry::new(vec![Location {
            name: "l".into(),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: vec![1],
            prefixes: ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect(),
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        }])
        .unwrap();
        let mut t = PrefixTable::new(&reg, 1);
        assert_eq!(t.folded(), 2);
        let zero = PrefixStats::default();
        let a = PrefixStats {
            visibility: 3,
            announcements: 5,
            last_change: Some(100.0),
            ..Default::default()
        };
        let b = PrefixStats {
            visibility: 2,
            announcements: 1,
            last_change: Some(50.0),
            ..Default::default()
        };
        t.apply(1, &zero, &a);
        t.apply(2, &zero, &b);
        assert_eq!(t.row(1), t.row(2), "one shared row");
        assert_eq!(
            (
                t.row(1).visibility,
                t.row(1).announcements,
                t.row(1).last_change
            ),
            (5, 6, 100.0)
        );
        // Visibility of prefix 1 drops to 0: the sum follows.
        t.apply(
            1,
            &a,
            &PrefixStats {
                visibility: 0,
                ..a.clone()
            },
        );
        assert_eq!(t.row(2).visibility, 2);
        assert_eq!(t.row(0).visibility, 0);
        let mut text = String::new();
        t.render(&mut text);
        assert!(
            text.contains(r#"routewatch_prefix_visibility_peers{location="l",prefix="other"} 2"#)
        );
        assert!(text
            .contains(r#"routewatch_prefix_announcements_total{location="l",prefix="other"} 6"#));
        assert!(text.contains(
            r#"routewatch_anomalies_active{kind="moas",location="l",prefix="10.0.0.0/24"} 0"#
        ));
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            2 * (6 + 4 + 1 + 2 * KINDS)
        );
    }

    #[test]
    fn roa_expiry_rows_keep_the_earliest_of_their_prefixes() {
        let reg = Registry::new(vec![Location {
            name: "l".into(),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: vec![1],
            prefixes: ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect(),
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        }])
        .unwrap();
        let mut t = PrefixTable::new(&reg, 2);
        t.set_roa_expiry(&[Some(500), None, Some(900), Some(700)]);
        let mut text = String::new();
        t.render(&mut text);
        for want in [
            r#"routewatch_rpki_roa_expiry_timestamp_seconds{location="l",prefix="10.0.0.0/24"} 500"#,
            r#"routewatch_rpki_roa_expiry_timestamp_seconds{location="l",prefix="10.0.1.0/24"} 0"#,
            r#"routewatch_rpki_roa_expiry_timestamp_seconds{location="l",prefix="other"} 700"#,
        ] {
            assert!(text.contains(want), "{want}");
        }
        // A later call replaces every value.
        t.set_roa_expiry(&[None, None, None, None]);
        assert_eq!(t.row(0).roa_expiry, 0);
        assert_eq!(t.row(3).roa_expiry, 0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            escape_label(
                r#"a"b\c
d"#
            ),
            r#"a\"b\\c\nd"#
        );
    }
}
