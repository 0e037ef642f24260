//! Small helpers shared by several subsystems (ingest, engine) that belong to none of them.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

/// A fast, non-cryptographic hash map for keys that are not attacker-chosen in a way that
/// matters here (dense ids, prefixes and paths from already-matched routes).
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
