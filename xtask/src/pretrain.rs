//! `cargo xtask pretrain-toy-clip` (being written).

use anyhow::Result;

/// Arguments of `pretrain-toy-clip`.
#[derive(clap::Args)]
pub struct Args {}

/// Pretrains the toy CLIP.
pub fn run(_args: Args) -> Result<()> {
    anyhow::bail!("not written yet")
}
