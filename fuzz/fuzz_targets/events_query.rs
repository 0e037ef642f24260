//! The events query parser: the input (as UTF-8, lossily) is a decoded query string; `&`
//! separates the pairs and the first `=` of each separates its name from its value (no `=`:
//! an empty value). The pairs go to `routewatch::http::events::parse_query`.
//!
//! Invariants: no panic; an accepted query names each parameter at most once, and its error
//! (if refused) names a parameter.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routewatch::http::events::{parse_query, PARAMETERS};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect()
    };
    match parse_query(&pairs) {
        Ok(_) => assert!(pairs.len() <= PARAMETERS.len()),
        Err(e) => assert!(!e.parameter.is_empty() || pairs.iter().any(|(k, _)| k.is_empty())),
    }
});
