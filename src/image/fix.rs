//! The userland fix of the patch drill: a real package update of a library
//! in the image. First choice: a newer version of one of the image's
//! libraries that this host's apt knows (its security pocket or a point
//! release), downloaded with `apt-get download` together with the image's
//! other packages of the same source (they depend on each other's exact
//! version). Where none is newer, the image's own .deb of the library is
//! rebuilt with a bumped version (`<version>+versus1`, with a file saying
//! so), which dpkg installs as it would a real update. Cached in the
//! image's `fixes/` directory: a second drill downloads nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cmd;
use super::{ImageError, OsImage, Result};

/// Libraries tried first, in order (the ones every image has and every
/// advisory names); then every other `lib*` package of the image.
pub const PREFERRED: [&str; 6] = ["libc6", "libssl3", "zlib1g", "libgnutls30", "libsystemd0", "liblzma5"];

/// Where the fix's .deb files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A newer version from the host's apt sources (`apt-cache madison`'s line).
    Archive(String),
    /// The image's own package rebuilt with a bumped version.
    Rebuilt,
}

/// A package update to apply.
#[derive(Debug, Clone)]
pub struct UserlandFix {
    pub package: String,
    pub old_version: String,
    pub new_version: String,
    pub debs: Vec<PathBuf>,
    pub origin: Origin,
    /// Bytes of the .deb files.
    pub deb_bytes: u64,
}

impl UserlandFix {
    pub fn describe(&self) -> String {
        let from = match &self.origin {
            Origin::Archive(src) => format!("a newer version from {src}"),
            Origin::Rebuilt => "no newer version in this host's apt sources: the image's own package rebuilt with a bumped version".into(),
        };
        format!("{} {} -> {} ({from}; {} .deb file(s), {} bytes)", self.package, self.old_version, self.new_version, self.debs.len(), self.deb_bytes)
    }
}

/// `dpkg --compare-versions a gt b`.
pub fn newer(a: &str, b: &str) -> bool {
    Command::new("dpkg").args(["--compare-versions", a, "gt", b]).status().map(|s| s.success()).unwrap_or(false)
}

/// The versions apt knows for `pkg`: (version, source line).
fn madison(pkg: &str) -> Vec<(String, String)> {
    let Ok(out) = Command::new("apt-cache").args(["madison", pkg]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            (f.len() >= 3 && f[0] == pkg).then(|| (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

/// The userland fix for `img` (found, downloaded or rebuilt once, then cached).
pub fn userland_fix(img: &OsImage) -> Result<UserlandFix> {
    let dir = img.dir.join("fixes");
    if let Some(f) = load(&dir, img) {
        return Ok(f);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let staging = img.dir.join(format!(".fixes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| ImageError::io("creating the fix directory", e))?;
    let result = find_or_rebuild(img, &staging);
    let fix = match result {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let meta = format!(
        "{}\n{}\n{}\n{}\n",
        fix.package,
        fix.old_version,
        fix.new_version,
        match &fix.origin {
            Origin::Archive(s) => format!("archive {s}"),
            Origin::Rebuilt => "rebuilt".into(),
        }
    );
    std::fs::write(staging.join("fix.txt"), meta).map_err(|e| ImageError::io("writing fix.txt", e))?;
    std::fs::rename(&staging, &dir).map_err(|e| ImageError::io("moving the fix into the cache", e))?;
    load(&dir, img).ok_or_else(|| ImageError::Failed(format!("the fix in {} cannot be read back", dir.display())))
}

fn load(dir: &Path, img: &OsImage) -> Option<UserlandFix> {
    let t = std::fs::read_to_string(dir.join("fix.txt")).ok()?;
    let mut l = t.lines();
    let (package, old_version, new_version, origin) = (l.next()?.to_string(), l.next()?.to_string(), l.next()?.to_string(), l.next()?);
    if img.package(&package).map(|p| p.version.as_str()) != Some(old_version.as_str()) {
        return None;
    }
    let origin = match origin.strip_prefix("archive ") {
        Some(s) => Origin::Archive(s.to_string()),
        None => Origin::Rebuilt,
    };
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "deb")).collect();
    debs.sort();
    if debs.is_empty() {
        return None;
    }
    let deb_bytes = debs.iter().filter_map(|d| std::fs::metadata(d).ok()).map(|m| m.len()).sum();
    Some(UserlandFix { package, old_version, new_version, debs, origin, deb_bytes })
}

fn candidates(img: &OsImage) -> Vec<String> {
    let mut v: Vec<String> = PREFERRED.iter().filter(|p| img.package(p).is_some()).map(|p| p.to_string()).collect();
    let mut rest: Vec<&super::Package> = img.info.packages.iter().filter(|p| p.name.starts_with("lib") && !v.contains(&p.name)).collect();
    rest.sort_by_key(|p| p.installed_bytes);
    v.extend(rest.into_iter().map(|p| p.name.clone()));
    v
}

/// The image's packages built from `pkg`'s source.
fn same_source(img: &OsImage, pkg: &str) -> Vec<String> {
    let Ok(out) = Command::new("dpkg-query")
        .arg(format!("--admindir={}", img.rootfs().join("var/lib/dpkg").display()))
        .args(["-W", "-f=${Package}\t${source:Package}\t${db:Status-Abbrev}\n"])
        .output()
    else {
        return vec![pkg.to_string()];
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3 && f[2].starts_with("ii")).then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect();
    let Some(src) = rows.iter().find(|r| r.0 == pkg).map(|r| r.1.clone()) else { return vec![pkg.to_string()] };
    rows.into_iter().filter(|r| r.1 == src).map(|r| r.0).collect()
}

fn find_or_rebuild(img: &OsImage, dir: &Path) -> Result<UserlandFix> {
    for pkg in candidates(img) {
        let Some(installed) = img.package(&pkg) else { continue };
        let Some((ver, src)) = madison(&pkg).into_iter().filter(|(v, _)| newer(v, &installed.version)).max_by(|a, b| {
            if newer(&a.0, &b.0) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        }) else {
            continue;
        };
        // Its source-mates at the same new version, where apt has it.
        let mut names = Vec::new();
        for p in same_source(img, &pkg) {
            if madison(&p).iter().any(|(v, _)| *v == ver) {
                names.push(format!("{p}={ver}"));
            }
        }
        if names.is_empty() {
            names.push(format!("{pkg}={ver}"));
        }
        let apt = cmd::need("apt-get", "apt")?;
        // apt-get download as root drops to the _apt user.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
        let mut c = Command::new(apt);
        c.args(["download", "-q"]).args(&names).current_dir(dir);
        match cmd::run(c, Duration::from_secs(600)) {
            Ok(_) => {
                let debs: Vec<PathBuf> =
                    std::fs::read_dir(dir).map_err(|e| ImageError::io("reading the fix directory", e))?.flatten().map(|e| e.path()).collect();
                let deb_bytes = debs.iter().filter_map(|d| std::fs::metadata(d).ok()).map(|m| m.len()).sum();
                return Ok(UserlandFix {
                    package: pkg,
                    old_version: installed.version.clone(),
                    new_version: ver,
                    debs,
                    origin: Origin::Archive(src),
                    deb_bytes,
                });
            }
            Err(ImageError::Interrupted) => return Err(ImageError::Interrupted),
            Err(e) => {
                tracing::warn!("downloading {names:?} failed ({e}); trying the next library");
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    rebuild(img, dir)
}

/// The image's own .deb of the first candidate library, rebuilt as
/// `<version>+versus1`.
fn rebuild(img: &OsImage, dir: &Path) -> Result<UserlandFix> {
    let dpkg_deb = cmd::need("dpkg-deb", "dpkg")?;
    for pkg in candidates(img) {
        let Some(installed) = img.package(&pkg) else { continue };
        // debootstrap names them <name>_<version with : as %3a>_<arch>.deb.
        let prefix = format!("{pkg}_");
        let Some(orig) = std::fs::read_dir(img.debs())
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb")))
        else {
            continue;
        };
        let new_version = format!("{}+versus1", installed.version);
        let tree = dir.join("tree");
        let mut c = Command::new(&dpkg_deb);
        c.arg("-R").arg(&orig).arg(&tree);
        cmd::run(c, Duration::from_secs(300))?;
        let control = tree.join("DEBIAN/control");
        let text = std::fs::read_to_string(&control).map_err(|e| ImageError::io("reading the package's control file", e))?;
        let text: String = text.lines().map(|l| if l.starts_with("Version:") { format!("Version: {new_version}\n") } else { format!("{l}\n") }).collect();
        std::fs::write(&control, text).map_err(|e| ImageError::io("writing the package's control file", e))?;
        let doc = tree.join("usr/share/doc").join(&pkg);
        std::fs::create_dir_all(&doc).map_err(|e| ImageError::io("creating the package's doc dir", e))?;
        std::fs::write(
            doc.join("versus-rebuild.txt"),
            format!("{pkg} {} rebuilt by versus as {new_version}: no newer version was in the host's apt sources; the patch drill installs it as a package update.\n", installed.version),
        )
        .map_err(|e| ImageError::io("writing the rebuild note", e))?;
        let deb = dir.join(format!("{pkg}_{}_rebuilt.deb", new_version.replace(':', "%3a")));
        let mut c = Command::new(&dpkg_deb);
        c.args(["--root-owner-group", "-Zgzip", "-z1", "-b"]).arg(&tree).arg(&deb);
        cmd::run(c, Duration::from_secs(600))?;
        let _ = std::fs::remove_dir_all(&tree);
        let deb_bytes = std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
        return Ok(UserlandFix { package: pkg, old_version: installed.version.clone(), new_version, debs: vec![deb], origin: Origin::Rebuilt, deb_bytes });
    }
    Err(ImageError::Failed(format!("no library of the image has a newer version in apt, and none of its .deb files is in {} to rebuild", img.debs().display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_dpkg_does() {
        assert!(newer("2.36-9+deb12u10", "2.36-9+deb12u7"));
        assert!(newer("2.36-9+deb12u7+versus1", "2.36-9+deb12u7"));
        assert!(!newer("1:1.2", "2:0.1"));
    }
}
