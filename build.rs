//! Build script: what `routewatch --version` and `routewatch_build_info` say about this build
//! (the git commit, the build date, the rustc version, as `ROUTEWATCH_*` environment variables
//! for `src/build_info.rs`), and the man pages (gzipped) and bash / zsh / fish completions,
//! generated from the same clap definitions as the binary (`src/cli/args.rs`).
//!
//! The generated files are written to `$OUT_DIR/generated/` and copied to `generated/` next to
//! the binary (`target/<profile>/generated/`), where the Debian package's assets name them.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::CommandFactory;
use clap_complete::Shell;

// The CLI definitions, compiled here as well: they name nothing of the crate but `Decoder` and
// `VERSION`, which they take from this (their parent) module.
#[path = "src/ingest/mrt/decoder.rs"]
mod decoder;

#[allow(dead_code)] // only the clap metadata is used here
#[path = "src/cli/args.rs"]
mod args;

use decoder::Decoder;

/// The version in the generated man pages.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=src/ingest/mrt/decoder.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?);
    let revision = git_revision(&manifest_dir).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ROUTEWATCH_GIT_REVISION={revision}");
    println!("cargo:rustc-env=ROUTEWATCH_BUILD_DATE={}", build_date()?);
    println!(
        "cargo:rustc-env=ROUTEWATCH_RUSTC_VERSION={}",
        rustc_version()
    );

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("no OUT_DIR")?);
    let generated = out_dir.join("generated");
    generate(&generated)?;
    // OUT_DIR is <target>/<profile>/build/routewatch-<hash>/out.
    let in_build_dir =
        out_dir.ancestors().nth(2).and_then(Path::file_name) == Some("build".as_ref());
    match out_dir.ancestors().nth(3) {
        Some(profile_dir) if in_build_dir => copy_dir(&generated, &profile_dir.join("generated"))?,
        _ => println!(
            "cargo:warning=OUT_DIR {} is not <target>/<profile>/build/<package>/out: \
             the man pages and completions are only there",
            out_dir.display()
        ),
    }
    Ok(())
}

/// Man pages (`routewatch.1.gz`, `routewatch-<command>.1.gz`) in `dir/man/`, completions in
/// `dir/`.
fn generate(dir: &Path) -> Result<(), Box<dyn Error>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(args::Cli::command(), &man)?;
    // Gzipped as Debian policy wants (-9, no name or time stamp: reproducible).
    for entry in std::fs::read_dir(&man)? {
        let page = entry?.path();
        let mut gz = flate2::GzBuilder::new().write(
            std::fs::File::create(page.with_extension("1.gz"))?,
            flate2::Compression::best(),
        );
        std::io::Write::write_all(&mut gz, &std::fs::read(&page)?)?;
        gz.finish()?;
        std::fs::remove_file(&page)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut args::Cli::command(), "routewatch", dir)?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Box<dyn Error>> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// `git rev-parse --short=12 HEAD` in a git checkout (and reruns when HEAD moves), else `None`.
fn git_revision(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rerun on a commit or a checkout: HEAD, the branch's ref (or its directory when the ref is
    // packed, where a commit writes it), packed-refs. Only paths that exist: cargo reruns the
    // script on every build for a path that does not.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watch.into_iter().flatten() {
        let mut path = dir.join(path);
        while !path.exists() {
            match path.parent() {
                Some(parent) => path = parent.to_path_buf(),
                None => break,
            }
        }
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(revision)
}

/// YYYY-MM-DD (UTC) of `SOURCE_DATE_EPOCH` when set, else of now.
fn build_date() -> Result<String, Box<dyn Error>> {
    let secs: i64 = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds: {e}"))?,
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64,
    };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `$RUSTC --version` (cargo sets RUSTC for build scripts), or `unknown`.
fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
