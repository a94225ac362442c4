//! The figures of a run, shared by `nasforge report` and the dashboard.

use super::run::Run;
use super::svg::{cell_diagram, Chart, Mark, Series, PALETTE};
use nasforge_core::space;
use nasforge_core::study::{Trial, TrialState};
use nasforge_core::Params;
use nasforge_nn::supernet::Checkpoint;

/// One figure: an id (file name stem, HTML anchor), a title, the SVG and a caption.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figure {
    /// Stable id (`best_so_far`, `objective_vs_params`, ...).
    pub id: String,
    /// Title.
    pub title: String,
    /// The `<svg>` element.
    pub svg: String,
    /// What it shows, in a sentence.
    pub caption: String,
}

/// Costs plotted against the objective, when trials measured them: metric, axis label.
const COSTS: [(&str, &str); 3] = [
    ("params", "parameters (log)"),
    ("macs", "MACs per sample (log)"),
    ("latency_ms", "CPU latency at batch 1, ms (log)"),
];

fn complete(run: &Run) -> impl Iterator<Item = &Trial> {
    run.trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value().is_some_and(f64::is_finite))
}

fn tip(run: &Run, t: &Trial) -> String {
    format!(
        "trial {}: {} = {:.4}{}\n{}",
        t.number,
        run.record.objective,
        t.value().unwrap_or(f64::NAN),
        t.fidelity
            .epochs
            .map(|e| format!(" at {e} epochs"))
            .unwrap_or_default(),
        t.arch.get("arch").and_then(|a| a.as_str()).unwrap_or("")
    )
}

/// Running best of `(x, value)` points in x order, for the run's direction.
fn running_best(sign: f64, mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best = f64::NEG_INFINITY;
    pts.into_iter()
        .map(|(x, v)| {
            best = best.max(sign * v);
            (x, sign * best)
        })
        .collect()
}

fn best_so_far(run: &Run, over_time: bool) -> Figure {
    let start = run
        .trials
        .iter()
        .map(|t| t.created_at)
        .fold(f64::INFINITY, f64::min);
    let x_of = |t: &Trial| {
        if over_time {
            (t.finished_at.unwrap_or(t.created_at) - start) / 60.0
        } else {
            t.number as f64
        }
    };
    let (id, title, x_label) = if over_time {
        (
            "best_over_time",
            "Best so far over time",
            "minutes since the run started",
        )
    } else {
        ("best_over_trials", "Best so far over trials", "trial")
    };
    let mut chart = Chart::new(title, x_label, run.record.objective.clone());
    let mut dots = Series::new("trials", Mark::Points, PALETTE[5]);
    for t in complete(run) {
        dots.points.push((x_of(t), t.value().unwrap()));
        dots.tips.push(tip(run, t));
    }
    let mut line = Series::new("best so far", Mark::Step, PALETTE[1]);
    line.points = running_best(run.sign(), dots.points.clone());
    chart.series = vec![dots, line];
    Figure {
        id: id.into(),
        title: title.into(),
        svg: chart.render(),
        caption: format!(
            "Every complete trial's {} ({}) and the best value found so far.",
            run.record.objective,
            if run.sign() > 0.0 {
                "higher is better"
            } else {
                "lower is better"
            }
        ),
    }
}

/// The Pareto front of (cost, objective) points, cost minimised and the objective in the
/// direction of `sign`: the points no other beats on both, by cost (one per distinct point).
fn pareto(sign: f64, pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let scored: Vec<Vec<f64>> = pts.iter().map(|&(c, v)| vec![-c, sign * v]).collect();
    let mut front: Vec<(f64, f64)> = nasforge_core::pareto::front(&scored)
        .into_iter()
        .map(|i| pts[i])
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    front.dedup();
    front
}

/// With two or more objectives: the first two as axes, every complete trial (infeasible ones
/// greyed), and the front the search found.
fn front_figure(run: &Run) -> Option<Figure> {
    let goal = run.record.goal();
    if goal.objectives.len() < 2 {
        return None;
    }
    let (a, b) = (&goal.objectives[0], &goal.objectives[1]);
    let usable: Vec<&Trial> = complete(run)
        .filter(|t| t.values.len() == goal.objectives.len())
        .collect();
    if usable.is_empty() {
        return None;
    }
    let title = format!("Pareto front: {} vs {}", a.metric, b.metric);
    let mut chart = Chart::new(title.clone(), b.to_string(), a.to_string());
    chart.x_log = usable.iter().all(|t| t.values[1] > 0.0);
    let mut feasible = Series::new("feasible", Mark::Points, PALETTE[5]);
    let mut infeasible = Series::new("breaks a constraint", Mark::Points, "#999999");
    infeasible.opacity = 0.5;
    for t in &usable {
        let s = if t.is_feasible() {
            &mut feasible
        } else {
            &mut infeasible
        };
        s.points.push((t.values[1], t.values[0]));
        s.tips.push(tip(run, t));
    }
    let on_front = nasforge_core::study::front_of(&run.trials, &goal);
    let mut line = Series::new("front", Mark::Step, PALETTE[1]);
    let mut pts: Vec<(f64, f64)> = on_front
        .iter()
        .map(|t| (t.values[1], t.values[0]))
        .collect();
    pts.sort_by(|x, y| x.0.total_cmp(&y.0));
    line.points = pts;
    let n = on_front.len();
    chart.series = vec![feasible, infeasible, line];
    Some(Figure {
        id: "pareto_front".into(),
        title,
        svg: chart.render(),
        caption: format!(
            "Every complete trial by its first two objectives ({}; constraints {}); grey trials break a constraint. The line joins the {n} feasible {} that no other feasible trial dominates{}.",
            goal.describe_objectives(),
            goal.describe_constraints(),
            if n == 1 { "trial" } else { "trials" },
            if goal.objectives.len() > 2 { " on all objectives" } else { "" }
        ),
    })
}

/// With two or three objectives: the hypervolume of the feasible trials so far, against the
/// worst value of each objective among them (the reference point is named in the caption).
fn hypervolume_figure(run: &Run) -> Option<Figure> {
    let goal = run.record.goal();
    let n = goal.objectives.len();
    if !(2..=3).contains(&n) {
        return None;
    }
    let mut done: Vec<&Trial> = complete(run)
        .filter(|t| t.is_feasible() && t.values.len() == n)
        .collect();
    if done.len() < 2 {
        return None;
    }
    done.sort_by_key(|t| t.number);
    let scores: Vec<Vec<f64>> = done.iter().map(|t| goal.scores(&t.values)).collect();
    let reference: Vec<f64> = (0..n)
        .map(|k| scores.iter().map(|s| s[k]).fold(f64::INFINITY, f64::min))
        .collect();
    let mut line = Series::new("hypervolume", Mark::Step, PALETTE[0]);
    // The hypervolume of a set is that of its non-dominated points, so it is recomputed only
    // when a trial joins the front (the dashboard redraws this every poll).
    let mut front: Vec<Vec<f64>> = Vec::new();
    let mut hv = 0.0;
    for (t, p) in done.iter().zip(&scores) {
        let covered = front
            .iter()
            .any(|f| f == p || nasforge_core::pareto::dominates(f, p));
        if !covered {
            front.retain(|f| !nasforge_core::pareto::dominates(p, f));
            front.push(p.clone());
            hv = nasforge_core::pareto::hypervolume(&front, &reference).ok()?;
        }
        line.points.push((t.number as f64, hv));
    }
    let shown: Vec<String> = reference
        .iter()
        .zip(&goal.objectives)
        .map(|(r, o)| format!("{}={}", o.metric, crate::cmd::metric(o.sign() * r)))
        .collect();
    let mut chart = Chart::new("Hypervolume over trials", "trial", "hypervolume");
    chart.series = vec![line];
    Some(Figure {
        id: "hypervolume".into(),
        title: "Hypervolume over trials".into(),
        svg: chart.render(),
        caption: format!(
            "The volume of objective space the feasible trials so far dominate, against the worst value each objective reached ({}); it only grows.",
            shown.join(", ")
        ),
    })
}

fn versus_cost(run: &Run, metric: &str, label: &str) -> Option<Figure> {
    let trials: Vec<&Trial> = complete(run)
        .filter(|t| t.metrics.get(metric).is_some_and(|v| *v > 0.0))
        .collect();
    if trials.is_empty() {
        return None;
    }
    let title = format!("{} vs {}", run.record.objective, metric);
    let mut chart = Chart::new(title.clone(), label, run.record.objective.clone());
    chart.x_log = true;
    let mut dots = Series::new("trials", Mark::Points, PALETTE[5]);
    for t in &trials {
        dots.points.push((t.metrics[metric], t.value().unwrap()));
        dots.tips.push(tip(run, t));
    }
    let mut front = Series::new("Pareto front", Mark::Step, PALETTE[1]);
    front.points = pareto(run.sign(), &dots.points);
    let mut best = Series::new("best", Mark::Points, PALETTE[6]);
    best.size = 5.0;
    best.opacity = 1.0;
    if let Some(b) = run.best().filter(|b| b.metrics.contains_key(metric)) {
        best.points
            .push((b.metrics[metric], b.value().unwrap_or(f64::NAN)));
        best.tips.push(tip(run, b));
    }
    let n_front = front.points.len();
    chart.series = vec![dots, front, best];
    Some(Figure {
        id: format!("objective_vs_{metric}"),
        title,
        svg: chart.render(),
        caption: format!(
            "Every complete trial; the line joins the {n_front} {} that no other trial beats on both {} and {metric} (the Pareto front).",
            if n_front == 1 { "trial" } else { "trials" },
            run.record.objective
        ),
    })
}

fn learning_curves(run: &Run) -> Option<Figure> {
    let with_curve: Vec<&Trial> = run
        .trials
        .iter()
        .filter(|t| !t.intermediate.is_empty())
        .collect();
    if with_curve.is_empty() {
        return None;
    }
    let best = run.best().map(|b| b.number);
    let mut chart = Chart::new("Learning curves", "epoch", run.record.objective.clone());
    let mut legend_done = [false; 2];
    for t in &with_curve {
        let is_best = Some(t.number) == best;
        let pruned = t.state == TrialState::Pruned;
        let mut s = Series::new(
            "",
            Mark::Line,
            if is_best {
                PALETTE[1]
            } else if pruned {
                "#bbbbbb"
            } else {
                PALETTE[0]
            },
        );
        s.size = if is_best { 2.5 } else { 1.0 };
        s.opacity = if is_best { 1.0 } else { 0.45 };
        let k = usize::from(pruned);
        if is_best {
            s.name = format!("best (trial {})", t.number);
        } else if !legend_done[k] {
            s.name = if pruned { "pruned" } else { "other trials" }.into();
            legend_done[k] = true;
        }
        s.points = t
            .intermediate
            .iter()
            .map(|&(step, v)| (step as f64, v))
            .collect();
        chart.series.push(s);
    }
    // The best on top.
    chart.series.sort_by_key(|s| s.name.starts_with("best"));
    Some(Figure {
        id: "learning_curves".into(),
        title: "Learning curves".into(),
        svg: chart.render(),
        caption: format!(
            "{} per epoch of {} trials while they trained; grey ones were stopped early.",
            run.record.objective,
            with_curve.len()
        ),
    })
}

fn proxies(run: &Run) -> Vec<Figure> {
    let mut names: Vec<String> = complete(run)
        .flat_map(|t| t.metrics.keys())
        .filter(|k| k.starts_with("proxy_"))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let title = format!("{} vs {}", run.record.objective, name);
            let mut chart = Chart::new(title.clone(), name.clone(), run.record.objective.clone());
            let mut dots = Series::new("", Mark::Points, PALETTE[2]);
            for t in complete(run) {
                if let Some(&p) = t.metrics.get(&name) {
                    dots.points.push((p, t.value().unwrap()));
                    dots.tips.push(tip(run, t));
                }
            }
            let xs: Vec<f64> = dots.points.iter().map(|p| p.0).collect();
            let ys: Vec<f64> = dots.points.iter().map(|p| p.1).collect();
            let rho = nasforge_core::stats::spearman(&xs, &ys);
            chart.series.push(dots);
            Figure {
                id: format!("objective_vs_{name}"),
                title,
                svg: chart.render(),
                caption: format!(
                    "Zero-cost proxy at initialisation against the trained result; Spearman ρ = {rho:.3} over {} trials.",
                    xs.len()
                ),
            }
        })
        .collect()
}

/// A one-shot run's supernet training: the loss per epoch and, for DARTS, GDAS and ENAS, softmax(α)
/// of every option per choice over epochs (how the method made up its mind, and whether it
/// drifted onto parameter-free ops). Nothing for other runs or an unreadable checkpoint.
fn supernet(run: &Run) -> Vec<Figure> {
    let checkpoint = Checkpoint::new(run.dir.join(super::run::SUPERNET_DIR));
    let epochs = checkpoint.epochs().unwrap_or_default();
    if epochs.is_empty() {
        return Vec::new();
    }
    let method = run.config.method.clone().unwrap_or_default();
    let mut chart = Chart::new(
        "Supernet training loss",
        "supernet epoch",
        "mean training loss",
    );
    let mut s = Series::new("", Mark::Line, PALETTE[0]);
    s.points = epochs
        .iter()
        .map(|e| (e.epoch as f64, e.train_loss))
        .collect();
    chart.series.push(s);
    let mut out = vec![Figure {
        id: "supernet_loss".into(),
        title: "Supernet training loss".into(),
        svg: chart.render(),
        caption: format!(
            "The {method} supernet's mean training loss per epoch ({} epochs).",
            epochs.len()
        ),
    }];
    let (Ok(Some(arch)), Ok(space)) = (
        checkpoint.arch(),
        space::build(
            &run.record.space,
            &Params::parse(&run.config.space_param).unwrap_or_default(),
        ),
    ) else {
        return out;
    };
    for (k, choice) in space.choices().iter().enumerate() {
        let title = format!("softmax(α) of {}", choice.name);
        let mut chart = Chart::new(title.clone(), "supernet epoch", "probability");
        for (o, label) in choice.options.iter().enumerate() {
            let mut s = Series::new(label.clone(), Mark::Line, PALETTE[o % PALETTE.len()]);
            s.points = arch
                .history
                .iter()
                .filter_map(|h| Some((h.epoch as f64, *h.probs.get(k)?.get(o)?)))
                .collect();
            chart.series.push(s);
        }
        let last = arch
            .history
            .last()
            .and_then(|h| choice.options.get(*h.derived.get(k)? as usize));
        out.push(Figure {
            id: format!("alpha_{}", choice.name),
            title,
            svg: chart.render(),
            caption: format!(
                "{method}'s architecture weights for {} after each epoch; the largest is the derived op{}.",
                choice.name,
                last.map(|l| format!(" (last epoch: {l})")).unwrap_or_default()
            ),
        });
    }
    out
}

/// Diagrams of the best arch (one per cell type), or none when there is no best yet.
pub fn arch_diagrams(run: &Run, arch: &serde_json::Value) -> Vec<Figure> {
    let Ok(space) = space::build(
        &run.record.space,
        &Params::parse(&run.config.space_param).unwrap_or_default(),
    ) else {
        return Vec::new();
    };
    let Ok(arch) = space.parse_json(arch) else {
        return Vec::new();
    };
    space
        .cells(&arch)
        .iter()
        .enumerate()
        .map(|(i, g)| Figure {
            id: format!("arch_{i}"),
            title: g.title.clone(),
            svg: cell_diagram(g),
            caption: format!("The {} as a graph; edges carry the ops.", g.title),
        })
        .collect()
}

/// The learning curve of one trial (the dashboard's trial page).
pub fn trial_curve(run: &Run, t: &Trial) -> Figure {
    let mut chart = Chart::new(
        format!("Trial {}", t.number),
        "epoch",
        run.record.objective.clone(),
    );
    let mut s = Series::new("", Mark::Line, PALETTE[0]);
    s.points = t
        .intermediate
        .iter()
        .map(|&(step, v)| (step as f64, v))
        .collect();
    chart.series.push(s);
    Figure {
        id: "curve".into(),
        title: format!("Learning curve of trial {}", t.number),
        svg: chart.render(),
        caption: format!("{} after each epoch.", run.record.objective),
    }
}

/// Every plot of the run, in report order (the arch diagrams come separately).
pub fn figures(run: &Run) -> Vec<Figure> {
    let mut out = vec![best_so_far(run, false), best_so_far(run, true)];
    out.extend(front_figure(run));
    out.extend(hypervolume_figure(run));
    out.extend(
        COSTS
            .iter()
            .filter_map(|(m, label)| versus_cost(run, m, label)),
    );
    out.extend(learning_curves(run));
    out.extend(proxies(run));
    out.extend(supernet(run));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        let pts = [
            (1.0, 50.0),
            (2.0, 60.0),
            (3.0, 55.0),
            (4.0, 70.0),
            (2.0, 40.0),
        ];
        assert_eq!(
            pareto(1.0, &pts),
            vec![(1.0, 50.0), (2.0, 60.0), (4.0, 70.0)]
        );
        // Minimising: lower is better.
        assert_eq!(pareto(-1.0, &pts), vec![(1.0, 50.0), (2.0, 40.0)]);
    }

    #[test]
    fn running_best_follows_the_direction() {
        let pts = vec![(0.0, 3.0), (1.0, 1.0), (2.0, 5.0)];
        let up: Vec<f64> = running_best(1.0, pts.clone()).iter().map(|p| p.1).collect();
        let down: Vec<f64> = running_best(-1.0, pts).iter().map(|p| p.1).collect();
        assert_eq!(up, [3.0, 3.0, 5.0]);
        assert_eq!(down, [3.0, 1.0, 1.0]);
    }
}
