//! `routewatch --version`: the version, the git commit and the build date, as build.rs captured
//! them (`git rev-parse --short=12 HEAD`, `SOURCE_DATE_EPOCH` or the day of the build).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn version_names_the_version_the_commit_and_the_build_date() {
    let out = Command::new(env!("CARGO_BIN_EXE_routewatch"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // "routewatch 0.1.0 (commit 0123456789ab, built 2026-12-06)\n"
    let rest = text
        .strip_prefix(&format!(
            "routewatch {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{text:?}"));
    let (commit, rest) = rest
        .split_once(", built ")
        .unwrap_or_else(|| panic!("{text:?}"));
    let date = rest
        .strip_suffix(")\n")
        .unwrap_or_else(|| panic!("{text:?}"));

    // The commit of this checkout when the tests run in one (they do in CI), else "unknown".
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    match head {
        Some(head) => assert_eq!(commit, head, "{text:?}"),
        None => assert_eq!(commit, "unknown", "{text:?}"),
    }

    // YYYY-MM-DD, a real date.
    let fields: Vec<u32> = date.split('-').map(|f| f.parse().unwrap()).collect();
    assert!(
        date.len() == 10
            && fields.len() == 3
            && (2025..=2200).contains(&fields[0])
            && (1..=12).contains(&fields[1])
            && (1..=31).contains(&fields[2]),
        "{text:?}"
    );
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{epoch}"), "+%F"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), date);
    }
}
