#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `routewatch check-config` through the real binary: every kind of bad configuration exits 2
//! with `FILE:LINE:COL: KEY: message` on stderr, pointing at the exact offending value; valid
//! configurations exit 0 and say OK.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `routewatch check-config -c path`.
fn check_config(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routewatch"))
        .arg("check-config")
        .arg("-c")
        .arg(path)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// Writes `text` as `name` in `dir`.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// 1-based column of the first `at` on 1-based `line` of `text`; an empty `at` means the end of
/// the line.
fn column(text: &str, line: usize, at: &str) -> usize {
    if text.is_empty() && line == 1 && at.is_empty() {
        return 1; // an empty file: its one (empty) line
    }
    let l = text
        .lines()
        .nth(line - 1)
        .unwrap_or_else(|| panic!("no line {line} in\n{text}"));
    if at.is_empty() {
        return l.len() + 1;
    }
    l.find(at)
        .unwrap_or_else(|| panic!("{at:?} not on line {line}: {l:?}"))
        + 1
}

/// Asserts `out` is a configuration error (exit 2, nothing on stdout) whose stderr is
/// `routewatch: FILE:LINE:COL: rest...`, where COL is that of `at` on `line` of `text` (the
/// contents of `file`).
fn assert_config_error(out: &Output, file: &Path, text: &str, line: usize, at: &str, rest: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code of a configuration error; stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let col = column(text, line, at);
    let want = format!("routewatch: {}:{line}:{col}: {rest}", file.display());
    assert!(
        stderr.lines().any(|l| l.starts_with(&want)),
        "stderr does not start a line with\n  {want}\nstderr:\n{stderr}"
    );
}

/// Writes `text` as the main configuration in a fresh directory, checks it and asserts the
/// error as [`assert_config_error`] does; returns the output.
fn expect_error(text: &str, line: usize, at: &str, rest: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "routewatch.toml", text);
    let out = check_config(&path);
    assert_config_error(&out, &path, text, line, at, rest);
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_key_in_a_location() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixs = ["192.0.2.0/24"]
"#;
    expect_error(text, 4, "prefixs", "unknown field `prefixs`");
}

#[test]
fn unknown_top_level_key() {
    let text = r#"state-dir = "/var/lib/routewatch"
listen = "127.0.0.1:9179"
"#;
    expect_error(text, 2, "listen", "unknown field `listen`");
}

#[test]
fn prefix_with_host_bits_set() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["10.0.0.1/8"]
"#;
    expect_error(
        text,
        4,
        "\"10.0.0.1/8\"",
        "location[0].prefixes: '10.0.0.1/8' has host bits set beyond /8 (did you mean 10.0.0.0/8?)",
    );
}

#[test]
fn ipv4_prefix_length_over_32() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24", "10.0.0.0/33"]
"#;
    expect_error(
        text,
        4,
        "\"10.0.0.0/33\"",
        "location[0].prefixes: '10.0.0.0/33' is not a prefix",
    );
}

#[test]
fn ipv6_prefix_length_over_128() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["2001:db8::/129"]
"#;
    expect_error(
        text,
        4,
        "\"2001:db8::/129\"",
        "location[0].prefixes: '2001:db8::/129' is not a prefix",
    );
}

#[test]
fn duplicate_prefix_across_locations_points_at_the_second() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["10.0.0.0/8"]

[[location]]
name = "b"
origin-asns = [64501]
prefixes = ["192.0.2.0/24", "10.0.0.0/8"]
"#;
    expect_error(
        text,
        9,
        "\"10.0.0.0/8\"",
        "location[1].prefixes: 10.0.0.0/8 is already registered by location[0]",
    );
}

#[test]
fn duplicate_location_name_points_at_the_second() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["10.0.0.0/8"]

[[location]]
name = "a"
origin-asns = [64501]
prefixes = ["192.0.2.0/24"]
"#;
    expect_error(
        text,
        7,
        "\"a\"",
        "location[1].name: duplicate location name (first used by location[0])",
    );
}

#[test]
fn origin_asn_zero() {
    let text = r#"[[location]]
name = "a"
origin-asns = [0]
prefixes = ["10.0.0.0/8"]
"#;
    expect_error(
        text,
        3,
        "0]",
        "location[0].origin-asns: ASN 0 is out of range 1..=4294967295",
    );
}

#[test]
fn origin_asn_above_32_bits() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500, 4294967296]
prefixes = ["10.0.0.0/8"]
"#;
    expect_error(
        text,
        3,
        "4294967296",
        "location[0].origin-asns: ASN 4294967296 is out of range 1..=4294967295",
    );
}

#[test]
fn provider_asn_out_of_range() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
provider-asns = [4294967296]
prefixes = ["10.0.0.0/8"]
"#;
    expect_error(
        text,
        4,
        "4294967296",
        "location[0].provider-asns: ASN 4294967296 is out of range 1..=4294967295",
    );
}

#[test]
fn max_length_shorter_than_the_prefix() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24"]
max-length = 16
"#;
    expect_error(
        text,
        5,
        "16",
        "location[0].max-length: 16 is shorter than the registered prefix 192.0.2.0/24",
    );
}

#[test]
fn max_length_v6_shorter_than_the_prefix() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24", "2001:db8::/32"]
max-length = 24
max-length-v6 = 24
"#;
    expect_error(
        text,
        6,
        "24",
        "location[0].max-length-v6: 24 is shorter than the registered prefix 2001:db8::/32",
    );
}

#[test]
fn included_file_duplicating_a_main_file_prefix_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let main_text = r#"include = ["more.toml"]

[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["10.0.0.0/8"]
"#;
    let more_text = r#"# Locations kept in a second file.

[[location]]
name = "b"
origin-asns = [64501]
prefixes = ["192.0.2.0/24", "10.0.0.0/8"]
"#;
    let main = write(dir.path(), "routewatch.toml", main_text);
    let more = write(dir.path(), "more.toml", more_text);
    let out = check_config(&main);
    assert_config_error(
        &out,
        &more,
        more_text,
        6,
        "\"10.0.0.0/8\"",
        "location[1].prefixes: 10.0.0.0/8 is already registered by location[0]",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("routewatch.toml:"),
        "the error is in more.toml, not the main file: {stderr}"
    );
}

#[test]
fn missing_included_file_points_at_the_include() {
    let text = r#"state-dir = "/var/lib/routewatch"
include = ["missing.toml"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "routewatch.toml", text);
    let missing = dir.path().join("missing.toml");
    assert_config_error(
        &check_config(&path),
        &path,
        text,
        2,
        "\"missing.toml\"",
        &format!("include: {}: ", missing.display()),
    );
}

#[test]
fn toml_syntax_error() {
    // An unterminated string: the parser reports where the string runs into the end of line.
    let text = r#"[[location]]
name = "a
origin-asns = [64500]
prefixes = ["10.0.0.0/8"]
"#;
    // Parser errors carry no key (yet); only the position and the parser's message are pinned,
    // so naming the key after the position would not break this test.
    let out = expect_error(text, 2, "", "");
    assert!(
        stderr(&out).contains("invalid basic string"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_value_of_the_wrong_type() {
    let text = r#"[[location]]
name = "a"
origin-asns = "64500"
prefixes = ["10.0.0.0/8"]
"#;
    let out = expect_error(text, 3, "\"64500\"", "");
    assert!(
        stderr(&out).contains("invalid type: string \"64500\", expected a sequence"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shipped_config_with_a_location_appended_is_valid() {
    // The shipped file has one example location (192.0.2.0/24); this adds a second.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/routewatch.toml"),
    )
    .unwrap();
    let text = format!(
        "{shipped}\n[[location]]\nname = \"contoso-seattle\"\nprovider = \"Example ISP\"\n\
         provider-asns = [64500]\nregion = \"US-WA\"\norigin-asns = [64496]\n\
         prefixes = [\"203.0.113.0/24\", \"2001:db8:100::/48\"]\nmax-length = 24\n\
         max-length-v6 = 48\nmin-peers = 1\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "routewatch.toml", &text);
    let out = check_config(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        format!(
            "{}: OK: 2 locations, 3 prefixes (2 IPv4, 1 IPv6)\n",
            path.display()
        )
    );
}

#[test]
fn demo_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let out = check_config(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        format!(
            "{}: OK: 4 locations, 5 prefixes (5 IPv4, 0 IPv6)\n",
            path.display()
        )
    );
}

/// A registry large enough to be parsed in pieces on two threads (over 4 MB): `locations`
/// locations of 8 prefixes each (10.x.y.0/24 and 172.16.x.y/32 style, all distinct), then
/// `tail` appended; returns the text and the number of its lines before `tail`.
fn large_registry(locations: usize, tail: &str) -> (String, usize) {
    let mut t = String::from("state-dir = \"/tmp/x\"\n\n[metrics]\nmax-prefix-series = 5\n");
    for i in 0..locations {
        t.push_str(&format!(
            "\n[[location]] # site {i}\nname = \"site-{i}\"\norigin-asns = [{}]\nprefixes = [",
            64496 + i % 1000
        ));
        for k in 0..8 {
            let n = i * 8 + k;
            t.push_str(&format!(
                "{}\"{}.{}.{}.0/24\"",
                if k == 0 { "" } else { ", " },
                10 + n / 65536,
                (n / 256) % 256,
                n % 256
            ));
        }
        t.push_str("]\n");
    }
    let lines = t.lines().count();
    t.push_str(tail);
    (t, lines)
}

#[test]
fn a_large_registry_parsed_in_pieces_reports_errors_at_their_line() {
    // An invalid prefix in the last location, in the last piece.
    let (text, lines) = large_registry(
        40_000,
        "\n[[location]]\nname = \"last\"\norigin-asns = [64500]\nprefixes = [\"192.0.2.1/24\"]\n",
    );
    assert!(text.len() > 4 << 20, "{} bytes: not split", text.len());
    expect_error(
        &text,
        lines + 5,
        "\"192.0.2.1/24\"",
        "location[40000].prefixes: '192.0.2.1/24' has host bits set beyond /24 (did you mean 192.0.2.0/24?)",
    );
    // A prefix registered near the start and again at the end: a registry error, mapped back
    // through the spans of a later piece.
    let (text, lines) = large_registry(
        40_000,
        "\n[[location]]\nname = \"again\"\norigin-asns = [64500]\nprefixes = [\"192.0.2.0/24\", \"10.1.0.0/24\"]\n",
    );
    expect_error(
        &text,
        lines + 5,
        "\"10.1.0.0/24\"",
        "location[40000].prefixes: 10.1.0.0/24 is already registered by location[32]",
    );
    // The same registry without the error is valid, with every location.
    let (text, _) = large_registry(40_000, "");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "routewatch.toml", &text);
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}: OK: 40000 locations, 320000 prefixes (320000 IPv4, 0 IPv6)\n",
            path.display()
        )
    );
}

// ---- nonsense that parses (issue 12) ---------------------------------------------------------

/// A location appended to the texts below, so that only the key under test is wrong.
const A_LOCATION: &str = r#"
[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24"]
"#;

/// What `check-config` says of a valid file (exit 0).
fn expect_ok(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "routewatch.toml", text);
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).replace(&path.display().to_string(), "FILE")
}

#[test]
fn an_empty_file_registers_nothing_and_is_refused() {
    expect_error(
        "",
        1,
        "",
        "location: no locations: the file is empty; add [[location]] tables, or set \
         allow-empty-registry = true to run with none",
    );
    // Blank lines and comments only: still empty.
    expect_error(
        "\n# cut here\n\n",
        1,
        "",
        "location: no locations: the file is empty (blank lines and comments only);",
    );
}

#[test]
fn a_file_without_locations_is_refused() {
    let text = r#"state-dir = "/var/lib/routewatch"

[http]
listen = "127.0.0.1:9179"
"#;
    expect_error(
        text,
        1,
        "state-dir",
        "location: no locations: the file has no [[location]] table; add [[location]] tables, \
         or set allow-empty-registry = true to run with none",
    );
}

#[test]
fn includes_without_locations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = "include = [\"more.toml\"]\n";
    let path = write(dir.path(), "routewatch.toml", text);
    write(dir.path(), "more.toml", "# emptied\n");
    assert_config_error(
        &check_config(&path),
        &path,
        text,
        1,
        "include",
        "location: no locations: neither the file nor its includes have a [[location]] table;",
    );
}

#[test]
fn allow_empty_registry_accepts_a_file_without_locations() {
    assert_eq!(
        expect_ok("allow-empty-registry = true\n"),
        "FILE: OK: 0 locations, 0 prefixes (0 IPv4, 0 IPv6)\n"
    );
    // It changes nothing when there are locations.
    assert_eq!(
        expect_ok(&format!("allow-empty-registry = true\n{A_LOCATION}")),
        "FILE: OK: 1 locations, 1 prefixes (1 IPv4, 0 IPv6)\n"
    );
    // Only a boolean.
    let out = expect_error("allow-empty-registry = \"yes\"\n", 1, "\"yes\"", "");
    assert!(
        stderr(&out).contains("invalid type: string \"yes\", expected a boolean"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn http_listen_equal_to_bmp_listen() {
    let text = format!(
        r#"[http]
listen = "127.0.0.1:9000"

[bmp]
listen = "127.0.0.1:9000"
{A_LOCATION}"#
    );
    expect_error(
        &text,
        5,
        "\"127",
        "bmp.listen: 127.0.0.1:9000 is also http.listen; give HTTP and BMP their own ports",
    );
}

#[test]
fn bmp_on_a_wildcard_address_and_the_http_port() {
    // bmp.listen written: the error is there; http.listen is the default 127.0.0.1:9179.
    let text = format!("[bmp]\nlisten = \"0.0.0.0:9179\"\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "\"0.0.0.0",
        "bmp.listen: 0.0.0.0:9179 and http.listen (the default) 127.0.0.1:9179 both take port \
         9179 (a wildcard address takes its port on every address); give HTTP and BMP their own \
         ports",
    );
    // bmp.listen left at its default [::]:11019: the error is at http.listen.
    let text = format!("[http]\nlisten = \"127.0.0.1:11019\"\n\n[bmp]\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "\"127",
        "http.listen: 127.0.0.1:11019 and bmp.listen (the default) [::]:11019 both take port \
         11019 (a wildcard address takes its port on every address); give HTTP and BMP their own \
         ports",
    );
    // Different ports, or two specific addresses on one port, are fine.
    for bmp in ["[::]:11019", "127.0.0.2:9179", "[::1]:9179"] {
        expect_ok(&format!("[bmp]\nlisten = \"{bmp}\"\n{A_LOCATION}"));
    }
}

#[test]
fn an_empty_bmp_allowlist() {
    let text = format!("[bmp]\nallow = []\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "[]",
        "bmp.allow: an empty list admits no router; list the routers' networks (e.g. \
         [\"192.0.2.0/24\"]), or remove the key to admit any address",
    );
}

#[test]
fn a_state_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "state", "not a directory\n");
    let text = format!("state-dir = \"state\"\n{A_LOCATION}");
    let path = write(dir.path(), "routewatch.toml", &text);
    assert_config_error(
        &check_config(&path),
        &path,
        &text,
        1,
        "\"state\"",
        &format!(
            "state-dir: {} exists and is not a directory; give a directory (it is created if \
             missing)",
            file.display()
        ),
    );
    // A missing directory is fine (the daemon creates it).
    std::fs::remove_file(&file).unwrap();
    assert_eq!(check_config(&path).status.code(), Some(0));
}

#[test]
fn two_bmp_routers_with_one_name() {
    let text = format!(
        r#"[bmp]

[[bmp.router]]
address = "192.0.2.1"
name = "edge1"

[[bmp.router]]
address = "192.0.2.2"
name = "edge1"
{A_LOCATION}"#
    );
    expect_error(
        &text,
        9,
        "\"edge1\"",
        "bmp.router[1].name: 'edge1' is already the name of bmp.router[0] (192.0.2.1); each \
         router needs its own name",
    );
}

#[test]
fn two_bmp_routers_with_one_address() {
    let text = format!(
        r#"[bmp]

[[bmp.router]]
address = "192.0.2.1"
name = "edge1"

[[bmp.router]]
address = "192.0.2.1"
name = "edge2"
{A_LOCATION}"#
    );
    expect_error(
        &text,
        8,
        "\"192",
        "bmp.router[1].address: 192.0.2.1 is already named by bmp.router[0]; one name per router",
    );
}

#[test]
fn ipv4_mapped_ipv6_prefixes() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24", "::ffff:198.51.100.0/120"]
"#;
    expect_error(
        text,
        4,
        "\"::ffff",
        "location[0].prefixes: '::ffff:198.51.100.0/120' is an IPv4-mapped IPv6 prefix, which no \
         IPv4 route matches; write the IPv4 prefix 198.51.100.0/24 instead",
    );
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["::ffff:0:0/96"]
"#;
    expect_error(
        text,
        4,
        "\"::ffff",
        "location[0].prefixes: '::ffff:0:0/96' is an IPv4-mapped IPv6 prefix, which no IPv4 route \
         matches; it stands for all of IPv4: write the location's IPv4 prefixes",
    );
    // Next to the mapped range, not in it: fine.
    expect_ok(
        "[[location]]\nname = \"a\"\norigin-asns = [64500]\n\
         prefixes = [\"::fffe:0:0/96\", \"64:ff9b::/96\"]\n",
    );
}

#[test]
fn default_routes_as_registered_prefixes() {
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24", "0.0.0.0/0"]
"#;
    expect_error(
        text,
        4,
        "\"0.0.0.0/0",
        "location[0].prefixes: 0.0.0.0/0 is the default route: every IPv4 route on the Internet \
         would match it; register the location's own prefixes",
    );
    let text = r#"[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["2001:db8::/32"]

[[location]]
name = "b"
origin-asns = [64501]
prefixes = ["::/0"]
"#;
    expect_error(
        text,
        9,
        "\"::/0",
        "location[1].prefixes: ::/0 is the default route: every IPv6 route on the Internet would \
         match it; register the location's own prefixes",
    );
}

#[test]
fn bmp_max_sessions_below_the_configured_routers_and_keys_out_of_range() {
    let text = format!(
        "[bmp]\nmax-sessions = 1\n[[bmp.router]]\naddress = \"192.0.2.1\"\nname = \"a\"\n\
         [[bmp.router]]\naddress = \"192.0.2.2\"\nname = \"b\"\n{A_LOCATION}"
    );
    expect_error(
        &text,
        2,
        "1",
        "bmp.max-sessions: 1 is fewer than the 2 [[bmp.router]] entries; each configured router \
         has a reserved slot",
    );
    let text = format!("[bmp]\ninitiation-timeout-seconds = 0\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "0",
        "bmp.initiation-timeout-seconds: 0 is out of range 1..=3600",
    );
    let text = format!("[bmp]\nmax-sessions-per-address = 0\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "0",
        "bmp.max-sessions-per-address: 0 is out of range 1..=100000",
    );
}

#[test]
fn rtr_servers_and_timers_are_checked_with_their_position() {
    // A server without a port, named at its string.
    let text = format!("[rpki]\nrtr = [\"127.0.0.1:3323\", \"rpki.example.net\"]\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "\"rpki.example.net\"",
        "rpki.rtr: 'rpki.example.net' has no port: write host:port, e.g. 127.0.0.1:3323",
    );
    // An IPv6 address without brackets.
    let text = format!("[rpki]\nrtr = [\"::1:3323\"]\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "\"::1:3323\"",
        "rpki.rtr: '::1:3323': an IPv6 address needs brackets, [addr]:port",
    );
    // The same server twice, an empty list.
    let text = format!("[rpki]\nrtr = [\"[::1]:323\", \"[::1]:323\"]\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "\"[::1]:323\"]",
        "rpki.rtr: '[::1]:323' is listed twice",
    );
    let text = format!("[rpki]\nrtr = []\n{A_LOCATION}");
    expect_error(&text, 2, "[]", "rpki.rtr: an empty list");
    // Timers out of range, and a timer without any server.
    let text = format!("[rpki]\nrtr = [\"localhost:3323\"]\nrtr-expire-seconds = 0\n{A_LOCATION}");
    expect_error(
        &text,
        3,
        "0",
        "rpki.rtr-expire-seconds: 0 is out of range 1..=172800",
    );
    let text = format!("[rpki]\nrtr-connect-timeout-seconds = 5\n{A_LOCATION}");
    expect_error(
        &text,
        2,
        "5",
        "rpki.rtr-connect-timeout-seconds: only meaningful with rpki.rtr",
    );
    // Both sources, names and loopback: valid.
    expect_ok(&format!(
        "[rpki]\nvrp-file = \"vrps.json\"\nrtr = [\"127.0.0.1:3323\", \"[::1]:8282\", \"rpki.example.net:323\"]\nrtr-refresh-seconds = 60\n{A_LOCATION}"
    ));
}

#[test]
fn peer_roles_name_the_peer_and_the_bad_role() {
    let text = r#"[rpki.peer-roles]
"192.0.2.1" = "customer"
"AS64500" = "upstream"

[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24"]
"#;
    let out = expect_error(
        text,
        3,
        "\"upstream\"",
        "rpki.peer-roles.\"AS64500\": unknown role \"upstream\"; one of provider, rs, rs-client, customer, peer",
    );
    assert!(stderr(&out).contains("rs-client"));
    let text = r#"[rpki.peer-roles]
"edge1" = "peer"

[[location]]
name = "a"
origin-asns = [64500]
prefixes = ["192.0.2.0/24"]
"#;
    expect_error(
        text,
        2,
        "\"peer\"",
        "rpki.peer-roles.\"edge1\": \"edge1\" is neither a peer address nor an AS number",
    );
}

/// `[[kafka]]`: each mistake names the file, line, column and key.
#[test]
fn kafka_section_errors_name_the_key() {
    let loc =
        "\n[[location]]\nname = \"a\"\norigin-asns = [64500]\nprefixes = [\"192.0.2.0/24\"]\n";
    let cases: [(&str, usize, &str, &str); 7] = [
        (
            "[[kafka]]\nname = \"k\"\ntopics = [\"t\"]\n",
            2,
            "\"k\"",
            "kafka[0].brokers: required",
        ),
        (
            "[[kafka]]\nbrokers = [\"b:9092\"]\ntopics = [\"t\"]\ntopic-pattern = \"x.*\"\n",
            3,
            "[",
            "kafka[0].topics: give topics or topic-pattern, not both",
        ),
        (
            "[[kafka]]\nbrokers = [\"b\"]\ntopics = [\"t\"]\n",
            2,
            "\"b\"",
            "kafka[0].brokers: 'b' is not host:port",
        ),
        (
            "[[kafka]]\nbrokers = [\"b:9092\"]\ntopics = [\"t\"]\nstart = \"beginning\"\n",
            4,
            "\"beginning\"",
            "kafka[0].start: 'beginning' is not a start position",
        ),
        (
            "[[kafka]]\nbrokers = [\"b:9092\"]\ntopics = [\"t\"]\n[kafka.options]\n\"group.id\" = \"x\"\n",
            5,
            "\"x\"",
            "kafka[0].options.group.id: set by routewatch",
        ),
        (
            "[[kafka]]\nbrokers = [\"b:9092\"]\ntopics = [\"t\"]\n[kafka.options-from-files]\n\"sasl.password\" = \"/nonexistent/pw\"\n",
            5,
            "\"/nonexistent/pw\"",
            "kafka[0].options-from-files.sasl.password: /nonexistent/pw: cannot be read",
        ),
        (
            "[[kafka]]\nbrokers = [\"b:9092\"]\ntopics = [\"t\"]\n[[kafka]]\nbrokers = [\"b:9092\"]\ntopics = [\"t\"]\nname = \"kafka\"\n",
            7,
            "\"kafka\"",
            "kafka[1].name: 'kafka' is already the name of kafka[0]",
        ),
    ];
    for (text, line, at, rest) in cases {
        expect_error(&format!("{text}{loc}"), line, at, rest);
    }
    // A valid one, with a secret from a file.
    let dir = tempfile::tempdir().unwrap();
    let pw = write(dir.path(), "pw", "s3cret\n");
    let text = format!(
        "[[kafka]]\nbrokers = [\"b:9092\"]\ntopic-pattern = \"openbmp\\\\..*\"\n[kafka.options]\n\"security.protocol\" = \"SASL_SSL\"\n[kafka.options-from-files]\n\"sasl.password\" = \"{}\"\n{loc}",
        pw.display()
    );
    let path = write(dir.path(), "routewatch.toml", &text);
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let c = routewatch::config::Config::load(&path).unwrap();
    assert_eq!(
        c.kafka[0].topics,
        routewatch::config::KafkaTopics::Pattern("^openbmp\\..*".into())
    );
    assert_eq!(c.kafka[0].options["sasl.password"], "s3cret");
    assert_eq!(c.kafka[0].secret_options, ["sasl.password"]);
}
