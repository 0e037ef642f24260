//! Top-level error type and the documented exit codes.

use std::path::PathBuf;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure (I/O, a listener that cannot bind, an unreadable input file).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code: usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Errors that end a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// An MRT input could not be opened.
    #[error(transparent)]
    Mrt(#[from] crate::ingest::mrt::MrtError),
    /// The VRP file could not be loaded (the error names the file).
    #[error("loading VRPs: {0}")]
    Rpki(#[from] crate::rpki::RpkiError),
    /// The event store could not be opened.
    #[error("starting the event store: {0}")]
    Store(#[from] crate::events::store::StoreError),
    /// Metric registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing an output file failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A command found nothing to do what it was asked (e.g. no route of the given ASes).
    #[error("{0}")]
    Nothing(String),
    /// A notification test failed (the message names the targets).
    #[error("{0}")]
    Notify(String),
    /// A `[[kafka]]` consumer could not be created (librdkafka refused a property).
    #[error("{0}")]
    Kafka(String),
    /// The command line asks for something the configuration does not have.
    #[error("{0}")]
    Usage(String),
    /// Any other I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Kafka(_) => EXIT_CONFIG,
            _ => EXIT_RUNTIME,
        }
    }
}
