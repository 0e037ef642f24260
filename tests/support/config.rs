//! Configuration files for tests: one builder of `[[location]]` tables ([`Location`]) and one of
//! whole `routewatch.toml` files ([`DaemonConfig`], written as a [`ConfigFile`] that
//! [`super::daemon::Daemon::start`] runs).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::daemon::{free_port, toml_path};

/// A `[[location]]` table of the registry.
#[derive(Clone, Debug)]
pub struct Location {
    name: String,
    provider: Option<String>,
    provider_asns: Option<Vec<u32>>,
    region: Option<String>,
    origin_asns: Vec<u32>,
    prefixes: Vec<String>,
    max_length: Option<u8>,
    min_peers: Option<u32>,
}

fn list<T: std::fmt::Display>(items: &[T], quoted: bool) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| {
            if quoted {
                format!("\"{i}\"")
            } else {
                i.to_string()
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

impl Location {
    /// A location named `name` expecting the origin ASes `origin_asns` for `prefixes`.
    pub fn new(name: &str, origin_asns: &[u32], prefixes: &[impl std::fmt::Display]) -> Location {
        Location {
            name: name.to_string(),
            provider: None,
            provider_asns: None,
            region: None,
            origin_asns: origin_asns.to_vec(),
            prefixes: prefixes.iter().map(ToString::to_string).collect(),
            max_length: None,
            min_peers: None,
        }
    }

    pub fn provider(mut self, provider: &str) -> Location {
        self.provider = Some(provider.to_string());
        self
    }

    pub fn provider_asns(mut self, asns: &[u32]) -> Location {
        self.provider_asns = Some(asns.to_vec());
        self
    }

    pub fn region(mut self, region: &str) -> Location {
        self.region = Some(region.to_string());
        self
    }

    pub fn max_length(mut self, max_length: u8) -> Location {
        self.max_length = Some(max_length);
        self
    }

    pub fn min_peers(mut self, min_peers: u32) -> Location {
        self.min_peers = Some(min_peers);
        self
    }

    /// The table, starting with a blank line.
    pub fn toml(&self) -> String {
        let mut t = format!("\n[[location]]\nname = \"{}\"\n", self.name);
        if let Some(p) = &self.provider {
            let _ = writeln!(t, "provider = \"{p}\"");
        }
        if let Some(a) = &self.provider_asns {
            let _ = writeln!(t, "provider-asns = {}", list(a, false));
        }
        if let Some(r) = &self.region {
            let _ = writeln!(t, "region = \"{r}\"");
        }
        let _ = writeln!(t, "origin-asns = {}", list(&self.origin_asns, false));
        let _ = writeln!(t, "prefixes = {}", list(&self.prefixes, true));
        if let Some(m) = self.max_length {
            let _ = writeln!(t, "max-length = {m}");
        }
        if let Some(m) = self.min_peers {
            let _ = writeln!(t, "min-peers = {m}");
        }
        t
    }
}

/// The `[[location]]` tables of `locations`, in order.
pub fn locations_toml(locations: &[Location]) -> String {
    locations.iter().map(Location::toml).collect()
}

/// The `[[location]]` tables of `config/demo.toml`.
pub fn demo_locations() -> String {
    let text = std::fs::read_to_string(super::repo("config/demo.toml")).unwrap();
    let start = text
        .find("[[location]]")
        .expect("config/demo.toml registers locations");
    text[start..].to_string()
}

/// A whole `routewatch.toml`: `state-dir` (by default `state` in the directory it is written
/// to), `[http]` on a free 127.0.0.1 port (unless [`DaemonConfig::replay`]), the sections set, and
/// the locations last.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    state_dir: Option<PathBuf>,
    http: Option<SocketAddr>,
    mrt_files: Vec<PathBuf>,
    watch: Option<(PathBuf, u64)>,
    mrt_keys: String,
    bmp: Option<(u16, String)>,
    rpki: Option<String>,
    sections: Vec<(String, String)>,
    http_keys: String,
    locations: String,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig::new()
    }
}

impl DaemonConfig {
    /// For `routewatch run`: HTTP on a free port of 127.0.0.1.
    pub fn new() -> DaemonConfig {
        DaemonConfig {
            http: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
            ..DaemonConfig::replay()
        }
    }

    /// For a replay through the library: no `[http]`.
    pub fn replay() -> DaemonConfig {
        DaemonConfig {
            state_dir: None,
            http: None,
            mrt_files: Vec::new(),
            watch: None,
            mrt_keys: String::new(),
            bmp: None,
            rpki: None,
            sections: Vec::new(),
            http_keys: String::new(),
            locations: String::new(),
        }
    }

    /// `state-dir` (instead of `state` in the directory written to).
    pub fn state_dir(mut self, dir: &Path) -> DaemonConfig {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    /// More `[http]` keys (after `listen`).
    pub fn http(mut self, keys: &str) -> DaemonConfig {
        self.http_keys.push_str(keys);
        self.http_keys.push('\n');
        self
    }

    /// `[http] listen` (instead of a free port).
    pub fn listen(mut self, addr: SocketAddr) -> DaemonConfig {
        self.http = Some(addr);
        self
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http.expect("a daemon configuration").port()
    }

    /// `[mrt] files`.
    pub fn mrt_files(mut self, files: &[PathBuf]) -> DaemonConfig {
        self.mrt_files = files.to_vec();
        self
    }

    /// More `[mrt]` keys (TOML lines).
    pub fn mrt_keys(mut self, keys: &str) -> DaemonConfig {
        self.mrt_keys = keys.to_string();
        self
    }

    /// `[mrt] watch-dir` polled every `interval_seconds`.
    pub fn watch_dir(mut self, dir: &Path, interval_seconds: u64) -> DaemonConfig {
        self.watch = Some((dir.to_path_buf(), interval_seconds));
        self
    }

    /// `[bmp]` listening on a free port of 127.0.0.1, with the other keys and any
    /// `[[bmp.router]]` tables in `rest`.
    pub fn bmp(mut self, rest: &str) -> DaemonConfig {
        let port = self.bmp.as_ref().map_or_else(free_port, |(p, _)| *p);
        self.bmp = Some((port, rest.to_string()));
        self
    }

    /// The BMP port.
    pub fn bmp_port(&self) -> u16 {
        self.bmp.as_ref().expect("a [bmp] section").0
    }

    /// `[rpki] vrp-file`, with the other keys in `rest`.
    pub fn rpki(mut self, vrp_file: &Path, rest: &str) -> DaemonConfig {
        self.rpki = Some(format!("vrp-file = {}\n{rest}", toml_path(vrp_file)));
        self
    }

    /// A `[name]` section with the keys `body` (`events`, `dns`, ...).
    pub fn section(mut self, name: &str, body: &str) -> DaemonConfig {
        self.sections.push((name.to_string(), body.to_string()));
        self
    }

    /// Adds a `[[location]]` table.
    pub fn location(mut self, location: Location) -> DaemonConfig {
        self.locations += &location.toml();
        self
    }

    /// Adds `[[location]]` tables.
    pub fn locations(self, locations: &[Location]) -> DaemonConfig {
        locations.iter().fold(self, |c, l| c.location(l.clone()))
    }

    /// Adds `[[location]]` tables given as TOML ([`demo_locations`], a test's own table).
    pub fn locations_toml(mut self, toml: &str) -> DaemonConfig {
        self.locations += "\n";
        self.locations += toml;
        self
    }

    /// The file's text, for `dir`.
    pub fn text(&self, dir: &Path) -> String {
        let state = self.state_dir.clone().unwrap_or_else(|| dir.join("state"));
        let mut t = format!("state-dir = {}\n", toml_path(&state));
        if let Some(addr) = self.http {
            let _ = write!(t, "\n[http]\nlisten = \"{addr}\"\n{}", self.http_keys);
        }
        if !self.mrt_files.is_empty() || self.watch.is_some() || !self.mrt_keys.is_empty() {
            let files: Vec<String> = self.mrt_files.iter().map(|f| toml_path(f)).collect();
            let _ = write!(t, "\n[mrt]\nfiles = [{}]\n", files.join(", "));
            if let Some((watch, interval)) = &self.watch {
                let _ = write!(
                    t,
                    "watch-dir = {}\nwatch-interval-seconds = {interval}\n",
                    toml_path(watch)
                );
            }
            let _ = writeln!(t, "{}", self.mrt_keys);
        }
        for (name, body) in &self.sections {
            let _ = write!(t, "\n[{name}]\n{body}\n");
        }
        if let Some((port, rest)) = &self.bmp {
            let _ = write!(t, "\n[bmp]\nlisten = \"127.0.0.1:{port}\"\n{rest}\n");
        }
        if let Some(rpki) = &self.rpki {
            let _ = write!(t, "\n[rpki]\n{rpki}\n");
        }
        t + &self.locations
    }

    /// Writes `routewatch.toml` in `dir` (aside, then renamed, as an editor or configuration
    /// management would: a daemon reloading it never reads half a file).
    pub fn write(&self, dir: &Path) -> ConfigFile {
        let path = dir.join("routewatch.toml");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.text(dir)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        ConfigFile {
            path,
            dir: dir.to_path_buf(),
            http_port: self.http.map(|a| a.port()),
            bmp_port: self.bmp.as_ref().map(|(p, _)| *p),
        }
    }
}

/// A written [`DaemonConfig`].
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// Its directory (where the daemon's logs go).
    pub dir: PathBuf,
    /// `[http] listen`'s port, if any.
    pub http_port: Option<u16>,
    /// `[bmp] listen`'s port, if any.
    pub bmp_port: Option<u16>,
}
