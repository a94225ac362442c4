//! `nasforge report`: a run as one self-contained HTML page, or Markdown with SVG figures.

use super::{bad_input, Output};
use crate::report::page;
use crate::report::run::Run;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `nasforge report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The run directory.
    pub run: PathBuf,
    /// `html` (one file, opens offline) or `md` (report.md plus figures/*.svg).
    #[arg(long, default_value = "html")]
    pub format: String,
    /// Where to write it [default: RUN/report.html, or RUN/report.md].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub output: Output,
}

/// Runs `nasforge report`.
pub fn run(args: ReportArgs) -> Result<()> {
    if !matches!(args.format.as_str(), "html" | "md") {
        return bad_input(format!("--format `{}` is not `html` or `md`", args.format));
    }
    let run = Run::open(&args.run)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join(format!("report.{}", args.format)));
    let mut written = vec![out.clone()];
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if args.format == "html" {
        std::fs::write(&out, page::html(&run))
            .with_context(|| format!("cannot write {}", out.display()))?;
    } else {
        let (text, figures) = page::markdown(&run);
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.join("figures"))
            .unwrap_or_else(|| PathBuf::from("figures"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for f in figures {
            let p = dir.join(format!("{}.svg", f.id));
            std::fs::write(
                &p,
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", f.svg),
            )
            .with_context(|| format!("cannot write {}", p.display()))?;
            written.push(p);
        }
        std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": run.dir,
                "format": args.format,
                "out": out,
                "files": written,
                "trials": run.trials.len(),
            }))?
        );
    } else if !args.output.quiet {
        println!("wrote {}", out.display());
        if written.len() > 1 {
            println!(
                "  and {} figures in {}",
                written.len() - 1,
                written[1].parent().unwrap_or(&out).display()
            );
        }
    }
    Ok(())
}
