//! The config loader: the input is the text of a configuration file, written to a file in a
//! temporary directory of its own and read with `Config::load`. Errors are expected; a panic is
//! not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routewatch::config::Config;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routewatch.toml");
    std::fs::write(&path, data).unwrap();
    if let Ok(config) = Config::load(&path) {
        // A config that loads is one the daemon would run with: its Debug form must render.
        let _ = format!("{config:?}");
    }
});
