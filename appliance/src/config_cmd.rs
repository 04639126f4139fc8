//! `skerry config check FILE` and `skerry config example`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use skerry_config::LoadError;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a configuration file without starting anything. Lists every
    /// problem with its key path and line:column; exits non-zero if there is any.
    Check {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Print the reference configuration: every key, documented, with its default.
    Example,
}

pub(crate) fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { file } => match skerry_config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ LoadError::Invalid(_)) => {
                eprintln!("{}: {e}", file.display());
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e.into()),
        },
        ConfigCommand::Example => {
            print!("{}", skerry_config::REFERENCE_YAML);
            Ok(ExitCode::SUCCESS)
        }
    }
}
