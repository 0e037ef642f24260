//! The `replay` report: per-prefix summary, anomaly transitions and per-file counts, as tables or
//! as one JSON document (the same shapes as `/api/v1/prefixes` and `/api/v1/events`: times
//! written by [`crate::time_fmt`], AS paths as arrays).

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::{AnomalyEvent, PrefixSummary, Transition};
use crate::ingest::mrt::FileReport;
use crate::time_fmt::format_rfc3339;

/// Everything `replay` reports.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// Per file: routes processed and matched, parse errors.
    pub files: Vec<FileReport>,
    /// Per registered prefix, final state.
    pub prefixes: Vec<PrefixSummary>,
    /// Anomaly transitions in BGP-time order (the time of the update or RIB entry that caused
    /// each).
    pub events: Vec<AnomalyEvent>,
    /// Every event (anomaly transitions, first/last peer, path and origin changes) in BGP-time
    /// order, in the event store's and `/api/v1/events`' shape.
    pub history: Vec<crate::events::Event>,
    /// Engine memory by part at the end of the replay (bytes requested from the allocator).
    pub memory: crate::engine::EngineMemory,
    /// Peak resident set size of the process at the end of the replay (Linux `VmHWM`), if
    /// known.
    pub peak_rss_bytes: Option<u64>,
}

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`), on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The one-line legend printed above the anomaly transitions.
pub const TRANSITIONS_LEGEND: &str = "columns: BGP time (UTC), OPENED/RESOLVED, kind, location, \
registered prefix, announced prefix, offending AS, the peer whose update caused it; peers= \
carriers at the opening, path = one AS path carrying it; reason= why the last carrier went \
away, flaps= times it came back within the hold-down";

fn join<T: ToString>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

impl ReplayReport {
    /// The human-readable report.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Files");
        let _ = writeln!(
            out,
            "  {:>10} {:>9} {:>7}  FILE",
            "ROUTES", "MATCHED", "ERRORS"
        );
        for f in &self.files {
            let _ = writeln!(
                out,
                "  {:>10} {:>9} {:>7}  {}",
                f.processed,
                f.matched,
                f.error_count(),
                f.path.display()
            );
        }
        let _ = writeln!(out, "\nPrefixes");
        let _ = writeln!(
            out,
            "  {:<20} {:<24} {:>5} {:<16} {:>8} {:>8} {:>7} {:>5}  ANOMALIES",
            "LOCATION", "PREFIX", "PEERS", "ORIGINS", "ANNOUNCE", "WITHDRAW", "CHANGES", "MORE"
        );
        for p in &self.prefixes {
            let open: Vec<String> = p
                .anomalies
                .iter()
                .filter(|a| a.open)
                .map(|a| match a.asn {
                    Some(asn) => format!("{}({} AS{asn})", a.kind, a.announced),
                    None => format!("{}({})", a.kind, a.announced),
                })
                .collect();
            let _ = writeln!(
                out,
                "  {:<20} {:<24} {:>5} {:<16} {:>8} {:>8} {:>7} {:>5}  {}",
                p.location,
                p.prefix.to_string(),
                p.visibility,
                if p.origins.is_empty() {
                    "-".into()
                } else {
                    join(&p.origins, ",")
                },
                p.announcements,
                p.withdrawals,
                p.path_changes,
                p.more_specifics.len(),
                if open.is_empty() {
                    "-".into()
                } else {
                    open.join(" ")
                }
            );
        }
        let _ = writeln!(
            out,
            "\nEvents: {} in all ({} anomaly transitions below; --format json lists every one)",
            self.history.len(),
            self.events.len()
        );
        let _ = writeln!(out, "\nAnomaly transitions ({})", self.events.len());
        if !self.events.is_empty() {
            let _ = writeln!(out, "  {TRANSITIONS_LEGEND}");
        }
        for e in &self.events {
            let what = match e.transition {
                Transition::Opened => "OPENED  ",
                Transition::Resolved => "RESOLVED",
            };
            let asn = e.asn.map_or_else(String::new, |a| format!(" AS{a}"));
            let tail = match (e.transition, &e.example_path, e.reason) {
                (Transition::Opened, Some(path), _) => format!(" peers={} path [{path}]", e.peers),
                (Transition::Resolved, _, Some(reason)) => {
                    let flaps = if e.flaps > 0 {
                        format!(" flaps={}", e.flaps)
                    } else {
                        String::new()
                    };
                    format!(
                        " reason={}{flaps}",
                        serde_json::to_value(reason)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or("")
                    )
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} {what} {:<24} {} {} announced {}{asn} via {}{tail}",
                format_rfc3339(e.time.floor()),
                e.kind.as_str(),
                e.location,
                e.prefix,
                e.announced,
                e.peer,
            );
        }
        out
    }
}
