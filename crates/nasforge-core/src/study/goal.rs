//! What a study optimises and what it must respect: objectives (a metric and a direction, one
//! or more), constraints (`params<=500000`), and the metric names that evaluators, studies,
//! reports and the command line share.
//!
//! Constraints on metrics that NetSpec computes ([`metric::PARAMS`], [`metric::MACS`],
//! [`metric::PEAK_MEMORY_MB`]) are judged before anything is trained, so an infeasible arch is
//! never evaluated; the others (latency, accuracy floors) are judged on the measured trial,
//! which is then stored as infeasible.

use super::Direction;
use crate::netspec::NetSpec;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The metric names every crate uses: a metric is a string key in a trial's metrics, and
/// these constants are the contract.
pub mod metric {
    /// Trainable parameters (NetSpec; NAS-Bench-201's convention).
    pub const PARAMS: &str = "params";
    /// Multiply-accumulates of one sample (NetSpec).
    pub const MACS: &str = "macs";
    /// Float32 parameters plus peak live activations of a batch-1 forward pass, in MB (NetSpec).
    pub const PEAK_MEMORY_MB: &str = "peak_memory_mb";
    /// Median CPU inference latency at batch 1, in milliseconds, measured (or predicted) on the
    /// machine that runs the search.
    pub const LATENCY_MS: &str = "latency_ms";
    /// Validation accuracy in percent.
    pub const VALID_ACCURACY: &str = "valid_accuracy";
    /// Validation cross-entropy of a classifier, in nats (one-shot methods' inherited weights).
    pub const VALID_LOSS: &str = "valid_loss";
    /// Validation mean squared error (regression).
    pub const VALID_MSE: &str = "valid_mse";
    /// Validation mean absolute error (regression).
    pub const VALID_MAE: &str = "valid_mae";
    /// Validation cross-entropy of a language model's next-token predictions, in bits per
    /// token (per character with character tokens).
    pub const VALID_BPC: &str = "valid_bpc";
    /// Mean training loss of the last epoch.
    pub const TRAIN_LOSS: &str = "train_loss";
    /// Wall time of training, in seconds.
    pub const TRAIN_SECONDS: &str = "train_seconds";
    /// Training epochs run (the trial's cost; a pruned trial's are the epochs it ran).
    pub const EPOCHS: &str = "epochs";
}

/// A metric nasforge knows by name: its natural direction and whether NetSpec computes it.
pub struct MetricInfo {
    /// The name.
    pub name: &'static str,
    /// Which way is better.
    pub direction: Direction,
    /// Computed from the network's description, before any training.
    pub from_netspec: bool,
    /// One line on what it is.
    pub summary: &'static str,
}

/// Every metric with a known direction (a benchmark table adds its own columns).
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        name: metric::VALID_ACCURACY,
        direction: Direction::Maximize,
        from_netspec: false,
        summary: "validation accuracy, %",
    },
    MetricInfo {
        name: metric::VALID_LOSS,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "validation cross-entropy of a classifier, nats (one-shot methods)",
    },
    MetricInfo {
        name: metric::VALID_MSE,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "validation mean squared error",
    },
    MetricInfo {
        name: metric::VALID_MAE,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "validation mean absolute error",
    },
    MetricInfo {
        name: metric::VALID_BPC,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "validation bits per character of a language model (--task lm)",
    },
    MetricInfo {
        name: metric::PARAMS,
        direction: Direction::Minimize,
        from_netspec: true,
        summary: "trainable parameters",
    },
    MetricInfo {
        name: metric::MACS,
        direction: Direction::Minimize,
        from_netspec: true,
        summary: "multiply-accumulates per sample",
    },
    MetricInfo {
        name: metric::PEAK_MEMORY_MB,
        direction: Direction::Minimize,
        from_netspec: true,
        summary: "float32 weights + peak activations of a batch-1 inference, MB",
    },
    MetricInfo {
        name: metric::LATENCY_MS,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "median CPU inference latency at batch 1, ms",
    },
    MetricInfo {
        name: metric::TRAIN_LOSS,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "training loss of the last epoch",
    },
    MetricInfo {
        name: metric::TRAIN_SECONDS,
        direction: Direction::Minimize,
        from_netspec: false,
        summary: "training wall time, s",
    },
];

/// The metrics NetSpec gives for `spec` (the ones [`MetricInfo::from_netspec`] marks).
pub fn netspec_metrics(spec: &NetSpec) -> BTreeMap<String, f64> {
    BTreeMap::from([
        (metric::PARAMS.to_string(), spec.params() as f64),
        (metric::MACS.to_string(), spec.macs() as f64),
        (metric::PEAK_MEMORY_MB.to_string(), spec.peak_memory_mb()),
    ])
}

/// Whether NetSpec computes `name` (so a constraint on it is judged before training).
pub fn is_netspec_metric(name: &str) -> bool {
    METRICS.iter().any(|m| m.name == name && m.from_netspec)
}

/// The natural direction of a metric: the registry's, else from the name (`acc` is maximised;
/// `loss`, `err`, `mse`, `mae`, `time`, `latency` are minimised).
pub fn natural_direction(name: &str) -> Option<Direction> {
    if let Some(m) = METRICS.iter().find(|m| m.name == name) {
        return Some(m.direction);
    }
    if name.contains("acc") {
        return Some(Direction::Maximize);
    }
    ["loss", "err", "mse", "mae", "time", "latency", "seconds"]
        .iter()
        .any(|k| name.contains(k))
        .then_some(Direction::Minimize)
}

fn check_metric_name(name: &str, what: &str, text: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(Error::invalid(format!(
            "{what} `{text}`: `{name}` is not a metric name (letters, digits and _ only), e.g. valid_accuracy, params, latency_ms"
        )));
    }
    Ok(())
}

/// One metric to optimise and which way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The metric's name.
    pub metric: String,
    /// Maximise or minimise it.
    pub direction: Direction,
}

impl Objective {
    /// An objective.
    pub fn new(metric: impl Into<String>, direction: Direction) -> Self {
        Objective {
            metric: metric.into(),
            direction,
        }
    }

    /// Parses `METRIC` or `METRIC:max` / `METRIC:min` (`maximize`, `minimize` too). Without a
    /// direction the metric's natural one is used ([`natural_direction`]), or `default` when
    /// the name says nothing.
    pub fn parse(text: &str, default: Option<Direction>) -> Result<Self> {
        let (name, dir) = match text.split_once(':') {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (text.trim(), None),
        };
        check_metric_name(name, "objective", text)?;
        let direction = match dir {
            Some(d) => Direction::parse(d).map_err(|_| {
                Error::invalid(format!(
                    "objective `{text}`: unknown direction `{d}`; write {name}:max or {name}:min"
                ))
            })?,
            None => default.or_else(|| natural_direction(name)).ok_or_else(|| {
                Error::invalid(format!(
                    "objective `{text}`: nasforge does not know whether `{name}` is better high or low; write {name}:max or {name}:min"
                ))
            })?,
        };
        Ok(Objective::new(name, direction))
    }

    /// +1 or -1: multiplying a value by it makes higher better.
    pub fn sign(&self) -> f64 {
        self.direction.sign()
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match self.direction {
            Direction::Maximize => "max",
            Direction::Minimize => "min",
        };
        write!(f, "{}:{d}", self.metric)
    }
}

/// Which side of its limit a constrained metric must stay on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// `metric <= limit`.
    AtMost,
    /// `metric >= limit`.
    AtLeast,
}

/// A hard limit on a metric: `params<=500000`, `latency_ms<=2.0`, `valid_accuracy>=90`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// The metric's name.
    pub metric: String,
    /// At most or at least.
    pub bound: Bound,
    /// The limit.
    pub limit: f64,
}

impl Constraint {
    /// Parses `METRIC<=LIMIT` or `METRIC>=LIMIT` (the limit may be written `50e6`).
    pub fn parse(text: &str) -> Result<Self> {
        let malformed = || {
            Error::invalid(format!(
                "malformed constraint `{text}`: write METRIC<=LIMIT or METRIC>=LIMIT, e.g. params<=500000 or latency_ms<=2.0"
            ))
        };
        let (name, bound, limit) = if let Some((n, l)) = text.split_once("<=") {
            (n, Bound::AtMost, l)
        } else if let Some((n, l)) = text.split_once(">=") {
            (n, Bound::AtLeast, l)
        } else {
            return Err(malformed());
        };
        let (name, limit) = (name.trim(), limit.trim());
        if name.is_empty() || name.contains(['<', '>', '=']) || limit.contains(['<', '>', '=']) {
            return Err(malformed());
        }
        check_metric_name(name, "constraint", text)?;
        let limit: f64 = limit.parse().map_err(|_| {
            Error::invalid(format!(
                "constraint `{text}`: the limit `{limit}` is not a number"
            ))
        })?;
        if !limit.is_finite() {
            return Err(Error::invalid(format!(
                "constraint `{text}`: the limit must be a finite number"
            )));
        }
        Ok(Constraint {
            metric: name.to_string(),
            bound,
            limit,
        })
    }

    /// How far `value` is outside the limit, relative to the limit's size (0 when satisfied),
    /// so violations of constraints on different scales add up sensibly.
    pub fn violation(&self, value: f64) -> f64 {
        let over = match self.bound {
            Bound::AtMost => value - self.limit,
            Bound::AtLeast => self.limit - value,
        };
        if over <= 0.0 {
            0.0
        } else if over.is_nan() {
            f64::INFINITY
        } else {
            over / self.limit.abs().max(1e-12)
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        write!(f, "{}{op}{}", self.metric, self.limit)
    }
}

/// Objectives and constraints together: what a study is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// One or more objectives; the first one is the primary (learning curves, schedulers).
    pub objectives: Vec<Objective>,
    /// Hard limits; a trial that breaks one is infeasible.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

/// How a measured trial fares against a [`Goal`].
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// One value per objective, as measured (not sign-adjusted).
    pub values: Vec<f64>,
    /// Summed relative violation of every constraint (0: feasible).
    pub violation: f64,
}

impl Goal {
    /// One objective, no constraints.
    pub fn single(metric: impl Into<String>, direction: Direction) -> Self {
        Goal {
            objectives: vec![Objective::new(metric, direction)],
            constraints: Vec::new(),
        }
    }

    /// Checks the goal against the metrics an evaluator provides (NetSpec's are always there):
    /// at least one objective, no objective twice, every metric known.
    pub fn check(&self, available: &[String]) -> Result<()> {
        if self.objectives.is_empty() {
            return Err(Error::invalid("a study needs at least one objective"));
        }
        let known = |name: &str| is_netspec_metric(name) || available.iter().any(|a| a == name);
        let list = || {
            let mut all: Vec<String> = available.to_vec();
            for m in METRICS.iter().filter(|m| m.from_netspec) {
                if !all.iter().any(|a| a == m.name) {
                    all.push(m.name.to_string());
                }
            }
            all.join(", ")
        };
        for (i, o) in self.objectives.iter().enumerate() {
            if !known(&o.metric) {
                return Err(Error::invalid(format!(
                    "unknown objective `{}`: this evaluator measures {}",
                    o.metric,
                    list()
                )));
            }
            if self.objectives[..i].iter().any(|p| p.metric == o.metric) {
                return Err(Error::invalid(format!(
                    "objective `{}` is given twice",
                    o.metric
                )));
            }
        }
        for c in &self.constraints {
            if !known(&c.metric) {
                return Err(Error::invalid(format!(
                    "constraint `{c}` is on an unknown metric `{}`: this evaluator measures {}",
                    c.metric,
                    list()
                )));
            }
        }
        Ok(())
    }

    /// Summed violation of the constraints judged before training: those on a metric of
    /// `known` (NetSpec's, and a predicted latency when the study has a predictor).
    pub fn violation_before_training(&self, known: &BTreeMap<String, f64>) -> f64 {
        self.constraints
            .iter()
            .filter_map(|c| known.get(&c.metric).map(|&v| c.violation(v)))
            .sum()
    }

    /// The objective values and constraint violation of a measured trial; an error names a
    /// metric the evaluation did not produce.
    pub fn judge(&self, metrics: &BTreeMap<String, f64>) -> std::result::Result<Judged, String> {
        let get = |name: &str| {
            metrics.get(name).copied().ok_or_else(|| {
                format!("the evaluation did not measure `{name}`, which the study needs")
            })
        };
        let values = self
            .objectives
            .iter()
            .map(|o| get(&o.metric))
            .collect::<std::result::Result<Vec<f64>, String>>()?;
        if let Some((o, v)) = self
            .objectives
            .iter()
            .zip(&values)
            .find(|(_, v)| !v.is_finite())
        {
            return Err(format!("objective `{}` is {v}", o.metric));
        }
        let mut violation = 0.0;
        for c in &self.constraints {
            violation += c.violation(get(&c.metric)?);
        }
        Ok(Judged { values, violation })
    }

    /// Sign-adjusted (higher is better) objective values.
    pub fn scores(&self, values: &[f64]) -> Vec<f64> {
        values
            .iter()
            .zip(&self.objectives)
            .map(|(v, o)| o.sign() * v)
            .collect()
    }

    /// `valid_accuracy:max, params:min`.
    pub fn describe_objectives(&self) -> String {
        let v: Vec<String> = self.objectives.iter().map(|o| o.to_string()).collect();
        v.join(", ")
    }

    /// `params<=100000, latency_ms<=2`, or `none`.
    pub fn describe_constraints(&self) -> String {
        if self.constraints.is_empty() {
            return "none".into();
        }
        let v: Vec<String> = self.constraints.iter().map(|c| c.to_string()).collect();
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_with_and_without_directions() {
        let o = Objective::parse("params:min", None).unwrap();
        assert_eq!(o, Objective::new("params", Direction::Minimize));
        assert_eq!(
            Objective::parse("valid_accuracy", None).unwrap().direction,
            Direction::Maximize
        );
        assert_eq!(
            Objective::parse("test_acc_200ep", None).unwrap().direction,
            Direction::Maximize
        );
        assert_eq!(
            Objective::parse("latency_ms:maximize", None)
                .unwrap()
                .direction,
            Direction::Maximize
        );
        assert_eq!(o.to_string(), "params:min");
        let e = Objective::parse("params:smallest", None).unwrap_err();
        assert!(
            e.to_string().contains("unknown direction `smallest`"),
            "{e}"
        );
        let e = Objective::parse("widgets", None).unwrap_err();
        assert!(e.to_string().contains("widgets:max or widgets:min"), "{e}");
        assert!(Objective::parse(":max", None).is_err());
        assert_eq!(
            Objective::parse("widgets", Some(Direction::Minimize))
                .unwrap()
                .direction,
            Direction::Minimize
        );
    }

    #[test]
    fn constraints_parse_and_measure_violation() {
        let c = Constraint::parse("params<=500000").unwrap();
        assert_eq!((c.bound, c.limit), (Bound::AtMost, 500_000.0));
        assert!(is_netspec_metric(&c.metric));
        assert_eq!(c.violation(400_000.0), 0.0);
        assert!((c.violation(750_000.0) - 0.5).abs() < 1e-12);
        let m = Constraint::parse(" macs <= 50e6 ").unwrap();
        assert_eq!(m.limit, 50e6);
        let a = Constraint::parse("valid_accuracy>=90").unwrap();
        assert!(!is_netspec_metric(&a.metric));
        assert_eq!(a.violation(95.0), 0.0);
        assert!(a.violation(81.0) > 0.0);
        assert_eq!(a.violation(f64::NAN), f64::INFINITY);
        assert_eq!(c.to_string(), "params<=500000");
        for bad in [
            "params=>5",
            "params<5",
            "params==5",
            "<=5",
            "params<=",
            "params<=<=5",
        ] {
            let e = Constraint::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("malformed constraint") || e.contains("not a number"),
                "{bad}: {e}"
            );
        }
        let e = Constraint::parse("params<=abc").unwrap_err().to_string();
        assert!(e.contains("the limit `abc` is not a number"), "{e}");
        assert!(Constraint::parse("params<=inf").is_err());
    }

    #[test]
    fn goals_check_metrics_and_judge_trials() {
        let goal = Goal {
            objectives: vec![
                Objective::new("valid_accuracy", Direction::Maximize),
                Objective::new("params", Direction::Minimize),
            ],
            constraints: vec![Constraint::parse("latency_ms<=2").unwrap()],
        };
        let available = vec!["valid_accuracy".to_string(), "latency_ms".to_string()];
        goal.check(&available).unwrap();
        let e = goal.check(&["valid_accuracy".to_string()]).unwrap_err();
        assert!(e.to_string().contains("unknown metric `latency_ms`"), "{e}");
        let mut twice = goal.clone();
        twice
            .objectives
            .push(Objective::new("params", Direction::Minimize));
        assert!(twice
            .check(&available)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let metrics = BTreeMap::from([
            ("valid_accuracy".to_string(), 90.0),
            ("params".to_string(), 1000.0),
            ("latency_ms".to_string(), 3.0),
        ]);
        let j = goal.judge(&metrics).unwrap();
        assert_eq!(j.values, vec![90.0, 1000.0]);
        assert!((j.violation - 0.5).abs() < 1e-12);
        assert_eq!(goal.scores(&j.values), vec![90.0, -1000.0]);
        let e = goal.judge(&BTreeMap::new()).unwrap_err();
        assert!(e.contains("valid_accuracy"), "{e}");
    }

    #[test]
    fn netspec_constraints_are_judged_before_training() {
        let goal = Goal {
            objectives: vec![Objective::new("valid_accuracy", Direction::Maximize)],
            constraints: vec![
                Constraint::parse("params<=100").unwrap(),
                Constraint::parse("latency_ms<=1").unwrap(),
            ],
        };
        let m = BTreeMap::from([("params".to_string(), 150.0)]);
        assert!((goal.violation_before_training(&m) - 0.5).abs() < 1e-12);
    }
}
