//! `report.html` (one self-contained page) and `report.md` (Markdown with the figures as SVG
//! files beside it).

use super::figures::{arch_diagrams, figures, Figure};
use super::run::Run;
use super::svg::{escape, si};
use nasforge_core::study::Trial;
use std::fmt::Write;

/// One row of the top-k table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopRow {
    /// Rank by the objective (1 is best).
    pub rank: usize,
    /// Trial number.
    pub trial: u64,
    /// The arch in its space's text form.
    pub arch: String,
    /// The objective value.
    pub value: f64,
    /// Epochs it trained at (schedulers' rungs), if recorded.
    pub epochs: Option<f64>,
    /// Trainable parameters.
    pub params: Option<f64>,
    /// MACs per sample.
    pub macs: Option<f64>,
    /// CPU latency at batch 1 (ms).
    pub latency_ms: Option<f64>,
    /// Final training from scratch: `mean ± std` on the test split (the best arch only).
    pub final_result: Option<String>,
}

fn arch_text(t: &Trial) -> String {
    t.arch
        .get("arch")
        .and_then(|a| a.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| t.arch.to_string())
}

/// The final-training result as `99.50 ± 0.18 (test accuracy, 3 seeds)`.
pub fn final_text(run: &Run) -> Option<String> {
    let f = run.final_result.as_ref()?;
    let mean = f.get("mean")?.as_f64()?;
    let std = f.get("std")?.as_f64().unwrap_or(0.0);
    let seeds = f
        .get("seeds")
        .and_then(|s| s.as_array())
        .map_or(0, Vec::len);
    let what = if f.get("task").and_then(|t| t.as_str()) == Some("regression") {
        "test MSE"
    } else {
        "test accuracy"
    };
    Some(format!(
        "{mean:.2} ± {std:.2} ({what}, {})",
        crate::cmd::plural(seeds, "seed")
    ))
}

/// The `k` best feasible complete trials by objective `objective` (its index in the goal; 0 is
/// the first), at the best trial's fidelity level first, then the rest.
pub fn top_k_by(run: &Run, objective: usize, k: usize) -> Vec<TopRow> {
    let goal = run.record.goal();
    let sign = goal.objectives.get(objective).map_or(1.0, |o| o.sign());
    let score = |t: &Trial| t.values.get(objective).map(|v| sign * v);
    let top_epochs = run.best().and_then(|b| b.fidelity.epochs);
    let mut done: Vec<&Trial> = run
        .trials
        .iter()
        .filter(|t| t.is_feasible() && score(t).is_some_and(f64::is_finite))
        .collect();
    done.sort_by(|a, b| {
        (b.fidelity.epochs == top_epochs)
            .cmp(&(a.fidelity.epochs == top_epochs))
            .then(score(b).unwrap().total_cmp(&score(a).unwrap()))
            // Ties: the later trial first, as the search's best (`best_of`) picks it.
            .then(b.number.cmp(&a.number))
    });
    let final_arch = run
        .final_result
        .as_ref()
        .and_then(|f| f.get("arch"))
        .and_then(|a| a.as_str())
        .map(str::to_string);
    let final_text = final_text(run);
    done.iter()
        .take(k)
        .enumerate()
        .map(|(i, t)| {
            let arch = arch_text(t);
            TopRow {
                rank: i + 1,
                trial: t.number,
                value: t.values.get(objective).copied().unwrap_or(f64::NAN),
                epochs: Some(f64::from(t.cost.epochs)).filter(|&e| e > 0.0),
                params: t.metrics.get("params").copied(),
                macs: t.metrics.get("macs").copied(),
                latency_ms: t
                    .metrics
                    .get(nasforge_core::study::metric::LATENCY_MS)
                    .copied(),
                final_result: (final_arch.as_deref() == Some(arch.as_str()))
                    .then(|| final_text.clone())
                    .flatten(),
                arch,
            }
        })
        .collect()
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

/// Column titles of the top-k table; `{}` is the objective.
const TOP_COLUMNS: [&str; 9] = [
    "#",
    "trial",
    "{}",
    "final training",
    "params",
    "MACs",
    "latency ms",
    "epochs",
    "arch",
];

/// Columns holding numbers (right-aligned); the others are text, the last is the arch.
const TOP_NUMERIC: [bool; 9] = [true, true, true, false, true, true, true, true, false];

impl TopRow {
    /// The row's cells as text, in [`TOP_COLUMNS`] order.
    fn cells(&self) -> [String; 9] {
        [
            self.rank.to_string(),
            self.trial.to_string(),
            format!("{:.4}", self.value),
            self.final_result.clone().unwrap_or_else(|| "—".into()),
            opt(self.params, si),
            opt(self.macs, si),
            opt(self.latency_ms, |v| format!("{v:.2}")),
            opt(self.epochs, |v| format!("{v}")),
            self.arch.clone(),
        ]
    }
}

fn top_columns(objective: &str) -> impl Iterator<Item = String> + '_ {
    TOP_COLUMNS.iter().map(move |c| c.replace("{}", objective))
}

/// Key facts of a run as (label, value) pairs.
pub fn facts(run: &Run) -> Vec<(&'static str, String)> {
    let r = &run.record;
    let mut out = vec![
        ("run", run.dir.display().to_string()),
        ("state", run.state.as_str().to_string()),
        ("space", format!("{} {}", r.space, r.space_params)),
        ("strategy", r.strategy.clone()),
        ("objectives", r.goal().describe_objectives()),
        ("constraints", r.goal().describe_constraints()),
        ("seed", r.seed.to_string()),
        (
            "trials",
            format!(
                "{} of {} finished ({} complete, {} stopped early, {} failed)",
                run.finished(),
                run.total(),
                run.count(nasforge_core::study::TrialState::Complete),
                run.count(nasforge_core::study::TrialState::Pruned),
                run.count(nasforge_core::study::TrialState::Failed)
            ),
        ),
    ];
    if let Some(b) = run.best() {
        out.push((
            "best",
            format!(
                "trial {}: {} = {:.4}",
                b.number,
                r.objective,
                b.value().unwrap_or(f64::NAN)
            ),
        ));
        out.push(("best arch", arch_text(b)));
    }
    if let Some(f) = final_text(run) {
        out.push(("final training", f));
    }
    out
}

const CSS: &str = "body{font-family:sans-serif;max-width:1200px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;overflow-wrap:normal}
.figs{display:flex;flex-wrap:wrap;gap:16px}.fig{max-width:100%}.fig p{font-size:12px;color:#555;max-width:560px}
pre{background:#f7f7f7;padding:10px;overflow:auto;font-size:12px}code{font-size:12px;overflow-wrap:anywhere}td{overflow-wrap:break-word}svg{max-width:100%;height:auto}";

fn figure_html(out: &mut String, f: &Figure) {
    let _ = write!(
        out,
        "<div class=\"fig\" id=\"{}\">{}<p>{}</p></div>",
        escape(&f.id),
        f.svg,
        escape(&f.caption)
    );
}

/// The top-k table as HTML rows (used by the report and the dashboard).
pub fn top_table_html(rows: &[TopRow], objective: &str) -> String {
    let mut out = String::from("<table><thead><tr>");
    for c in top_columns(objective) {
        let _ = write!(out, "<th>{}</th>", escape(&c));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.cells().iter().enumerate() {
            let _ = match (TOP_NUMERIC[i], i == TOP_COLUMNS.len() - 1) {
                (true, _) => write!(out, "<td class=\"num\">{}</td>", escape(c)),
                (false, true) => write!(out, "<td><code>{}</code></td>", escape(c)),
                (false, false) => write!(out, "<td>{}</td>", escape(c)),
            };
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The whole report as one HTML page (no external resources).
pub fn html(run: &Run) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nasforge report: {}</title><style>{CSS}</style></head><body><h1>nasforge report: {}</h1><table>",
        escape(&run.name()),
        escape(&run.name())
    );
    for (k, v) in facts(run) {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    }
    out.push_str("</table><h2>Search</h2><div class=\"figs\">");
    for f in figures(run) {
        figure_html(&mut out, &f);
    }
    out.push_str("</div>");
    if let Some(b) = run.best() {
        let _ = write!(
            out,
            "<h2>Best architecture (trial {})</h2><p><code>{}</code></p><div class=\"figs\">",
            b.number,
            escape(&arch_text(b))
        );
        for f in arch_diagrams(run, &b.arch) {
            figure_html(&mut out, &f);
        }
        out.push_str("</div>");
    }
    let goal = run.record.goal();
    for (i, o) in goal.objectives.iter().enumerate() {
        let title = if i == 0 {
            "Top trials".to_string()
        } else {
            format!("Top trials by {}", o.metric)
        };
        let _ = write!(
            out,
            "<h2>{}</h2>{}",
            escape(&title),
            top_table_html(&top_k_by(run, i, 10), &o.metric)
        );
    }
    let config = std::fs::read_to_string(run.dir.join("config.toml")).unwrap_or_default();
    let _ = write!(
        out,
        "<h2>Configuration (seed {})</h2><pre>{}</pre><p style=\"font-size:12px;color:#777\">Written by nasforge {} at unix time {:.0}.</p></body></html>",
        run.record.seed,
        escape(&config),
        env!("CARGO_PKG_VERSION"),
        nasforge_core::study::now()
    );
    out
}

/// The report as Markdown; returns the text and the figures to write beside it
/// (`figures/<id>.svg`, which the text links).
pub fn markdown(run: &Run) -> (String, Vec<Figure>) {
    let mut out = format!("# nasforge report: {}\n\n", run.name());
    out.push_str("| | |\n| --- | --- |\n");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for (k, v) in facts(run) {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }
    let mut figs = figures(run);
    out.push_str("\n## Search\n\n");
    for f in &figs {
        let _ = writeln!(
            out,
            "![{}](figures/{}.svg)\n\n{}\n",
            cell(&f.title),
            f.id,
            f.caption
        );
    }
    if let Some(b) = run.best() {
        let _ = writeln!(
            out,
            "## Best architecture (trial {})\n\n`{}`\n",
            b.number,
            arch_text(b)
        );
        for f in arch_diagrams(run, &b.arch) {
            let _ = writeln!(out, "![{}](figures/{}.svg)\n", cell(&f.title), f.id);
            figs.push(f);
        }
    }
    let rule: Vec<&str> = TOP_NUMERIC
        .iter()
        .map(|&n| if n { "---:" } else { "---" })
        .collect();
    for (i, o) in run.record.goal().objectives.iter().enumerate() {
        if i == 0 {
            out.push_str("## Top trials\n\n");
        } else {
            let _ = writeln!(out, "## Top trials by {}\n", o.metric);
        }
        let header: Vec<String> = top_columns(&o.metric).collect();
        let _ = writeln!(out, "| {} |\n| {} |", header.join(" | "), rule.join(" | "));
        for r in top_k_by(run, i, 10) {
            let mut cells: Vec<String> = r.cells().iter().map(|c| cell(c)).collect();
            if let Some(arch) = cells.last_mut() {
                *arch = format!("`{arch}`");
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    let config = std::fs::read_to_string(run.dir.join("config.toml")).unwrap_or_default();
    let _ = write!(
        out,
        "\n## Configuration (seed {})\n\n```toml\n{}\n```\n",
        run.record.seed,
        config.trim_end()
    );
    (out, figs)
}
