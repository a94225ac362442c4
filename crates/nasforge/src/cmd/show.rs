//! `nasforge show`: what an arch is, as a network.

use super::build_space;
use anyhow::Result;
use clap::Args;
use nasforge_core::space::{read_arch, SPACE_NAMES};

/// Arguments of `nasforge show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The arch: the space's text form (NAS-Bench-201 string, DARTS genotype, `name=value,...`),
    /// inline JSON, or a `.json` file.
    pub arch: String,
    /// The search space (default: the `space` field of a JSON arch, else nb201).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SPACE_NAMES))]
    pub space: Option<String>,
    /// A space size parameter `key=value` (repeatable), e.g. `channels=16` (default: the
    /// `space_params` of a JSON arch).
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    pub space_params: Vec<String>,
    /// Print one JSON object (`params`, `macs`, `op_counts`, ...).
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Print nothing: only check that the arch is valid (the exit code tells).
    #[arg(long, short = 'q', conflicts_with_all = ["json", "dot"])]
    pub quiet: bool,
    /// Print the network as Graphviz DOT.
    #[arg(long)]
    pub dot: bool,
}

/// Runs `nasforge show`.
pub fn run(args: ShowArgs) -> Result<()> {
    let space_name = match &args.space {
        Some(s) => s.clone(),
        None => super::json_space(&args.arch).unwrap_or_else(|| "nb201".to_string()),
    };
    // A JSON arch's own space parameters apply when it names this space and none are given.
    let mut space_params = args.space_params.clone();
    if space_params.is_empty() && super::json_space(&args.arch).as_deref() == Some(&space_name) {
        space_params = super::json_space_params(&args.arch);
    }
    let space = build_space(&space_name, &space_params)?;
    let arch = read_arch(space.as_ref(), &args.arch)?;
    let net = space.decode(&arch)?;
    if args.quiet {
        return Ok(());
    }
    if args.dot {
        print!("{}", net.to_dot());
        return Ok(());
    }
    if args.json {
        let doc = serde_json::json!({
            "space": space.name(),
            "space_params": space.params_json(),
            "arch": space.format(&arch),
            "choices": space.to_json(&arch)["choices"],
            "params": net.params(),
            "macs": net.macs(),
            "op_counts": net.op_counts(),
            "input_shape": net.input_shape(),
            "output_shape": net.output_shape(),
            "nodes": net.nodes().len(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("space       {} {}", space.name(), space.params_json());
    println!("arch        {}", space.format(&arch));
    println!(
        "parameters  {} ({:.2} M)",
        net.params(),
        net.params() as f64 / 1e6
    );
    println!(
        "MACs        {} ({:.2} M per sample)",
        net.macs(),
        net.macs() as f64 / 1e6
    );
    println!(
        "input       {:?} -> output {:?}",
        net.input_shape(),
        net.output_shape()
    );
    let counts: Vec<String> = net
        .op_counts()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("ops         {}", counts.join(", "));
    println!();
    print!("{}", net.to_text());
    Ok(())
}
