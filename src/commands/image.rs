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
}

pub fn run(a: ImageArgs) -> anyhow::Result<ExitCode> {
    match a.command {
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
