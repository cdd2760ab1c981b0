//! `versus image build NAME`: build a real OS image (debootstrap minbase of
//! Debian stable from this host's apt mirror) into the cache, or say that
//! it is cached already.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use versus::image::{self, Built, ImageSpec};

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build an image (`debian`, or `debian-systemd` with systemd as init)
    /// into ~/.cache/versus/images/ (once; then cached) and print what it holds.
    Build {
        /// The image: debian or debian-systemd.
        name: String,
    },
    /// Write the image (built or cached) as a raw ext4 disk with the
    /// workload program as /versus-init: what vm-linux boots
    /// (`versus launch vm-linux -w image-check --root-disk PATH`).
    Disk {
        /// The image: debian or debian-systemd.
        name: String,
        /// The disk file to write (replaced).
        out: std::path::PathBuf,
    },
}

pub fn run(a: ImageArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        ImageCommand::Disk { name, out } => {
            let spec = ImageSpec::named(&name)?;
            let (img, _) = image::build(&spec).with_context(|| format!("building the `{name}` image"))?;
            let init = versus::workload::EmbeddedProgram::guest().context("writing the workload program")?;
            let size = versus::experiment::footprint::size_of(&img.rootfs()).with_context(|| format!("measuring {}", img.rootfs().display()))?;
            image::disk::make_disk(&img.rootfs(), Some(&init.path()), &out, image::disk::disk_size_for(size.apparent))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{name}: disk {} ({} bytes, ext4, /versus-init)", out.display(), std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0));
            println!("  image digest: {}", versus::workload::image_digest(&img.rootfs()));
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Build { name } => {
            let spec = ImageSpec::named(&name)?;
            let (img, built) = image::build(&spec).with_context(|| format!("building the `{name}` image"))?;
            let size = versus::experiment::footprint::size_of(&img.rootfs()).with_context(|| format!("measuring {}", img.rootfs().display()))?;
            match built {
                Built::Cached => println!("{name}: cached in {} (nothing downloaded)", img.dir.display()),
                Built::Fresh { secs } => println!("{name}: built in {secs:.1} s into {}", img.dir.display()),
            }
            println!(
                "  debootstrap --variant=minbase{} {} from {}",
                if img.info.include.is_empty() { String::new() } else { format!(" --include={}", img.info.include.join(",")) },
                img.info.suite,
                img.info.mirror
            );
            println!("  packages: {} ({} bytes installed, by dpkg)", img.info.packages.len(), img.package_bytes());
            println!("  rootfs: {} bytes allocated, {} bytes apparent", size.allocated, size.apparent);
            println!("  digest: sha256:{}", img.info.digest);
            Ok(ExitCode::SUCCESS)
        }
    }
}
