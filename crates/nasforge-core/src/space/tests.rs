use super::*;

fn all_spaces() -> Vec<Box<dyn Space>> {
    SPACE_NAMES
        .iter()
        .map(|n| build(n, &Params::new()).unwrap())
        .collect()
}

#[test]
fn nb201_published_counts() {
    let s = Nb201Space::new();
    let conv = s
        .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
        .unwrap();
    let net = s.decode(&conv).unwrap();
    assert_eq!(net.params(), 1_531_546);
    assert_eq!((net.macs() as f64 / 1e6 * 100.0).round() / 100.0, 220.12);
    let none = s
        .parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        .unwrap();
    let net = s.decode(&none).unwrap();
    assert_eq!(net.params(), 73_306);
    assert_eq!((net.macs() as f64 / 1e6 * 100.0).round() / 100.0, 7.78);
    assert_eq!(net.output_shape(), &[10]);
}

#[test]
fn nb201_string_round_trip_and_errors() {
    let s = Nb201Space::new();
    let text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    let a = s.parse(text).unwrap();
    assert_eq!(s.format(&a), text);
    assert_eq!(a.values(), &[3, 3, 4, 1, 3, 1]);
    for bad in [
        "",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|",
        "|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    ] {
        let err = s.parse(bad).unwrap_err().to_string();
        assert!(err.contains("NAS-Bench-201"), "{err}");
    }
}

#[test]
fn nb201_enumerates_all_cells() {
    let s = Nb201Space::new();
    assert_eq!(s.combinations(), 15_625);
    let keys: HashSet<String> = (0..15_625u128)
        .map(|i| s.key(&s.arch_at(i).unwrap()))
        .collect();
    assert_eq!(keys.len(), 15_625);
}

#[test]
fn darts_v2_genotype_round_trip_and_size() {
    let s = DartsSpace::new();
    // DARTS (second order) as published; its evaluation network has 3.35 M parameters.
    let v2 = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";
    let a = s.parse(v2).unwrap();
    let again = s.parse(&s.format(&a)).unwrap();
    assert_eq!(a, again);
    let net = s.decode(&a).unwrap();
    assert_eq!(net.params(), 3_349_342);
    assert_eq!(net.output_shape(), &[10]);
    assert!(s
        .parse(&v2.replace("('dil_conv_3x3', 2)", "('skip_connect', 0)"))
        .is_err());
    assert!(s
        .parse(&v2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"))
        .is_err());
    assert!(s.parse("Genotype(normal=[])").is_err());
}

#[test]
fn every_space_round_trips_text_and_json_and_decodes() {
    for s in all_spaces() {
        let mut rng = Rng::new(11);
        for _ in 0..20 {
            let a = s.sample(&mut rng);
            assert_eq!(s.parse(&s.format(&a)).unwrap(), a, "{}", s.name());
            assert_eq!(s.parse_json(&s.to_json(&a)).unwrap(), a, "{}", s.name());
            let net = s.decode(&a).unwrap();
            assert!(net.params() > 0, "{}", s.name());
            assert_eq!(
                s.encode(&a).len(),
                s.choices().iter().map(|c| c.options.len()).sum::<usize>()
            );
        }
    }
}

#[test]
fn mutation_and_neighbours_change_exactly_one_active_choice() {
    for s in all_spaces() {
        let mut rng = Rng::new(5);
        for _ in 0..20 {
            let a = s.sample(&mut rng);
            let m = s.mutate(&a, &mut rng);
            assert_ne!(m, a, "{}", s.name());
            let ns = s.neighbours(&a);
            assert!(!ns.is_empty());
            let unique: HashSet<&Arch> = ns.iter().collect();
            assert_eq!(unique.len(), ns.len(), "{}: duplicate neighbours", s.name());
            for n in &ns {
                assert_ne!(n, &a);
                // The first differing choice was active in `a`: the only one the move changed.
                let first = (0..a.values().len())
                    .find(|&i| a.values()[i] != n.values()[i])
                    .unwrap();
                assert!(s.is_active(a.values(), first));
            }
        }
    }
    assert_eq!(
        Nb201Space::new()
            .neighbours(&Nb201Space::new().sample(&mut Rng::new(1)))
            .len(),
        24
    );
}

#[test]
fn mlp_inactive_widths_are_canonical() {
    let s = MlpSpace::new();
    let a = s
        .parse("depth=2,width_1=64,width_2=128,activation=relu,dropout=0.1,batch_norm=on")
        .unwrap();
    let b = s.arch_from_values(&[1, 1, 2, 4, 4, 0, 1, 1]).unwrap();
    assert_eq!(a, b, "widths beyond the depth do not matter");
    let net = s.decode(&a).unwrap();
    assert_eq!(net.params(), 64 * 64 + 128 + 64 * 128 + 256 + 128 * 10 + 10);
    let err = s
        .parse("depth=2,width_1=64,activation=relu,dropout=0.1,batch_norm=on")
        .unwrap_err();
    assert!(err.to_string().contains("width_2"), "{err}");
}

#[test]
fn crossover_takes_each_choice_from_a_parent() {
    for s in all_spaces() {
        let mut rng = Rng::new(9);
        let (a, b) = (s.sample(&mut rng), s.sample(&mut rng));
        let c = s.crossover(&a, &b, &mut rng);
        for i in 0..c.values().len() {
            if s.is_active(c.values(), i) {
                assert!(
                    c.values()[i] == a.values()[i]
                        || c.values()[i] == b.values()[i]
                        || !s.is_active(a.values(), i)
                        || !s.is_active(b.values(), i)
                );
            }
        }
    }
}

#[test]
fn space_params_size_the_network_and_reject_unknown_keys() {
    let p = Params::parse(&["channels=8", "cells=1", "input=8x8x1"]).unwrap();
    let s = build("nb201", &p).unwrap();
    let net = s.decode(&s.sample(&mut Rng::new(0))).unwrap();
    assert_eq!(net.input_shape(), &[1, 8, 8]);
    let err = build("nb201", &Params::parse(&["chanels=8"]).unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("chanels"));
    assert!(build("nope", &Params::new()).is_err());
    // Small inputs work for every image space.
    for name in ["darts", "macro"] {
        let p = Params::parse(&["input=8x8x1", "classes=10"]).unwrap();
        let s = build(name, &p).unwrap();
        s.decode(&s.sample(&mut Rng::new(3))).unwrap();
    }
}

#[test]
fn cell_graphs_show_every_op_of_the_arch() {
    let nb = Nb201Space::new();
    let arch = nb
        .parse("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
        .unwrap();
    let cells = nb.cells(&arch);
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].nodes.len(), 4);
    let mut edges = cells[0].edges.clone();
    edges.sort();
    assert_eq!(
        edges,
        vec![
            (0, 1, "nor_conv_3x3".to_string()),
            (0, 2, "none".to_string()),
            (0, 3, "skip_connect".to_string()),
            (1, 2, "avg_pool_3x3".to_string()),
            (1, 3, "nor_conv_1x1".to_string()),
            (2, 3, "nor_conv_3x3".to_string()),
        ]
    );

    let darts = DartsSpace::default();
    let a = darts.sample(&mut Rng::new(3));
    let cells = darts.cells(&a);
    assert_eq!(cells.len(), 2);
    let genotype = darts.format(&a);
    for c in &cells {
        assert_eq!(c.edges.len(), 8);
        assert!(c.edges.iter().all(|e| !e.2.is_empty()));
        assert!(c.edges.iter().all(|&(f, t, _)| f < t && t < c.nodes.len()));
        for (_, _, op) in c.edges.iter().filter(|e| !e.2.is_empty()) {
            assert!(genotype.contains(op.as_str()), "{op} not in {genotype}");
        }
    }

    let chain = MacroSpace::default();
    let a = chain.sample(&mut Rng::new(5));
    let g = &chain.cells(&a)[0];
    assert_eq!(g.nodes.len(), 12 + 2);
    let skips = a.values().len() - 2 * 12; // skip choices
    assert!(g.edges.len() >= 13 && g.edges.len() <= 13 + skips);

    let mlp = MlpSpace::default();
    let a = mlp.parse_json(&serde_json::json!({"choices": {"depth": "2", "width_1": "64", "width_2": "128", "activation": "gelu", "dropout": "0.1", "batch_norm": "on"}}));
    let g = &mlp.cells(&a.unwrap())[0];
    assert_eq!(g.nodes.len(), 4, "{:?}", g.nodes);
    assert!(g.nodes[1].contains("linear 64") && g.nodes[1].contains("gelu"));
    assert!(g.nodes[2].contains("batch_norm") && g.nodes[2].contains("dropout 0.1"));
}

#[test]
fn the_nb201_supernet_gives_every_arch_exactly_its_stand_alone_network() {
    let params = Params::parse(&["channels=4", "cells=2", "input=8x8x1"]).unwrap();
    let s = build("nb201", &params).unwrap();
    let sup = s.supernet().unwrap();
    // One mixed module per edge of every cell: 6 edges × 3 stages × 2 cells.
    assert_eq!(sup.mixed().len(), 6 * 3 * 2);
    assert_eq!(sup.options(), &[5; 6]);
    let mut rng = Rng::new(3);
    let mut archs: Vec<Arch> = (0..40).map(|_| s.sample(&mut rng)).collect();
    archs.push(
        s.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
            .unwrap(),
    );
    let convs = s
        .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
        .unwrap();
    archs.push(convs.clone());
    for a in &archs {
        let (sub, origin) = sup.sub_network(a.values()).unwrap();
        assert_eq!(sub, s.decode(a).unwrap(), "{}", s.format(a));
        // Every node comes from its own supernet node, with the same op and weights.
        assert_eq!(origin.len(), sub.nodes().len());
        assert!(origin.windows(2).all(|w| w[0] < w[1]));
        for (k, &o) in origin.iter().enumerate() {
            assert_eq!(sub.nodes()[k].op, sup.spec().nodes()[o].op);
            assert_eq!(sub.node_params(k), sup.spec().node_params(o));
        }
    }
    // The supernet holds every candidate: more weights than the largest arch.
    assert!(sup.spec().params() > s.decode(&convs).unwrap().params());
    for bad in [vec![0u16; 5], vec![5u16; 6]] {
        assert!(sup.sub_network(&bad).is_err(), "{bad:?}");
    }
}

/// The sub-network of `a` in `sup`, checked to be the stand-alone network node for node, each
/// node from a supernet node of its kind, in order, at most as wide and with at most its
/// parameters (a leading slice of a wider layer).
fn sliced_sub_network(s: &dyn Space, sup: &SuperSpec, a: &Arch) -> NetSpec {
    let (sub, origin) = sup.sub_network(a.values()).unwrap();
    assert_eq!(sub, s.decode(a).unwrap(), "{}", s.format(a));
    assert_eq!(origin.len(), sub.nodes().len());
    assert!(origin.windows(2).all(|w| w[0] < w[1]));
    for (k, &o) in origin.iter().enumerate() {
        let (mine, theirs) = (&sub.nodes()[k], &sup.spec().nodes()[o]);
        assert_eq!(mine.op.kind(), theirs.op.kind());
        assert!(sub.node_params(k) <= sup.spec().node_params(o));
        assert!(mine.shape[0] <= theirs.shape[0]);
    }
    sub
}

#[test]
fn the_mlp_supernet_gives_every_arch_exactly_its_stand_alone_network() {
    let params = Params::parse(&["max_depth=3", "widths=8,16,32", "input=5", "classes=3"]).unwrap();
    let s = build("mlp", &params).unwrap();
    let sup = s.supernet().unwrap();
    // Per layer: batch norm, activation, dropout and width modules; then the depth.
    assert_eq!(sup.mixed().len(), 3 * 4 + 1);
    let mut rng = Rng::new(5);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let a = s.sample(&mut rng);
        let sub = sliced_sub_network(s.as_ref(), &sup, &a);
        seen.insert(sub.params());
    }
    assert!(seen.len() > 50, "{} distinct sizes", seen.len());
    // Inactive widths do not matter: the same values but a deeper layer's width give the
    // same network.
    let mut v = vec![0u16; s.choices().len()];
    let base = sup.sub_network(&v).unwrap().0;
    v[3] = 2;
    assert_eq!(sup.sub_network(&v).unwrap().0, base);
}

#[test]
fn the_darts_supernet_gives_every_arch_exactly_its_stand_alone_network() {
    let params = Params::parse(&["channels=4", "layers=3", "input=8x8x1"]).unwrap();
    let s = build("darts", &params).unwrap();
    let sup = s.supernet().unwrap();
    // Per cell and node: an op module per input each slot may take, and the pair choice.
    // Nodes 2..5 have 2..5 earlier states: slot modules 2·(n-1), pair modules 1.
    let per_cell: usize = (2..6).map(|n| 2 * (n - 1) + 1).sum();
    assert_eq!(sup.mixed().len(), 3 * per_cell);
    let mut rng = Rng::new(8);
    for _ in 0..30 {
        let a = s.sample(&mut rng);
        let (sub, origin) = sup.sub_network(a.values()).unwrap();
        assert_eq!(sub, s.decode(&a).unwrap(), "{}", s.format(&a));
        assert_eq!(origin.len(), sub.nodes().len());
        for (k, &o) in origin.iter().enumerate() {
            assert_eq!(sub.nodes()[k].op, sup.spec().nodes()[o].op);
            assert_eq!(sub.node_params(k), sup.spec().node_params(o));
        }
        // A single path computes the sub-network's nodes and no op of an input left unchosen.
        let live = sup.live(a.values()).iter().filter(|&&l| l).count();
        assert!(live >= sub.nodes().len() && live < sup.spec().nodes().len() / 3);
    }
}

#[test]
fn the_macro_supernet_gives_every_arch_exactly_its_stand_alone_network() {
    // A stem narrower than every width, and one as wide as a width: the channel counts a
    // skip input may need projecting between differ.
    for (stem, expected_counts) in [("stem=4", 3), ("stem=8", 2)] {
        let params = Params::parse(&["layers=6", "widths=8,16", stem, "input=8x8x1"]).unwrap();
        let s = build("macro", &params).unwrap();
        let sup = s.supernet().unwrap();
        // A derived channel count per layer and a projection per skip input (layers 2..5
        // read 1..4 earlier layers).
        assert_eq!(sup.derived().len(), 6 + (1 + 2 + 3 + 4));
        assert_eq!(sup.derived()[0].options, expected_counts);
        let mut rng = Rng::new(11);
        let mut projections = 0;
        let mut sizes = std::collections::BTreeSet::new();
        let mut archs: Vec<Arch> = (0..300).map(|_| s.sample(&mut rng)).collect();
        // Every op an identity with every skip on: sums of the stem alone.
        let mut v = vec![0u16; s.choices().len()];
        for l in 0..6 {
            v[s.choices()
                .iter()
                .position(|c| c.name == format!("layer{l}_op"))
                .unwrap()] = 6;
        }
        for (i, c) in s.choices().iter().enumerate() {
            if c.name.contains("_skip") {
                v[i] = 1;
            }
        }
        archs.push(s.canonical(v));
        for a in &archs {
            let alone = sliced_sub_network(s.as_ref(), &sup, a);
            projections += alone
                .nodes()
                .iter()
                .filter(|n| {
                    n.scope.contains("/skip") && matches!(n.op, crate::netspec::Op::Conv2d(_))
                })
                .count();
            sizes.insert(alone.params());
            // A single path computes what the sub-network needs and less than the supernet.
            let live = sup.live(a.values()).iter().filter(|&&l| l).count();
            assert!(live >= alone.nodes().len() && live < sup.spec().nodes().len() / 2);
        }
        assert!(projections > 100, "{projections} projections");
        assert!(sizes.len() > 100, "{} distinct sizes", sizes.len());
        // Elastic: each op's kernel size (3x3 convolutions are the centres of the 5x5 ones,
        // plain and separable), each width; the skips are not.
        use crate::netspec::supernet::Elastic;
        for (c, e) in s.choices().iter().zip(sup.elastic()) {
            let expected = if c.name.ends_with("_op") {
                Some(Elastic::Kernel {
                    grow: vec![1, 1, 3, 3, 4, 5, 6],
                })
            } else if c.name.ends_with("_width") {
                Some(Elastic::Width { largest: 1 })
            } else {
                None
            };
            assert_eq!(e, expected, "{}", c.name);
        }
        // Per layer, a 3x3 convolution and its batch norm, a separable one's two
        // convolutions and batch norm share the 5x5 ones' weights: none of their own.
        let nodes = sup.spec().nodes();
        let shared: Vec<usize> = (0..nodes.len())
            .filter(|&k| sup.shared()[k].is_some())
            .collect();
        assert_eq!(shared.len(), 6 * 5);
        for &k in &shared {
            let source = sup.shared()[k].unwrap();
            assert!(nodes[k].scope.ends_with("_3x3") && nodes[source].scope.ends_with("_5x5"));
            assert_eq!(nodes[k].op.kind(), nodes[source].op.kind());
        }
        // Of their own, the 3x3 convolutions keep a 9 x 9 map of kernel positions each.
        let own: u64 = shared.iter().map(|&k| sup.spec().node_params(k)).sum();
        let maps = 81 * 6 * 2;
        assert_eq!(sup.params(), sup.spec().params() - own + maps);
    }
}

#[test]
fn the_macro_space_with_a_depth_choice_keeps_the_first_layers_and_its_supernet_follows() {
    use crate::netspec::supernet::Elastic;
    // Depths 2 to 6 span both reductions (before layers 2 and 4).
    let params = Params::parse(&[
        "layers=6",
        "min_layers=2",
        "widths=8,16",
        "stem=4",
        "input=8x8x1",
    ])
    .unwrap();
    let s = build("macro", &params).unwrap();
    let depth = s.choices().len() - 1;
    assert_eq!(s.choices()[depth].name, "depth");
    assert_eq!(s.choices()[depth].options.len(), 5);
    let sup = s.supernet().unwrap();
    assert_eq!(sup.elastic()[depth], Some(Elastic::Depth { largest: 4 }));
    let mut rng = Rng::new(3);
    let mut depths = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let a = s.sample(&mut rng);
        let d = 2 + a.values()[depth] as usize;
        let alone = sliced_sub_network(s.as_ref(), &sup, &a);
        // Its layers are the first d, and only their choices matter.
        let layers: std::collections::BTreeSet<&str> = alone
            .nodes()
            .iter()
            .filter_map(|n| n.scope.strip_prefix("layer"))
            .filter_map(|n| n.split('/').next())
            .collect();
        assert_eq!(layers.len(), d, "{}", s.format(&a));
        for (i, c) in s.choices().iter().enumerate() {
            let layer: Option<usize> = c
                .name
                .strip_prefix("layer")
                .and_then(|n| n.split('_').next())
                .and_then(|n| n.parse().ok());
            if layer.is_some_and(|l| l >= d) {
                assert!(!s.is_active(a.values(), i), "{} at depth {d}", c.name);
            }
        }
        depths.insert(d);
    }
    assert_eq!(depths.len(), 5);
    // Without min_layers the space is as before: no depth choice.
    let full = build("macro", &Params::parse(&["layers=6"]).unwrap()).unwrap();
    assert!(full.choices().iter().all(|c| c.name != "depth"));
    let e = build(
        "macro",
        &Params::parse(&["layers=6", "min_layers=7"]).unwrap(),
    )
    .err();
    assert!(e.unwrap().to_string().contains("min_layers"));
}

#[test]
fn the_macro_space_with_stage_depths_keeps_each_stages_first_layers_and_its_supernet_follows() {
    use crate::netspec::supernet::Elastic;
    use std::collections::BTreeSet;
    // Three stages of three layers (reductions before layers 3 and 6), each keeping 1 to 3.
    let params = Params::parse(&[
        "layers=9",
        "min_stage_layers=1",
        "widths=8,16",
        "stem=4",
        "input=8x8x1",
    ])
    .unwrap();
    let s = build("macro", &params).unwrap();
    let n = s.choices().len();
    let stage: Vec<usize> = (n - 3..n).collect();
    let sup = s.supernet().unwrap();
    for (k, &c) in stage.iter().enumerate() {
        assert_eq!(s.choices()[c].name, format!("stage{k}_depth"));
        assert_eq!(s.choices()[c].options, ["1", "2", "3"]);
        assert_eq!(sup.elastic()[c], Some(Elastic::Depth { largest: 2 }));
    }
    let choice = |name: &str| s.choices().iter().position(|c| c.name == name).unwrap();
    let mut rng = Rng::new(7);
    let mut seen = BTreeSet::new();
    for _ in 0..300 {
        let a = s.sample(&mut rng);
        let v = a.values();
        let alone = sliced_sub_network(s.as_ref(), &sup, &a);
        let keeps: Vec<usize> = stage.iter().map(|&c| 1 + v[c] as usize).collect();
        // Its layers are the first of each stage, and only their choices matter.
        let layers: BTreeSet<usize> = alone
            .nodes()
            .iter()
            .filter_map(|n| n.scope.strip_prefix("layer"))
            .filter_map(|n| n.split('/').next()?.parse().ok())
            .collect();
        let kept: BTreeSet<usize> = (0..3).flat_map(|t| 3 * t..3 * t + keeps[t]).collect();
        assert_eq!(layers, kept, "{}", s.format(&a));
        for l in 0..9 {
            let op = choice(&format!("layer{l}_op"));
            assert_eq!(
                s.is_active(v, op),
                kept.contains(&l),
                "layer {l} of {keeps:?}"
            );
        }
        // The cell diagram: the stem, a node per kept layer, the head.
        assert_eq!(s.cells(&a)[0].nodes.len(), kept.len() + 2);
        seen.insert(keeps);
    }
    assert_eq!(seen.len(), 27);
    // A stage that keeps one layer ends with it: the next stage's first layer reads it, and
    // its skip input from it would add it twice, so there is none.
    let mut v = vec![0u16; n];
    v[choice("layer3_skip0")] = 1;
    v[choice("layer3_skip1")] = 1;
    // (The supernet follows the same rule for values that are not canonical.)
    let net = s.decode(&s.arch_from_values(&v).unwrap()).unwrap();
    assert_eq!(sup.sub_network(&v).unwrap().0, net);
    let skips: Vec<&str> = net
        .nodes()
        .iter()
        .filter_map(|n| n.scope.strip_prefix("layer3/"))
        .filter(|n| n.starts_with("skip"))
        .collect();
    assert!(skips.is_empty(), "{skips:?}");
    assert!(!s.is_active(&v, choice("layer3_skip0")));
    assert!(!s.is_active(&v, choice("layer3_skip1")));
    // Kept two: the skip from layer 0 is a real input, the one from layer 1 is the main one.
    v[stage[0]] = 1;
    let net = s.decode(&s.arch_from_values(&v).unwrap()).unwrap();
    assert_eq!(sup.sub_network(&v).unwrap().0, net);
    assert!(net.nodes().iter().any(|n| n.scope == "layer3/skip0"));
    assert!(!net
        .nodes()
        .iter()
        .any(|n| n.scope.starts_with("layer3/skip1")));
    assert!(s.is_active(&v, choice("layer3_skip0")));
    assert!(!s.is_active(&v, choice("layer3_skip1")));
    assert_eq!(s.params_json()["min_stage_layers"], 1);
    // One depth rule at a time, and a table the supernet can hold.
    let e = build(
        "macro",
        &Params::parse(&["layers=9", "min_layers=3", "min_stage_layers=2"]).unwrap(),
    )
    .err();
    assert!(e.unwrap().to_string().contains("not both"));
    let e = build(
        "macro",
        &Params::parse(&["layers=90", "min_stage_layers=1", "widths=8,16,32,64,128"]).unwrap(),
    )
    .err();
    assert!(e.unwrap().to_string().contains("raise min_stage_layers"));
    // Without it the space's description is as before.
    let plain = build("macro", &Params::parse(&["layers=9"]).unwrap()).unwrap();
    assert!(plain.params_json().get("min_stage_layers").is_none());
}

#[test]
fn spaces_without_a_supernet_say_so() {
    for s in all_spaces()
        .iter()
        .filter(|s| !["nb201", "mlp", "darts", "macro"].contains(&s.name()))
    {
        let e = s.supernet().unwrap_err().to_string();
        assert!(e.contains("has no supernet yet"), "{}: {e}", s.name());
    }
}

#[test]
fn nb201_cells_fall_into_functional_classes() {
    use super::cell_class;
    let s = build("nb201", &Params::new()).unwrap();
    let class = |text: &str| {
        let a = s.parse(text).unwrap();
        cell_class(a.values().try_into().unwrap())
    };
    // Sums are unordered and a skip connection is its input: the two nodes' orders agree.
    assert_eq!(
        class("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"),
        class("|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"),
    );
    assert_eq!(
        class("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"),
        class("|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"),
    );
    // Another op, or the op on another input, is another class.
    assert_ne!(
        class("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"),
        class("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"),
    );
    // The 15,625 cells fall into 6,466 classes, NAS-Bench-201's count of unique cells.
    let mut classes = std::collections::BTreeSet::new();
    for k in 0..5u32.pow(6) {
        let mut v = [0u16; 6];
        for (e, x) in v.iter_mut().enumerate() {
            *x = ((k / 5u32.pow(e as u32)) % 5) as u16;
        }
        classes.insert(cell_class(&v));
    }
    assert_eq!(classes.len(), 6466);
}
