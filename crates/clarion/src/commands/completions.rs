//! `clarion completions bash|zsh|fish|elvish|powershell`: a completion
//! script on stdout, generated from the same clap definitions as `--help`.

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the script to stdout. Needs no config and no database.
pub fn print(args: &Args) {
    let mut command = crate::Cli::command();
    clap_complete::generate(args.shell, &mut command, "clarion", &mut std::io::stdout());
}
