#!/usr/bin/env python3
"""Runs nasforge's exported ONNX models in onnxruntime and compares with nasforge's outputs.

Usage: onnx_check.py MANIFEST.json

The manifest is a list of cases, each
  {"name": str, "model": path.onnx, "input": path.f32, "input_shape": [N, ...],
   "expected": path.f32, "expected_shape": [N, K], "tol": 1e-4}
where the .f32 files hold raw little-endian float32 values in row-major order. Each model is
checked with onnx.checker when the onnx package is installed, run on the input, and its
`output` compared with the expected values; a `probabilities` output, when present, must be
the softmax of `output` (over each run of `softmax_groups` consecutive values of a row when the
case gives it — a language model's logits per position — else over the whole row). Prints one line per case with the largest absolute difference and
exits 1 if any case is off by more than its tolerance (or fails to load or run).
"""

import json
import sys

import numpy as np
import onnxruntime as ort

try:
    import onnx
except ImportError:  # the checker is optional; onnxruntime is what must agree
    onnx = None


def read_f32(path, shape):
    data = np.fromfile(path, dtype="<f4")
    return data.reshape(shape)


def check(case):
    name = case["name"]
    if onnx is not None:
        onnx.checker.check_model(onnx.load(case["model"]), full_check=True)
    sess = ort.InferenceSession(case["model"], providers=["CPUExecutionProvider"])
    x = read_f32(case["input"], case["input_shape"])
    want = read_f32(case["expected"], case["expected_shape"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, {"input": x})))
    got = outs["output"]
    if got.shape != want.shape:
        print(f"{name}: output shape {got.shape}, expected {want.shape}")
        return False
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    scale = float(np.max(np.abs(want)))
    ok = diff <= case.get("tol", 1e-4) and np.all(np.isfinite(got))
    line = f"{name}: max_abs_diff {diff:.3e} (max |output| {scale:.3e}, shape {list(got.shape)})"
    if "probabilities" in outs:
        k = case.get("softmax_groups", got.shape[1])
        z = got.astype(np.float64).reshape(got.shape[0], -1, k)
        e = np.exp(z - z.max(axis=2, keepdims=True))
        soft = (e / e.sum(axis=2, keepdims=True)).reshape(got.shape)
        pdiff = float(np.max(np.abs(outs["probabilities"] - soft)))
        line += f", probabilities vs softmax {pdiff:.1e}"
        ok = ok and pdiff <= 1e-5
    print(line + ("" if ok else "  MISMATCH"))
    return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    ok = True
    for case in cases:
        try:
            ok = check(case) and ok
        except Exception as e:  # a model that does not load or run is a failure, with its reason
            print(f"{case['name']}: FAILED: {type(e).__name__}: {e}")
            ok = False
    print(f"onnx_check: {len(cases)} case(s), {'all match' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
