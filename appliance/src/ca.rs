//! `skerry ca`: being written.

#[derive(Debug, clap::Args)]
pub(crate) struct CaArgs {}

pub(crate) fn run(_args: CaArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("skerry ca is not built yet")
}
