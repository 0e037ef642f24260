//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`, or `[log] level`
//! for `run`), as text or as JSON lines (`[log] format = "json"`); [`LogBudget`] bounds the lines
//! a flood can write.
//!
//! Text under systemd (`JOURNAL_STREAM` set) leaves out timestamps and colours: journald adds its
//! own timestamp and does not render ANSI. JSON lines always carry `timestamp` (RFC 3339 UTC),
//! `level`, `target` and the event's fields at the top level (`message` among them), one object
//! per line, for log shippers (Vector, Promtail, Filebeat, journald's own JSON export).

use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `tracing`'s human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text if journald => builder.without_time().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A bound on log lines: at most `burst` lines per `interval`; the rest are counted and
/// summarised in one line when the interval ends (or the source does). A hostile or broken
/// input (a router sending garbage, a flapping hijack) cannot flood the journal: each BMP
/// session and the accept loop have one, and so has the daemon's event log.
#[derive(Debug)]
pub struct LogBudget {
    burst: u32,
    interval: Duration,
    start: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    /// `burst` lines per `interval`, the first interval starting at `now`.
    pub fn new(burst: u32, interval: Duration, now: Instant) -> Self {
        LogBudget {
            burst,
            interval,
            start: now,
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be written now; if not, it is counted as suppressed. Call
    /// [`LogBudget::due`] first so that a new interval starts with its whole budget.
    pub fn allow(&mut self) -> bool {
        if self.used < self.burst {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// When the interval is over: starts a new one and returns the lines suppressed in the
    /// last one, if any (for the summary line).
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        if now.duration_since(self.start) < self.interval {
            return None;
        }
        self.start = now;
        self.used = 0;
        self.take()
    }

    /// Lines suppressed and not yet summarised (at the end of a session).
    pub fn take(&mut self) -> Option<u64> {
        let n = std::mem::take(&mut self.suppressed);
        (n > 0).then_some(n)
    }

    /// When the current interval ends.
    pub fn interval_end(&self) -> Instant {
        self.start + self.interval
    }

    /// Whether lines are waiting for a summary.
    pub fn pending(&self) -> bool {
        self.suppressed > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_summary_per_interval() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(3, Duration::from_secs(10), t0);
        let allowed = (0..100).filter(|_| b.allow()).count();
        assert_eq!(allowed, 3);
        assert_eq!(b.due(t0 + Duration::from_secs(5)), None);
        assert_eq!(b.due(t0 + Duration::from_secs(10)), Some(97));
        assert!(b.allow(), "a new interval has its budget again");
        assert_eq!(b.take(), None);
    }
}
