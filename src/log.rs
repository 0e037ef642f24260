//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Under systemd (`JOURNAL_STREAM` set) timestamps and colours are left out: journald adds its
//! own timestamp and does not render ANSI.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = if journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// A budget of log lines per interval, so that a flood (a flapping hijack, a router sending
/// garbage) cannot flood the journal: the first `burst` lines of each interval are written,
/// the rest are counted; when the next interval starts, one line says how many were left out.
///
/// Pure bookkeeping: the caller passes the time and writes the lines it is allowed to.
#[derive(Debug, Clone)]
pub struct LogBudget {
    burst: u32,
    interval: f64,
    window_start: f64,
    written: u32,
    suppressed_in_window: u64,
    suppressed_total: u64,
}

/// What [`LogBudget::admit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether this line may be written.
    pub write: bool,
    /// Lines left out in the interval that just ended (log a summary line when non-zero).
    pub suppressed_before: u64,
}

impl LogBudget {
    /// At most `burst` lines per `interval_seconds`.
    pub fn new(burst: u32, interval_seconds: f64) -> Self {
        LogBudget {
            burst,
            interval: interval_seconds,
            window_start: f64::NEG_INFINITY,
            written: 0,
            suppressed_in_window: 0,
            suppressed_total: 0,
        }
    }

    /// Asks to write one line at `now` (seconds).
    pub fn admit(&mut self, now: f64) -> Admission {
        let mut suppressed_before = 0;
        if now - self.window_start >= self.interval {
            suppressed_before = std::mem::take(&mut self.suppressed_in_window);
            self.window_start = now;
            self.written = 0;
        }
        let write = self.written < self.burst;
        if write {
            self.written += 1;
        } else {
            self.suppressed_in_window += 1;
            self.suppressed_total += 1;
        }
        Admission {
            write,
            suppressed_before,
        }
    }

    /// Lines left out since the start.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_the_burst_then_one_summary_per_interval() {
        let mut b = LogBudget::new(3, 10.0);
        let written: Vec<bool> = (0..10).map(|i| b.admit(f64::from(i) * 0.1).write).collect();
        assert_eq!(written.iter().filter(|w| **w).count(), 3);
        assert_eq!(b.suppressed_total(), 7);
        // The next interval: writes again, and says what was left out.
        let a = b.admit(10.5);
        assert_eq!(
            a,
            Admission {
                write: true,
                suppressed_before: 7
            }
        );
        assert_eq!(b.admit(10.6).suppressed_before, 0);
    }
}
