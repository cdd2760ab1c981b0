//! Real OS images (differences 2 and 5 on the image people deploy): a
//! Debian tree built with `debootstrap --variant=minbase` from the apt
//! mirror this host already uses, cached under `~/.cache/versus/images/`
//! with its package list (the image's own dpkg database: name, version,
//! installed size) and its content digest. The default run keeps versus'
//! minimal rootfs; `versus image build debian` and `versus run --image
//! debian` use this one.
//!
//! | file | job |
//! |---|---|
//! | this file | the cache, the build, the package list, the mirror |
//! | [`cmd`] | running the host tools, with the bytes each wrote |
//! | [`digest`] | content digests of trees and files |
//! | [`disk`] | the image as a VM disk (ext4, no loop mount), and patching a disk or a tree with dpkg |
//! | [`fix`] | the two fixes of the patch drill: a newer (or rebuilt) library package, a second kernel |

pub mod cmd;
pub mod digest;
pub mod disk;
pub mod fix;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How building or using an image failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("`{tool}` not found: install it with `apt-get install {package}`")]
    Missing { tool: String, package: String },
    #[error("`{line}` failed: {why}")]
    Command { line: String, why: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("unknown image `{0}`: the images are `debian` (debootstrap minbase of Debian stable) and `debian-systemd` (the same with systemd as init)")]
    Unknown(String),
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
}

impl ImageError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ImageError {
        ImageError::Io { context: context.into(), source }
    }
}

/// Shorthand.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// An image versus can build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// `debian` or `debian-systemd`.
    pub name: String,
    /// Packages added to minbase (`--include`).
    pub include: Vec<String>,
}

impl ImageSpec {
    /// The image called `name`.
    pub fn named(name: &str) -> Result<ImageSpec> {
        match name {
            "debian" => Ok(ImageSpec { name: name.into(), include: Vec::new() }),
            // What booting the image's own init needs.
            "debian-systemd" => Ok(ImageSpec { name: name.into(), include: vec!["systemd-sysv".into()] }),
            other => Err(ImageError::Unknown(other.into())),
        }
    }
}

/// One installed package of an image (its dpkg database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// dpkg's Installed-Size, in bytes (it counts KiB).
    pub installed_bytes: u64,
}

/// What image.json of a cached image says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    pub suite: String,
    pub variant: String,
    pub include: Vec<String>,
    pub mirror: String,
    /// Content digest of rootfs/ ([`digest::tree`]).
    pub digest: String,
    pub built_at_unix: u64,
    pub build_secs: f64,
    pub packages: Vec<Package>,
}

/// A built image in the cache.
#[derive(Debug, Clone)]
pub struct OsImage {
    pub dir: PathBuf,
    pub info: ImageInfo,
}

impl OsImage {
    /// The image's root tree (read only: every user copies or layers it).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The .deb files debootstrap installed the image from.
    pub fn debs(&self) -> PathBuf {
        self.dir.join("debs")
    }
    /// Sum of the packages' installed sizes.
    pub fn package_bytes(&self) -> u64 {
        self.info.packages.iter().map(|p| p.installed_bytes).sum()
    }
    /// The installed package `name`.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.info.packages.iter().find(|p| p.name == name)
    }
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Built {
    /// Found in the cache: nothing downloaded.
    Cached,
    /// Built now, in this many seconds.
    Fresh { secs: f64 },
}

/// `$VERSUS_IMAGE_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/versus/images`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VERSUS_IMAGE_CACHE") {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache"));
    base.join("versus").join("images")
}

/// The mirror and suite to debootstrap from: `$VERSUS_DEBIAN_MIRROR` (and
/// `$VERSUS_DEBIAN_SUITE`), else the first Debian source of this host's apt
/// configuration whose suite has no pocket (`bookworm`, not
/// `bookworm-security`).
pub fn mirror() -> Result<(String, String)> {
    let env_suite = std::env::var("VERSUS_DEBIAN_SUITE").ok();
    if let Ok(m) = std::env::var("VERSUS_DEBIAN_MIRROR") {
        return Ok((m, env_suite.unwrap_or_else(|| "bookworm".into())));
    }
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push((false, t));
    }
    if let Ok(d) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let deb822 = f.extension().is_some_and(|e| e == "sources");
            if let Ok(t) = std::fs::read_to_string(&f) {
                texts.push((deb822, t));
            }
        }
    }
    for (deb822, t) in &texts {
        if let Some((m, s)) = parse_sources(t, *deb822) {
            return Ok((m, env_suite.unwrap_or(s)));
        }
    }
    Err(ImageError::Failed(
        "no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d: set VERSUS_DEBIAN_MIRROR (e.g. http://deb.debian.org/debian) and VERSUS_DEBIAN_SUITE".into(),
    ))
}

/// The first `deb` source with a pocket-less suite: (URI, suite).
pub fn parse_sources(text: &str, deb822: bool) -> Option<(String, String)> {
    let plain = |s: &str| !s.contains('-') && !s.contains('/');
    if deb822 {
        for stanza in text.split("\n\n") {
            let field = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
            let types = field("Types:").unwrap_or_default();
            if !types.split_whitespace().any(|t| t == "deb") {
                continue;
            }
            let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else { continue };
            let Some(uri) = uris.split_whitespace().next() else { continue };
            if let Some(s) = suites.split_whitespace().find(|s| plain(s)) {
                return Some((uri.to_string(), s.to_string()));
            }
        }
        None
    } else {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace().filter(|w| !w.starts_with('['));
            if w.next()? != "deb" {
                return None;
            }
            let (uri, suite) = (w.next()?, w.next()?);
            plain(suite).then(|| (uri.to_string(), suite.to_string()))
        })
    }
}

/// The image `spec` from the cache, if it was built.
pub fn cached(spec: &ImageSpec) -> Option<OsImage> {
    let dir = cache_dir().join(&spec.name);
    if !dir.join(".complete").exists() {
        return None;
    }
    let info: ImageInfo = serde_json::from_str(&std::fs::read_to_string(dir.join("image.json")).ok()?).ok()?;
    Some(OsImage { dir, info })
}

/// An exclusive lock on the cache, so that two versus processes (or two
/// tests) never build the same image at once. Released on drop.
struct CacheLock(std::fs::File);

impl CacheLock {
    fn take() -> Result<CacheLock> {
        let dir = cache_dir();
        std::fs::create_dir_all(&dir).map_err(|e| ImageError::io(format!("creating the image cache {}", dir.display()), e))?;
        let f = std::fs::File::create(dir.join(".lock")).map_err(|e| ImageError::io("opening the image cache's lock file", e))?;
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on our own open fd.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(CacheLock(f));
            }
            if crate::interrupt::requested() {
                return Err(ImageError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocks our own fd.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Removes a half-built image directory unless disarmed.
struct Staging(Option<PathBuf>);
impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The image `spec`, built once and then taken from the cache (a second
/// call downloads nothing).
pub fn build(spec: &ImageSpec) -> Result<(OsImage, Built)> {
    if let Some(img) = cached(spec) {
        return Ok((img, Built::Cached));
    }
    let _lock = CacheLock::take()?;
    // Built by another process while we waited?
    if let Some(img) = cached(spec) {
        return Ok((img, Built::Cached));
    }
    let debootstrap = cmd::need("debootstrap", "debootstrap")?;
    cmd::need("dpkg-query", "dpkg")?;
    let (mirror, suite) = mirror()?;
    let t0 = Instant::now();
    let final_dir = cache_dir().join(&spec.name);
    let staging = cache_dir().join(format!(".{}.building-{}", spec.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| ImageError::io(format!("creating {}", staging.display()), e))?;
    let guard = Staging(Some(staging.clone()));
    let root = staging.join("rootfs");
    let mut c = Command::new(debootstrap);
    c.arg("--variant=minbase");
    if !spec.include.is_empty() {
        c.arg(format!("--include={}", spec.include.join(",")));
    }
    c.arg(&suite).arg(&root).arg(&mirror);
    cmd::run(c, Duration::from_secs(1800)).map_err(|e| match e {
        ImageError::Command { line, why } => ImageError::Command {
            line,
            why: format!("{why} (is the mirror {mirror} reachable? set VERSUS_DEBIAN_MIRROR to another one; the default run does not need this image)"),
        },
        other => other,
    })?;
    // The downloaded packages move out of the image (a deployed image has
    // none) into debs/, where the patch drill finds the image's own .debs.
    let archives = root.join("var/cache/apt/archives");
    let debs = staging.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| ImageError::io("creating debs/", e))?;
    for e in std::fs::read_dir(&archives).map_err(|e| ImageError::io(format!("reading {}", archives.display()), e))?.flatten() {
        if e.path().extension().is_some_and(|x| x == "deb") {
            std::fs::rename(e.path(), debs.join(e.file_name())).map_err(|x| ImageError::io("moving a .deb out of the image", x))?;
        }
    }
    let packages = packages_of(&root)?;
    let digest = digest::tree(&root).map_err(|e| ImageError::io(format!("digesting {}", root.display()), e))?;
    let info = ImageInfo {
        name: spec.name.clone(),
        suite,
        variant: "minbase".into(),
        include: spec.include.clone(),
        mirror,
        digest,
        built_at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        build_secs: t0.elapsed().as_secs_f64(),
        packages,
    };
    let json = serde_json::to_string_pretty(&info).map_err(|e| ImageError::Failed(format!("writing image.json: {e}")))?;
    std::fs::write(staging.join("image.json"), json).map_err(|e| ImageError::io("writing image.json", e))?;
    let list: String = info.packages.iter().map(|p| format!("{}\t{}\t{}\n", p.name, p.version, p.installed_bytes)).collect();
    std::fs::write(staging.join("packages.tsv"), list).map_err(|e| ImageError::io("writing packages.tsv", e))?;
    std::fs::write(staging.join(".complete"), b"").map_err(|e| ImageError::io("marking the image complete", e))?;
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&staging, &final_dir).map_err(|e| ImageError::io(format!("moving the image to {}", final_dir.display()), e))?;
    drop(guard);
    let secs = t0.elapsed().as_secs_f64();
    Ok((OsImage { dir: final_dir, info }, Built::Fresh { secs }))
}

/// The packages of the dpkg database under `root`.
pub fn packages_of(root: &Path) -> Result<Vec<Package>> {
    let mut c = Command::new(cmd::need("dpkg-query", "dpkg")?);
    c.arg(format!("--admindir={}", root.join("var/lib/dpkg").display())).arg("-W").arg("-f=${Package}\t${Version}\t${Installed-Size}\t${db:Status-Abbrev}\n");
    let r = cmd::run(c, Duration::from_secs(60))?;
    Ok(parse_packages(&r.stdout))
}

/// Parses `dpkg-query -W` lines (name, version, installed KiB, status):
/// installed packages only.
pub fn parse_packages(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [name, version, kib, status] = f.as_slice() else { return None };
            status.starts_with("ii").then(|| Package {
                name: name.to_string(),
                version: version.to_string(),
                installed_bytes: kib.trim().parse::<u64>().unwrap_or(0) * 1024,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_read_from_both_formats() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(parse_sources(deb822, true), Some(("http://deb.debian.org/debian".into(), "bookworm".into())));
        let sec_only = "Types: deb\nURIs: http://x/debian-security\nSuites: bookworm-security\n";
        assert_eq!(parse_sources(sec_only, true), None);
        let list = "# comment\ndeb-src http://a/debian bookworm main\ndeb [arch=amd64] http://m/debian trixie main\n";
        assert_eq!(parse_sources(list, false), Some(("http://m/debian".into(), "trixie".into())));
    }

    #[test]
    fn package_lists_keep_installed_packages() {
        let p = parse_packages("libc6\t2.36-9+deb12u10\t12985\tii \nfoo\t1\t3\trc \n");
        assert_eq!(p, vec![Package { name: "libc6".into(), version: "2.36-9+deb12u10".into(), installed_bytes: 12985 * 1024 }]);
    }

    #[test]
    fn unknown_images_say_which_exist() {
        assert!(ImageSpec::named("alpine").unwrap_err().to_string().contains("`debian`"));
        assert_eq!(ImageSpec::named("debian-systemd").unwrap().include, vec!["systemd-sysv"]);
    }
}
