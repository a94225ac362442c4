//! `nasforge init`: a commented configuration to start from.

use super::bad_input;
use super::config::init_template;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `nasforge init`.
#[derive(Args)]
pub struct InitArgs {
    /// Where to write the configuration.
    #[arg(long, default_value = "run.toml")]
    pub out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: super::Output,
}

/// Runs `nasforge init`.
pub fn run(args: InitArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        return bad_input(format!(
            "{} exists; pass --force to overwrite it",
            args.out.display()
        ));
    }
    std::fs::write(&args.out, init_template())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.output.json {
        println!("{}", serde_json::json!({ "out": args.out }));
        return Ok(());
    }
    if args.output.quiet {
        return Ok(());
    }
    eprintln!(
        "wrote {}; run it with `nasforge search --config {}`",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
