//! The Debian package: `cargo deb` (cargo-deb; `.ci/run` installs it) builds it with
//! `[profile.deb]` into a target directory of its own (under this test build's
//! `CARGO_TARGET_TMPDIR`, kept between runs so a rebuild is incremental), then the package is
//! read back with `dpkg-deb`:
//!
//! * the control file (version, maintainer with an e-mail, conffiles) and the maintainer scripts
//!   (deb-systemd-helper enable, start on install and restart on upgrade, stop on removal);
//! * every file with its mode and owner: the stripped binary, the configuration 0644, the unit,
//!   man pages, completions, the alert rules and their tests, the Grafana dashboard and
//!   provisioning, the runbook, examples and the gzipped changelog;
//! * the packaged binary has no debug sections and is far smaller than a debug build;
//! * the man pages and completions name every subcommand;
//! * the packaged binary's `check-config` accepts the packaged configuration as an unprivileged
//!   uid with no groups (what the unit's `DynamicUser=yes` gives it), as `ExecStartPre=` does;
//! * the packaged daemon starts as that unprivileged uid from the packaged configuration (with
//!   the state directory and a free port that systemd and the test give it) and becomes ready;
//! * `systemd-analyze verify` accepts the packaged unit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use support::repo;

/// The uid and gid `check-config` runs as (no such user: like a dynamic user, it owns nothing).
const UNPRIVILEGED: &str = "61234";

const SUBCOMMANDS: [&str; 6] = [
    "run",
    "replay",
    "check-config",
    "alert-rules",
    "registry",
    "notify",
];

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// The package, built once per test binary run.
fn package() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let have = Command::new(&cargo).args(["deb", "--version"]).output();
        assert!(
            have.as_ref().is_ok_and(|o| o.status.success()),
            "cargo-deb is needed: cargo install cargo-deb --locked ({have:?})"
        );
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out_dir = tmp.join("deb-out");
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).unwrap();
        let started = Instant::now();
        run(Command::new(&cargo)
            .args(["deb", "--locked", "--output"])
            .arg(&out_dir)
            .current_dir(repo(""))
            .env("CARGO_TARGET_DIR", tmp.join("deb-target"))
            // The profile is the package's own ([profile.deb]); nothing from the test build.
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"));
        eprintln!("cargo deb took {:.0?}", started.elapsed());
        let debs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        assert_eq!(debs.len(), 1, "{debs:?}");
        debs.into_iter().next().unwrap()
    })
}

/// The package extracted (`dpkg-deb -x`) into a directory everyone may traverse.
fn extracted() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("chmod").arg("0755").arg(dir.path()));
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(package())
            .arg(dir.path()));
        dir
    })
    .path()
}

/// `dpkg-deb -c`: path -> (mode string, owner/group, size).
fn contents() -> BTreeMap<String, (String, String, u64)> {
    stdout(Command::new("dpkg-deb").arg("-c").arg(package()))
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // -rw-r--r-- root/root      1234 2024-01-01 00:00 ./etc/routewatch/routewatch.toml
            assert!(f.len() >= 6, "{line}");
            let path = f[5].trim_start_matches('.').to_string();
            (
                path,
                (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap()),
            )
        })
        .collect()
}

/// `dpkg-deb -c` shows root as `root/root` or `0/0`.
fn is_root(owner: &str) -> bool {
    owner == "root/root" || owner == "0/0"
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

/// Section names of an ELF64 little-endian file.
fn elf_sections(bytes: &[u8]) -> Vec<String> {
    assert_eq!(&bytes[..4], b"\x7fELF", "an ELF file");
    assert_eq!(bytes[4], 2, "ELF64");
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(|i| {
            let name = strtab + u32_at(header(i));
            let end = name + bytes[name..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8_lossy(&bytes[name..end]).into_owned()
        })
        .collect()
}

#[test]
fn control_file_and_maintainer_scripts() {
    let info = stdout(Command::new("dpkg-deb").arg("-I").arg(package()));
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
            .to_string()
    };
    assert_eq!(field("Package"), "routewatch");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field("Section"), "net");
    let maintainer = field("Maintainer");
    let email = maintainer
        .split_once('<')
        .and_then(|(_, rest)| rest.strip_suffix('>'))
        .unwrap_or_else(|| panic!("Maintainer {maintainer:?} has no <e-mail>"));
    assert!(email.contains('@') && email.contains('.'), "{maintainer}");
    assert!(field("Depends").contains("libc6"), "{info}");

    let control = |name: &str| {
        stdout(
            Command::new("dpkg-deb")
                .args(["--info"])
                .arg(package())
                .arg(name),
        )
    };
    assert_eq!(
        control("conffiles").trim(),
        "/etc/routewatch/routewatch.toml"
    );
    let postinst = control("postinst");
    for want in [
        "deb-systemd-helper enable routewatch.service",
        "deb-systemd-helper unmask routewatch.service",
        "systemctl --system daemon-reload",
        // start on install, restart on upgrade
        "_dh_action=restart",
        "_dh_action=start",
        "deb-systemd-invoke $_dh_action routewatch.service",
    ] {
        assert!(
            postinst.contains(want),
            "postinst lacks {want:?}:\n{postinst}"
        );
    }
    let prerm = control("prerm");
    assert!(
        prerm.contains("deb-systemd-invoke stop routewatch.service"),
        "{prerm}"
    );
    let postrm = control("postrm");
    for want in [
        "deb-systemd-helper mask routewatch.service",
        "deb-systemd-helper purge routewatch.service",
    ] {
        assert!(postrm.contains(want), "postrm lacks {want:?}:\n{postrm}");
    }
}

#[test]
fn files_with_their_modes() {
    let files = contents();
    let listing = || {
        files
            .iter()
            .map(|(p, (m, o, s))| format!("{m} {o} {s} {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expect = [
        ("/usr/bin/routewatch", "-rwxr-xr-x"),
        ("/etc/routewatch/routewatch.toml", "-rw-r--r--"),
        ("/usr/lib/systemd/system/routewatch.service", "-rw-r--r--"),
        ("/usr/share/man/man1/routewatch.1.gz", "-rw-r--r--"),
        (
            "/usr/share/man/man1/routewatch-check-config.1.gz",
            "-rw-r--r--",
        ),
        (
            "/usr/share/man/man1/routewatch-alert-rules.1.gz",
            "-rw-r--r--",
        ),
        (
            "/usr/share/bash-completion/completions/routewatch",
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_routewatch",
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/routewatch.fish",
            "-rw-r--r--",
        ),
        (
            "/usr/share/routewatch/prometheus/routewatch-alerts.yml",
            "-rw-r--r--",
        ),
        (
            "/usr/share/routewatch/prometheus/routewatch-alerts.test.yml",
            "-rw-r--r--",
        ),
        (
            "/usr/share/routewatch/grafana/routewatch.json",
            "-rw-r--r--",
        ),
        (
            "/usr/share/routewatch/grafana/provisioning/dashboards.yml",
            "-rw-r--r--",
        ),
        (
            "/usr/share/routewatch/grafana/provisioning/datasources.yml",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/routewatch/README.md", "-rw-r--r--"),
        ("/usr/share/doc/routewatch/RUNBOOK.md", "-rw-r--r--"),
        ("/usr/share/doc/routewatch/changelog.gz", "-rw-r--r--"),
        ("/usr/share/doc/routewatch/copyright", "-rw-r--r--"),
        ("/usr/share/doc/routewatch/examples/demo.toml", "-rw-r--r--"),
        (
            "/usr/share/doc/routewatch/examples/routewatch.toml",
            "-rw-r--r--",
        ),
    ];
    for (path, mode) in expect {
        let (m, owner, size) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{}", listing()));
        assert_eq!(m, mode, "{path}");
        assert!(is_root(owner), "{path}: {owner}");
        assert!(*size > 0, "{path} is empty");
    }
    // Everything is root's; nothing is writable by others or setuid; directories 0755.
    for (path, (mode, owner, _)) in &files {
        assert!(is_root(owner), "{path}: {owner}");
        assert!(
            !mode.contains('s') && mode.as_bytes()[8] != b'w',
            "{path} {mode}"
        );
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{path}");
        }
    }

    // The packaged files are the repository's.
    let root = extracted();
    for (packaged, source) in [
        ("etc/routewatch/routewatch.toml", "config/routewatch.toml"),
        (
            "usr/lib/systemd/system/routewatch.service",
            "systemd/routewatch.service",
        ),
        (
            "usr/share/routewatch/prometheus/routewatch-alerts.yml",
            "config/prometheus/routewatch-alerts.yml",
        ),
        (
            "usr/share/routewatch/grafana/routewatch.json",
            "config/grafana/routewatch.json",
        ),
        ("usr/share/doc/routewatch/RUNBOOK.md", "docs/RUNBOOK.md"),
    ] {
        assert_eq!(
            std::fs::read(root.join(packaged)).unwrap(),
            std::fs::read(repo(source)).unwrap(),
            "{packaged}"
        );
    }
    // The changelog, gzipped, in debian/changelog format, for this version.
    let changelog = gunzip(&root.join("usr/share/doc/routewatch/changelog.gz"));
    assert_eq!(
        changelog,
        std::fs::read_to_string(repo("debian/changelog")).unwrap()
    );
    assert!(
        changelog.starts_with(&format!("routewatch ({}) ", env!("CARGO_PKG_VERSION"))),
        "{changelog}"
    );
}

#[test]
fn the_binary_is_stripped_and_small() {
    let packaged = std::fs::read(extracted().join("usr/bin/routewatch")).unwrap();
    let sections = elf_sections(&packaged);
    assert!(sections.iter().any(|s| s == ".text"), "{sections:?}");
    for debug in [".debug_info", ".debug_line", ".symtab"] {
        assert!(
            !sections.iter().any(|s| s == debug),
            "{debug} in {sections:?}"
        );
    }
    // The test build's binary (debug info) for scale: the packaged one is a fraction of it.
    let debug_build = std::fs::metadata(env!("CARGO_BIN_EXE_routewatch"))
        .unwrap()
        .len();
    let size = packaged.len() as u64;
    eprintln!("packaged binary {size} bytes, test build {debug_build} bytes");
    assert!(size < 30_000_000, "{size} bytes");
    assert!(size * 3 < debug_build, "{size} vs {debug_build}");

    // It runs, and names its commit.
    let version = stdout(Command::new(extracted().join("usr/bin/routewatch")).arg("--version"));
    assert!(
        version.starts_with(&format!(
            "routewatch {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
}

#[test]
fn man_pages_and_completions_cover_every_subcommand() {
    let root = extracted();
    // roff escapes the hyphens ("check\-config").
    let man = gunzip(&root.join("usr/share/man/man1/routewatch.1.gz")).replace("\\-", "-");
    assert!(man.contains(".TH routewatch 1"), "{man}");
    for sub in SUBCOMMANDS {
        assert!(man.contains(sub), "routewatch.1 lacks {sub}:\n{man}");
        let page = root.join(format!("usr/share/man/man1/routewatch-{sub}.1.gz"));
        let text = gunzip(&page);
        assert!(text.contains(".SH NAME"), "{}", page.display());
    }
    let alert_rules = gunzip(&root.join("usr/share/man/man1/routewatch-alert-rules.1.gz"));
    assert!(
        alert_rules.contains("runbook\\-base\\-url"),
        "{alert_rules}"
    );
    for file in [
        "usr/share/bash-completion/completions/routewatch",
        "usr/share/zsh/vendor-completions/_routewatch",
        "usr/share/fish/vendor_completions.d/routewatch.fish",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for word in SUBCOMMANDS
            .iter()
            .chain(&["--runbook-base-url", "prefilter"])
        {
            let word = if file.ends_with(".fish") {
                word.trim_start_matches("--")
            } else {
                word
            };
            assert!(text.contains(word), "{file} lacks {word}");
        }
    }
}

#[test]
fn packaged_check_config_accepts_the_packaged_configuration_as_an_unprivileged_user() {
    let root = extracted();
    let binary = root.join("usr/bin/routewatch");
    let config = root.join("etc/routewatch/routewatch.toml");
    let mut cmd = as_unprivileged(&binary);
    // The unit's ExecStartPre=, with the package's paths under the extraction directory.
    let out = cmd
        .args(["check-config", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text,
        format!(
            "{}: OK: 1 locations, 1 prefixes (1 IPv4, 0 IPv6)\n",
            config.display()
        )
    );
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/routewatch.service")).unwrap();
    assert!(
        unit.contains(
            "\nExecStartPre=/usr/bin/routewatch check-config -c /etc/routewatch/routewatch.toml\n"
        ),
        "{unit}"
    );
    assert!(unit.contains("\nDynamicUser=yes\n"), "{unit}");
}

/// `command` as the unit's `DynamicUser=yes` runs it when this test runs as root: a uid and gid
/// of their own, no groups.
fn as_unprivileged(program: &Path) -> Command {
    if stdout(Command::new("id").arg("-u")).trim() == "0" {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={UNPRIVILEGED}"),
            &format!("--regid={UNPRIVILEGED}"),
            "--clear-groups",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

#[test]
fn the_packaged_daemon_starts_as_an_unprivileged_user_and_becomes_ready() {
    use support::daemon::{free_port, http_get, poll};
    let root = extracted();
    let packaged = std::fs::read_to_string(root.join("etc/routewatch/routewatch.toml")).unwrap();
    // What systemd gives the unit instead of the packaged paths: StateDirectory= (a directory
    // the service user owns); and a free port instead of 9179 (a test takes no fixed port).
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("chmod").arg("0755").arg(dir.path()));
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    if stdout(Command::new("id").arg("-u")).trim() == "0" {
        run(Command::new("chown")
            .arg(format!("{UNPRIVILEGED}:{UNPRIVILEGED}"))
            .arg(&state));
    }
    let port = free_port();
    let (state_line, listen_line) = (
        "state-dir = \"/var/lib/routewatch\"\n",
        "listen = \"127.0.0.1:9179\"\n",
    );
    assert!(packaged.contains(state_line) && packaged.contains(listen_line));
    let text = packaged
        .replacen(
            state_line,
            &format!("state-dir = \"{}\"\n", state.display()),
            1,
        )
        .replacen(listen_line, &format!("listen = \"127.0.0.1:{port}\"\n"), 1);
    let config = dir.path().join("routewatch.toml");
    std::fs::write(&config, text).unwrap();
    run(Command::new("chmod").arg("0644").arg(&config));

    let log = dir.path().join("routewatch.log");
    let mut daemon = support::process::ChildGuard::start(
        "packaged routewatch",
        as_unprivileged(&root.join("usr/bin/routewatch"))
            .arg("run")
            .arg("-c")
            .arg(&config),
        Some(&log),
        "the package is built by this test",
    );
    poll(
        "the packaged daemon ready",
        std::time::Duration::from_secs(60),
        || match http_get(port, "/ready") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("/ready {}", r.status)),
            Err(e) => Err(e.to_string()),
        },
    );
    let metrics = http_get(port, "/metrics").unwrap().text();
    assert!(
        metrics.contains("routewatch_registered_prefixes{afi=\"ipv4\"} 1"),
        "{metrics}"
    );
    // The event store is in the state directory the service user owns.
    assert!(state.join("events.sqlite").exists());
    daemon.signal("TERM");
    let status = daemon
        .wait_exit(std::time::Duration::from_secs(20))
        .expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", daemon.log());
}

#[test]
fn packaged_unit_verifies() {
    let root = extracted();
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/routewatch.service"))
        .unwrap()
        .replace(
            "/usr/bin/routewatch",
            root.join("usr/bin/routewatch").to_str().unwrap(),
        );
    let copy = dir.path().join("routewatch.service");
    std::fs::write(&copy, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("routewatch.service"))
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{stderr}");
}
