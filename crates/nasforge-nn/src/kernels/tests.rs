//! Every kernel against burn's own path (the composite ops of `flex`, through the same autodiff
//! engine) and the convolution against a naive float64 reference, forward and all gradients,
//! on random shapes: odd sizes, stride 2, padding 0/1/2, 1×1, 3×3 and 5×5 kernels, dilation,
//! batch 1.
//!
//! Tolerance: |ours − reference| ≤ 1e-4 · max(1, max |reference|) per tensor (float32 sums of
//! up to a few hundred products against float64 or against another float32 order).

use super::*;
use burn::nn::conv::Conv2dConfig;
use burn::nn::BatchNormConfig;

/// xorshift64*: the tests' only randomness, fixed seeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .collect()
    }
}

fn dev() -> Device {
    Device::flex().autodiff()
}

fn tensor<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), &dev())
}

fn data<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

fn assert_close(what: &str, ours: &[f32], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{what}: max |diff| {worst} exceeds {} (scale {scale})",
        1e-4 * scale
    );
}

/// A random convolution geometry the kernel covers.
fn random_conv(rng: &mut Rng) -> ConvGeom {
    loop {
        let k = rng.pick(&[1, 1, 3, 3, 3, 2, 5]);
        let p = rng.pick(&[0, 1, 1, 2]);
        let g = ConvGeom {
            batch: rng.pick(&[1, 1, 2, 3, 5]),
            in_c: 1 + rng.below(5),
            h: 1 + rng.below(9),
            w: 1 + rng.below(9),
            out_c: 1 + rng.below(6),
            kh: k,
            kw: if rng.below(4) == 0 {
                rng.pick(&[1, 3])
            } else {
                k
            },
            stride: [rng.pick(&[1, 1, 2]); 2],
            padding: [(p, p); 2],
            dilation: [rng.pick(&[1, 1, 1, 2]); 2],
        };
        if g.out_hw().is_some() {
            return g;
        }
    }
}

/// Naive float64 convolution: (output, dx, dweight, dbias) for the output gradient `dy`.
#[allow(clippy::type_complexity)]
fn naive_conv(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (oh, ow) = g.out_hw().unwrap();
    let mut out = vec![0f64; g.batch * g.out_c * oh * ow];
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; w.len()];
    let mut db = vec![0f64; b.len()];
    for n in 0..g.batch {
        for co in 0..g.out_c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = ((n * g.out_c + co) * oh + oy) * ow + ox;
                    let mut s = b[co] as f64;
                    db[co] += dy[o] as f64;
                    for ci in 0..g.in_c {
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let iy = (oy * g.stride[0] + ki * g.dilation[0]) as isize
                                    - g.padding[0].0 as isize;
                                let ix = (ox * g.stride[1] + kj * g.dilation[1]) as isize
                                    - g.padding[1].0 as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi =
                                    ((n * g.in_c + ci) * g.h + iy as usize) * g.w + ix as usize;
                                let wi = ((co * g.in_c + ci) * g.kh + ki) * g.kw + kj;
                                s += x[xi] as f64 * w[wi] as f64;
                                dx[xi] += dy[o] as f64 * w[wi] as f64;
                                dw[wi] += dy[o] as f64 * x[xi] as f64;
                            }
                        }
                    }
                    out[o] = s;
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f(out), f(dx), f(dw), f(db))
}

/// Output and gradients of Σ out·r through the autodiff engine: ours or burn's.
fn conv_run(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    r: &[f32],
    ours: bool,
) -> Vec<Vec<f32>> {
    let (oh, ow) = g.out_hw().unwrap();
    let xt = tensor(x, [g.batch, g.in_c, g.h, g.w]).require_grad();
    let wt = tensor(w, [g.out_c, g.in_c, g.kh, g.kw]).require_grad();
    let bt = b.map(|b| tensor(b, [g.out_c]).require_grad());
    let options = ConvOptions::new_with_padding(g.stride, g.padding, g.dilation, 1);
    let out = if ours {
        Tensor::<4>::from_dispatch(match bt.clone() {
            Some(bt) => <Dispatch as KernelOps>::kernel_conv2d(
                xt.clone().into_dispatch(),
                wt.clone().into_dispatch(),
                bt.into_dispatch(),
                options,
            ),
            None => <Dispatch as KernelOps>::kernel_conv2d_no_bias(
                xt.clone().into_dispatch(),
                wt.clone().into_dispatch(),
                options,
            ),
        })
    } else {
        burn::tensor::module::conv2d(xt.clone(), wt.clone(), bt.clone(), options)
    };
    let rt = tensor(r, [g.batch, g.out_c, oh, ow]);
    let grads = (out.clone() * rt).sum().backward();
    let mut v = vec![
        data(out),
        data(xt.grad(&grads).unwrap()),
        data(wt.grad(&grads).unwrap()),
    ];
    if let Some(bt) = bt {
        v.push(data(bt.grad(&grads).unwrap()));
    }
    v
}

#[test]
fn convolution_matches_burn_and_a_naive_reference_on_random_shapes() {
    let mut rng = Rng(0x5eed_c04a);
    let mut seen = [false; 8];
    // 40 random shapes (small: the kernels run them on the calling thread), then two large
    // enough to run over the thread pool.
    let large = |stride: usize| ConvGeom {
        batch: 9,
        in_c: 8,
        h: 17,
        w: 19,
        out_c: 12,
        kh: 3,
        kw: 3,
        stride: [stride; 2],
        padding: [(1, 1); 2],
        dilation: [1, 1],
    };
    for case in 0..42 {
        let g = match case {
            40 => large(1),
            41 => large(2),
            _ => random_conv(&mut rng),
        };
        let (oh, ow) = g.out_hw().unwrap();
        let x = rng.values(g.batch * g.in_c * g.h * g.w);
        let w = rng.values(g.out_c * g.in_c * g.kh * g.kw);
        let b = rng.values(g.out_c);
        let r = rng.values(g.batch * g.out_c * oh * ow);
        let with_bias = case % 3 != 0;
        let bias = with_bias.then_some(&b[..]);
        let ours = conv_run(&g, &x, &w, bias, &r, true);
        let burn = conv_run(&g, &x, &w, bias, &r, false);
        let zeros = vec![0f32; g.out_c];
        let naive = naive_conv(&g, &x, &w, if with_bias { &b } else { &zeros }, &r);
        let reference = [naive.0, naive.1, naive.2, naive.3];
        for (i, name) in ["output", "dx", "dweight", "dbias"].iter().enumerate() {
            if i < ours.len() {
                let what = format!("case {case} {g:?} {name}");
                assert_close(&format!("{what} vs naive"), &ours[i], &reference[i]);
                assert_close(&format!("{what} vs burn"), &ours[i], &burn[i]);
            }
        }
        seen[0] |= g.batch == 1;
        seen[1] |= g.stride[0] == 2;
        seen[2] |= g.kh == 1 && g.kw == 1;
        seen[3] |= g.kh == 3 && g.padding[0].0 == 1;
        // The stride-1 row copies: the widths with a constant row length and another one.
        let row_copies = g.stride == [1, 1] && g.kh * g.kw > 1;
        for (i, width) in [2, 4, 8].into_iter().enumerate() {
            seen[4 + i] |= row_copies && ow == width;
        }
        seen[7] |= row_copies && ow % 2 == 1 && ow > 1;
    }
    assert_eq!(
        seen, [true; 8],
        "the shapes cover batch 1, stride 2, 1×1, 3×3 padding 1, and stride-1 kernels with \
         outputs 2, 4, 8 and an odd number wide"
    );
}

#[test]
fn convolution_module_and_its_fallbacks_agree_with_burn() {
    let d = dev();
    let x = tensor(&Rng(3).values(2 * 4 * 7 * 7), [2, 4, 7, 7]);
    // Covered (explicit padding), and three fallbacks: grouped, `Same` padding, 5×5 stride 3.
    let convs = [
        Conv2dConfig::new([4, 6], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        Conv2dConfig::new([4, 6], [3, 3]).with_padding(PaddingConfig2d::Same),
        Conv2dConfig::new([4, 6], [5, 5])
            .with_stride([3, 3])
            .with_padding(PaddingConfig2d::Explicit(2, 1, 2, 1)),
    ];
    for cfg in convs {
        let conv = cfg.init(&d);
        let ours = data(conv2d(&conv, x.clone()));
        let burn = data(conv.forward(x.clone()));
        assert_close(&format!("{cfg:?}"), &ours, &burn);
    }
}

#[test]
fn batch_norm_matches_burn_in_training_and_inference() {
    let mut rng = Rng(0xb47c);
    let mut batch_one = false;
    for case in 0..24 {
        let four = case % 4 != 0;
        let (n, c) = (
            if case == 7 { 1 } else { 1 + rng.below(6) },
            1 + rng.below(5),
        );
        batch_one |= n == 1;
        let (h, w) = (1 + rng.below(7), 1 + rng.below(7));
        let len = if four { n * c * h * w } else { n * c };
        // An offset makes the mean large against the spread, as after a ReLU or a bias.
        let shift = if case % 5 == 0 { 50.0 } else { 0.0 };
        let x: Vec<f32> = rng.values(len).iter().map(|v| v + shift).collect();
        let gamma = rng.values(c);
        let beta = rng.values(c);
        let r = rng.values(len);
        let run = |ours: bool| -> Vec<Vec<f32>> {
            let xt = if four {
                tensor(&x, [n, c, h, w]).reshape([n as i64, c as i64, -1])
            } else {
                tensor(&x, [n, c]).reshape([n as i64, c as i64, 1])
            }
            .require_grad();
            let gt = tensor(&gamma, [c]).require_grad();
            let bt = tensor(&beta, [c]).require_grad();
            let (out, mean, var) = if ours {
                let (o, m, v) = <Dispatch as KernelOps>::kernel_batch_norm_train(
                    xt.clone().into_dispatch(),
                    gt.clone().into_dispatch(),
                    bt.clone().into_dispatch(),
                    1e-5,
                );
                (
                    Tensor::<3>::from_dispatch(o),
                    Tensor::<1>::from_dispatch(m),
                    Tensor::<1>::from_dispatch(v),
                )
            } else {
                let o = burn::tensor::module::batch_norm_train(
                    xt.clone(),
                    gt.clone(),
                    bt.clone(),
                    1e-5,
                );
                (o.output, o.mean, o.variance)
            };
            let rt = tensor(&r, [len]).reshape(out.dims());
            let grads = (out.clone() * rt).sum().backward();
            vec![
                data(out),
                data(mean),
                data(var),
                data(xt.grad(&grads).unwrap()),
                data(gt.grad(&grads).unwrap()),
                data(bt.grad(&grads).unwrap()),
            ]
        };
        let (ours, burn) = (run(true), run(false));
        for (i, name) in ["output", "mean", "variance", "dx", "dgamma", "dbeta"]
            .iter()
            .enumerate()
        {
            assert_close(
                &format!("case {case} [{n},{c},{h},{w}] four={four} {name}"),
                &ours[i],
                &burn[i],
            );
        }
    }
    assert!(batch_one, "the shapes include batch 1");
}

#[test]
fn batch_norm_module_updates_running_statistics_as_burn_does() {
    let d = dev();
    let x = tensor(&Rng(11).values(4 * 3 * 5 * 5), [4, 3, 5, 5]);
    let ours = BatchNormConfig::new(3).init(&d);
    let burn = BatchNormConfig::new(3).init(&d);
    for _ in 0..3 {
        assert_close(
            "train output",
            &data(batch_norm(&ours, x.clone())),
            &data(burn.forward(x.clone())),
        );
    }
    assert_close(
        "running mean",
        &data(ours.running_mean.value()),
        &data(burn.running_mean.value()),
    );
    assert_close(
        "running var",
        &data(ours.running_var.value()),
        &data(burn.running_var.value()),
    );
    // Inference (no autodiff): the running statistics.
    let (ours, burn) = (ours.valid(), burn.valid());
    let xi = x.clone().inner();
    assert_close(
        "inference output",
        &data(batch_norm(&ours, xi.clone())),
        &data(burn.forward(xi)),
    );
}

#[test]
fn average_pooling_matches_burn_on_random_shapes() {
    let mut rng = Rng(0x9001);
    let mut seen = [false; 4];
    for case in 0..30 {
        let kernel = rng.pick(&[1, 2, 3, 3, 3]);
        let padding = if kernel >= 2 { rng.pick(&[0, 1]) } else { 0 };
        let stride = rng.pick(&[1, 1, 2]);
        let count_include_pad = case % 2 == 0;
        let (n, c) = (
            if case == 5 { 1 } else { 1 + rng.below(4) },
            1 + rng.below(4),
        );
        let (h, w) = (kernel + rng.below(8), kernel + rng.below(8));
        seen[0] |= n == 1;
        seen[1] |= stride == 2;
        seen[2] |= kernel == 3 && padding == 1 && stride == 1;
        seen[3] |= padding == 0 && (h % 2 == 1 || w % 2 == 1);
        let x = rng.values(n * c * h * w);
        let run = |ours: bool| -> Vec<Vec<f32>> {
            let xt = tensor(&x, [n, c, h, w]).require_grad();
            let out = if ours {
                Tensor::<4>::from_dispatch(<Dispatch as KernelOps>::kernel_avg_pool2d(
                    xt.clone().into_dispatch(),
                    [kernel; 2],
                    [stride; 2],
                    [padding; 2],
                    count_include_pad,
                ))
            } else {
                burn::tensor::module::avg_pool2d(
                    xt.clone(),
                    AvgPoolOptions::new([kernel, kernel])
                        .with_stride([stride, stride])
                        .with_padding([padding, padding])
                        .with_count_include_pad(count_include_pad),
                )
            };
            let r = Rng(case as u64 + 1).values(out.dims().iter().product());
            let rt = tensor(&r, [r.len()]).reshape(out.dims());
            let grads = (out.clone() * rt).sum().backward();
            vec![data(out), data(xt.grad(&grads).unwrap())]
        };
        let (ours, burn) = (run(true), run(false));
        let what = format!(
            "case {case} [{n},{c},{h},{w}] k{kernel} s{stride} p{padding} incl={count_include_pad}"
        );
        assert_close(&format!("{what} output"), &ours[0], &burn[0]);
        assert_close(&format!("{what} dx"), &ours[1], &burn[1]);
    }
    assert_eq!(
        seen, [true; 4],
        "batch 1, stride 2, 3×3 padding 1, odd sizes unpadded"
    );
}

#[test]
fn kernels_are_deterministic_run_to_run() {
    let mut rng = Rng(77);
    let g = ConvGeom {
        batch: 37,
        in_c: 5,
        h: 9,
        w: 11,
        out_c: 7,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        padding: [(1, 1); 2],
        dilation: [1, 1],
    };
    let (oh, ow) = g.out_hw().unwrap();
    let x = rng.values(g.batch * g.in_c * g.h * g.w);
    let w = rng.values(g.out_c * g.in_c * 9);
    let dy = rng.values(g.batch * g.out_c * oh * ow);
    let first = conv::backward(&x, &w, &dy, &g, [true; 3]);
    for _ in 0..3 {
        let again = conv::backward(&x, &w, &dy, &g, [true; 3]);
        assert_eq!(first.weight, again.weight);
        assert_eq!(first.x, again.x);
        assert_eq!(first.bias, again.bias);
    }
}

#[test]
fn a_batch_norm_folded_into_its_convolution_matches_the_two_ops_at_inference() {
    use burn::module::Param;
    let dev = Device::flex();
    let plain = |v: Vec<f32>, n: usize| Tensor::<1>::from_data(TensorData::new(v, [n]), &dev);
    let mut rng = Rng(21);
    for (k, pad, stride, bias) in [
        (3, 1, 1, false),
        (1, 0, 1, true),
        (3, 1, 2, false),
        (5, 2, 1, true),
    ] {
        let conv = Conv2dConfig::new([5, 7], [k, k])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_stride([stride, stride])
            .with_bias(bias)
            .init(&dev);
        let mut bn = BatchNormConfig::new(7).init(&dev);
        bn.gamma = Param::from_tensor(plain(rng.values(7), 7));
        bn.beta = Param::from_tensor(plain(rng.values(7), 7));
        bn.running_mean.update(plain(rng.values(7), 7));
        let var = rng.values(7).iter().map(|v| v.abs() + 0.1).collect();
        bn.running_var.update(plain(var, 7));
        let x = Tensor::<4>::from_data(
            TensorData::new(rng.values(3 * 5 * 9 * 11), [3, 5, 9, 11]),
            &dev,
        );
        let fused = conv2d_batch_norm(&conv, &bn, &x).expect("applies at inference on flex");
        let two_ops = bn.forward(conv.forward(x));
        assert_close(
            &format!("k{k} p{pad} s{stride} bias={bias}"),
            &data(fused),
            &data(two_ops),
        );
    }
    // In training (an autodiff device) the two ops run: the norm needs the batch's statistics.
    let conv = Conv2dConfig::new([2, 3], [3, 3]).init(&dev.clone().autodiff());
    let bn = BatchNormConfig::new(3).init(&dev.clone().autodiff());
    assert!(conv2d_batch_norm(&conv, &bn, &tensor(&[0.5; 2 * 25], [1, 2, 5, 5])).is_none());
}

#[test]
fn self_attention_matches_burn_forward_and_backward() {
    let mut rng = Rng(0xA77E);
    let mut seen = [false; 4];
    for case in 0..24 {
        let heads = rng.pick(&[1, 2, 4]);
        let dh = rng.pick(&[1, 3, 8]);
        let d = heads * dh;
        let n = if case == 3 { 1 } else { 1 + rng.below(3) };
        let t = if case == 5 { 1 } else { 1 + rng.below(17) };
        let causal = case % 2 == 1;
        seen[0] |= n == 1;
        seen[1] |= t == 1;
        seen[2] |= causal && heads > 1;
        seen[3] |= t > 8;
        // Scores of a few units, so that the softmax is far from uniform.
        let x: Vec<f32> = rng.values(n * t * 3 * d).iter().map(|v| 3.0 * v).collect();
        let run = |ours: bool| -> Vec<Vec<f32>> {
            let xt = tensor(&x, [n, t, 3 * d]).require_grad();
            let out = if ours {
                Tensor::<3>::from_dispatch(<Dispatch as KernelOps>::kernel_self_attention(
                    xt.clone().into_dispatch(),
                    heads,
                    causal,
                ))
            } else {
                Tensor::<3>::from_dispatch(burn_self_attention::<Dispatch>(
                    xt.clone().into_dispatch(),
                    heads,
                    causal,
                ))
            };
            let r = Rng(case as u64 + 7).values(n * t * d);
            let rt = tensor(&r, [n, t, d]);
            let grads = (out.clone() * rt).sum().backward();
            vec![data(out), data(xt.grad(&grads).unwrap())]
        };
        let (ours, burn) = (run(true), run(false));
        let what = format!("case {case} [{n},{t},{d}] heads {heads} causal {causal}");
        assert_close(&format!("{what} output"), &ours[0], &burn[0]);
        assert_close(&format!("{what} dqkv"), &ours[1], &burn[1]);
        // Inference (no autodiff) runs the same forward kernel.
        let plain =
            Tensor::<3>::from_data(TensorData::new(x.clone(), [n, t, 3 * d]), &Device::flex());
        let inference = data(Tensor::<3>::from_dispatch(
            <Dispatch as KernelOps>::kernel_self_attention(plain.into_dispatch(), heads, causal),
        ));
        assert_eq!(
            inference, ours[0],
            "{what}: inference and training forward differ"
        );
    }
    assert_eq!(
        seen, [true; 4],
        "batch 1, length 1, causal multi-head, long"
    );
}

#[test]
fn gelu_matches_burn_forward_and_backward() {
    // Long enough to be split over the pool, with values out to ±6.
    let n = 3 * (1 << 14) + 5;
    let x: Vec<f32> = Rng(0x6E1).values(n).iter().map(|v| 6.0 * v).collect();
    let dy = Rng(0x6E2).values(n);
    let run = |ours: bool| -> Vec<Vec<f32>> {
        let xt = tensor(&x, [n]).require_grad();
        let out = if ours {
            Tensor::<1>::from_dispatch(<Dispatch as KernelOps>::kernel_gelu(
                xt.clone().into_dispatch(),
            ))
        } else {
            burn::tensor::activation::gelu(xt.clone())
        };
        let grads = (out.clone() * tensor(&dy, [n])).sum().backward();
        vec![data(out), data(xt.grad(&grads).unwrap())]
    };
    let (ours, burn) = (run(true), run(false));
    assert_close("gelu output", &ours[0], &burn[0]);
    assert_close("gelu dx", &ours[1], &burn[1]);
}

#[test]
fn linear_matches_burn_forward_and_backward() {
    use burn::nn::LinearConfig;
    let mut rng = Rng(0x11EA);
    for case in 0..12 {
        let (mut k, mut n) = (1 + rng.below(40), 1 + rng.below(40));
        let mut lead = [
            1 + rng.below(4),
            if case % 3 == 0 { 1 } else { 1 + rng.below(30) },
        ];
        if case == 1 {
            // Large enough for the AVX-512 product where the CPU has it.
            (k, n, lead) = (96, 80, [2, 300]);
        }
        let bias = case % 4 != 1;
        let layer = LinearConfig::new(k, n).with_bias(bias).init(&dev());
        let x = rng.values(lead[0] * lead[1] * k);
        let run = |ours: bool| -> Vec<Vec<f32>> {
            let xt = tensor(&x, [lead[0], lead[1], k]).require_grad();
            let out = if ours {
                linear(&layer, xt.clone())
            } else {
                layer.forward(xt.clone())
            };
            let r = Rng(case as u64 + 3).values(lead[0] * lead[1] * n);
            let grads = (out.clone() * tensor(&r, [lead[0], lead[1], n]))
                .sum()
                .backward();
            let mut v = vec![
                data(out),
                data(xt.grad(&grads).unwrap()),
                data(layer.weight.grad(&grads).unwrap()),
            ];
            if let Some(b) = &layer.bias {
                v.push(data(b.grad(&grads).unwrap()));
            }
            v
        };
        let (ours, burn) = (run(true), run(false));
        let what = format!("case {case} [{lead:?}, {k}] -> {n} bias {bias}");
        for (name, (a, b)) in ["output", "dx", "dweight", "dbias"]
            .iter()
            .zip(ours.iter().zip(&burn))
        {
            assert_close(&format!("{what} {name}"), a, b);
        }
        assert_eq!(ours.len(), burn.len());
    }
}

#[test]
fn layer_norm_matches_burn_forward_and_backward() {
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    let mut rng = Rng(0x1A7E);
    // Rows across several fixed blocks and both sides of the parallel threshold; one row; an
    // offset mean that a one-pass variance would lose.
    let cases = [(1, 5), (7, 32), (65, 16), (300, 64), (129, 128), (3, 1)];
    for (case, &(rows, width)) in cases.iter().enumerate() {
        let mut ln = LayerNormConfig::new(width).init(&dev());
        ln.gamma = Param::from_tensor(tensor(&rng.values(width), [width]));
        ln.beta = Some(Param::from_tensor(tensor(&rng.values(width), [width])));
        let offset = if case == 4 { 100.0 } else { 0.0 };
        let x: Vec<f32> = rng
            .values(rows * width)
            .iter()
            .map(|v| 3.0 * v + offset)
            .collect();
        let dy = rng.values(rows * width);
        let (lead, t) = (
            if rows % 3 == 0 { 3 } else { 1 },
            rows / if rows % 3 == 0 { 3 } else { 1 },
        );
        let run = |ours: bool| -> Vec<Vec<f32>> {
            let xt = tensor(&x, [lead, t, width]).require_grad();
            let out = if ours {
                layer_norm(&ln, xt.clone(), 1e-5)
            } else {
                ln.forward(xt.clone())
            };
            let grads = (out.clone() * tensor(&dy, [lead, t, width]))
                .sum()
                .backward();
            vec![
                data(out),
                data(xt.grad(&grads).unwrap()),
                data(ln.gamma.grad(&grads).unwrap()),
                data(ln.beta.as_ref().unwrap().grad(&grads).unwrap()),
            ]
        };
        let (ours, burn) = (run(true), run(false));
        let what = format!("case {case} [{rows}, {width}]");
        for (name, (a, b)) in ["output", "dx", "dgamma", "dbeta"]
            .iter()
            .zip(ours.iter().zip(&burn))
        {
            assert_close(&format!("{what} {name}"), a, b);
        }
        assert_eq!(ours, run(true), "{what}: not deterministic");
    }
}
