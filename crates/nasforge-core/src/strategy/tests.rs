use super::*;
use crate::space::{self, SPACE_NAMES};
use std::collections::HashSet;

/// A deterministic stand-in objective: a hash of the arch's values.
fn score(arch: &Arch) -> f64 {
    arch.values().iter().enumerate().fold(0.0, |acc, (i, &v)| {
        acc + ((v as f64 + 1.0) * (i as f64 + 1.7)).sin()
    })
}

fn run(strategy: &mut dyn Strategy, space: &dyn Space, trials: usize) -> Vec<Arch> {
    let mut history = History::new();
    let mut asked = Vec::new();
    for _ in 0..trials {
        let Some(a) = strategy.ask(space, &history) else {
            break;
        };
        assert!(
            !history.contains(&a),
            "{} re-proposed an arch",
            strategy.name()
        );
        history.mark_asked(&a);
        let s = score(&a);
        history.record(&a, Some(s));
        strategy.tell(space, &a, Some(s), &history);
        asked.push(a);
    }
    asked
}

#[test]
fn every_strategy_runs_on_every_space_without_repeats() {
    for space_name in SPACE_NAMES {
        let space = space::build(space_name, &Params::new()).unwrap();
        for info in STRATEGIES {
            let mut s = build(info.name, 1, &Params::new()).unwrap();
            let asked = run(s.as_mut(), space.as_ref(), 60);
            assert_eq!(asked.len(), 60, "{} on {space_name}", info.name);
            let unique: HashSet<_> = asked.iter().collect();
            assert_eq!(unique.len(), 60, "{} on {space_name}", info.name);
        }
    }
}

#[test]
fn strategies_exhaust_a_tiny_space_exactly() {
    let p = Params::parse(&[
        "max_depth=1",
        "widths=32",
        "dropouts=0",
        "input=4",
        "classes=2",
    ])
    .unwrap();
    let space = space::build("mlp", &p).unwrap();
    for info in STRATEGIES {
        let mut s = build(info.name, 3, &Params::new()).unwrap();
        let asked = run(s.as_mut(), space.as_ref(), 100);
        assert_eq!(
            asked.len(),
            8,
            "{} should find all 8 archs and then stop",
            info.name
        );
    }
}

#[test]
fn grid_covers_nb201_exactly_once() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let mut s = build("grid", 7, &Params::new()).unwrap();
    let asked = run(s.as_mut(), space.as_ref(), 20_000);
    assert_eq!(asked.len(), 15_625);
}

#[test]
fn same_seed_same_proposals_different_seed_different() {
    let space = space::build("nb201", &Params::new()).unwrap();
    for info in STRATEGIES {
        let a = run(
            build(info.name, 42, &Params::new()).unwrap().as_mut(),
            space.as_ref(),
            40,
        );
        let b = run(
            build(info.name, 42, &Params::new()).unwrap().as_mut(),
            space.as_ref(),
            40,
        );
        let c = run(
            build(info.name, 43, &Params::new()).unwrap().as_mut(),
            space.as_ref(),
            40,
        );
        assert_eq!(a, b, "{}", info.name);
        assert_ne!(a, c, "{}", info.name);
    }
}

#[test]
fn evolution_and_local_search_beat_random_on_a_smooth_objective() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let best = |name: &str| -> f64 {
        (0..20)
            .map(|seed| {
                let asked = run(
                    build(name, seed, &Params::new()).unwrap().as_mut(),
                    space.as_ref(),
                    150,
                );
                asked.iter().map(score).fold(f64::MIN, f64::max)
            })
            .sum::<f64>()
            / 20.0
    };
    let random = best("random");
    assert!(best("rea") > random, "rea should beat random");
    assert!(best("ls") > random, "ls should beat random");
}

#[test]
fn unknown_strategy_and_bad_parameters_are_errors() {
    let e = build("bogus", 0, &Params::new()).err().unwrap().to_string();
    assert!(e.contains("random") && e.contains("rea"), "{e}");
    let e = build(
        "rea",
        0,
        &Params::parse(&["population=5", "sample_size=9"]).unwrap(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("sample_size"));
    let e = build("ls", 0, &Params::parse(&["popsize=5"]).unwrap())
        .err()
        .unwrap();
    assert!(e.to_string().contains("popsize"));
}
