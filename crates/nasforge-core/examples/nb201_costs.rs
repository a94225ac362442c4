//! Writes the NetSpec cost of every NAS-Bench-201 cell in the built-in table as CSV
//! (`arch,params,macs`, one row per table row, in table order), for peers and plots that need
//! the cost objective of a multi-objective search without decoding archs themselves.
//!
//! ```text
//! cargo run -p nasforge-core --example nb201_costs -- /tmp/nb201_costs.csv
//! ```
//!
//! With no argument the CSV goes to stdout. `arch` is the NB201 string the table uses, `params`
//! the parameter count and `macs` the multiply-accumulates of one 32x32x3 image, both from
//! NetSpec's cost model for the space's published sizes (C = 16, N = 5, 10 classes).

use nasforge_core::space::{Nb201Space, Space};
use nasforge_core::tabular::Table;
use std::io::Write;

fn main() {
    if let Err(e) = run() {
        // A reader that stops early (`| head`) is not a failure.
        let closed = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
        if !closed {
            eprintln!("nb201_costs: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1);
    let space = Nb201Space::new();
    let table = Table::builtin(&space)?;
    let mut out: Box<dyn Write> = match &path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| format!("cannot create {}: {e}", p.to_string_lossy()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    writeln!(out, "arch,params,macs")?;
    for row in 0..table.len() {
        let arch = table.arch(row);
        let net = space.decode(arch)?;
        writeln!(
            out,
            "{},{},{}",
            space.format(arch),
            net.params(),
            net.macs()
        )?;
    }
    out.flush()?;
    Ok(())
}
