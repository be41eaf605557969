#!/usr/bin/env python3
"""Step-by-step parity of fer_gpu (CPU backend) with Keras itself (Keras 3 on TensorFlow CPU).

  python3 bench/keras_parity/keras_parity.py model  [--configs configs/*.toml] [--steps 5] [--n 64]
  python3 bench/keras_parity/keras_parity.py augment
  python3 bench/keras_parity/keras_parity.py all --json bench/results/keras_parity.json

Needs: the parity_dump tool (built with the project: build/bench/parity_dump, or --dump PATH),
TensorFlow/Keras, scipy, and for the augmentation check keras_preprocessing 1.1.2 (the version the
original project used). Install, outside the repository:
    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu scipy keras_preprocessing==1.1.2
Not run by CI (it needs TensorFlow and takes minutes).

model: for each config, the same batch (--n training rows, a fixed permutation, of the bundled real sample,
data/sample/fer2013_sample.csv, or --data) and the same initial weights: parity_dump initialises
fer_gpu's graph from --seed and writes its parameters; they are loaded into the Keras model built
by bench/peers/keras_peer.py (conv kernels OHWI -> HWIO; dense kernels [in, out] as they are; BN
gamma, beta, moving mean and variance; Flatten is (H, W, C) in both). Then --steps training steps on
that batch in both, each compared: the training forward's softmax output, the loss, every
gradient; after the steps the weights, BN moving statistics and an inference forward.
Dropout: the mask fer_gpu drew (Philox) in each step is INJECTED into Keras (the Dropout layer is
replaced by a multiplication with fer_gpu's mask, whose kept values are 1/(1-rate)), so dropout's
masking and scaling in forward and backward are part of what is compared; Keras' own Dropout uses
the same inverted scaling (checked separately: its kept values are x/(1-rate)).

augment: the same images warped by fer_gpu (parity_dump augment) and by
ImageDataGenerator.apply_transform with the same parameters (shear in degrees, zx, zy,
flip_horizontal), both rescaled by 1/255, for keras_preprocessing 1.1.2 (original) and the
ImageDataGenerator of the installed Keras 3; reports the differences over the whole image and on
the 1-pixel border, and what the centre convention changes.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import common  # noqa: E402

# Tolerances (float32 in both; different summation orders: oneDNN/Eigen in TensorFlow, OpenBLAS/
# oneDNN/im2col in fer_gpu). Relative L2 = ||fer - keras|| / ||keras||.
TOL = {
    "vs_keras32_factor": 4.0,   # fer_gpu's error vs float64 Keras <= 4 x Keras float32's own error + floor
    "probs_floor": 1e-6,        # softmax outputs, max abs
    "loss_floor": 1e-6,         # mean cross-entropy, abs, per unit of loss (x max(1, loss))
    "grad_floor": 1e-5,         # per-tensor relative L2 of the gradient
    "state_rel": 1e-5,          # BN moving mean/variance after a step: max |diff| / max(|float64 Keras|, 1e-3)
    "adam_abs": 1e-6,           # weights after Keras' Adam on fer_gpu's gradients vs fer_gpu's, max abs
    "zero_grad_noise": 1e-6,    # floor for |gradient| / |whole gradient| of tensors whose exact gradient is 0
    "near_tie": 1e-6,           # max-pool runner-up within this fraction of the layer's largest value
    "grad_tie_routing": 1e-2,   # relative L2 when the batch has exactly tied max-pool windows (see below)    # |gradient| / |whole gradient| of tensors whose exact gradient is 0
}


def default_dump():
    for p in (os.path.join(ROOT, "build", "bench", "parity_dump"),):
        if os.path.exists(p):
            return p
    return "parity_dump"


def sample_batch(cfg, path, n):
    xt, yt, _, _ = common.load_real_data(cfg, path)
    if len(xt) < n:
        sys.exit("%s has only %d training rows for %s; --n %d" % (path, len(xt), cfg["name"], n))
    pick = np.random.default_rng(0).permutation(len(xt))[:n]  # the sample's rows are grouped by class
    return np.ascontiguousarray(xt[pick]), yt[pick].astype(np.int32)


def rel_l2(a, b):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / den) if den > 0 else float(np.linalg.norm(a - b))


def keras_layout(kind, arr, shape):
    """fer_gpu parameter (flat slice, fer shape) -> Keras array."""
    a = np.asarray(arr, np.float32).reshape(shape)
    if kind == "conv_kernel":
        return np.transpose(a, (1, 2, 3, 0))  # OHWI -> HWIO
    return a


def fer_layout(kind, arr):
    """Keras array -> flat fer_gpu order."""
    a = np.asarray(arr, np.float32)
    if kind == "conv_kernel":
        a = np.transpose(a, (3, 0, 1, 2))  # HWIO -> OHWI
    return a.ravel()


def param_index(layers, man):
    """(layer, keras variable getter name, flat buffer, offset, size, kind, fer shape, label) for
    every parameter, matched layer by layer (Sequential keeps the config's order)."""
    assert len(layers) == len(man["layers"]), (len(layers), len(man["layers"]))
    index = []
    for li, (kl, fl) in enumerate(zip(layers, man["layers"])):
        if not fl["params"]:
            continue
        by_name = {p["name"]: p for p in fl["params"]}
        if fl["type"] == "Conv2D":
            order = [("kernel", "kernel", "conv_kernel"), ("bias", "bias", "plain")]
        elif fl["type"] == "Dense":
            order = [("kernel", "kernel", "plain"), ("bias", "bias", "plain")]
        elif fl["type"] == "BatchNormalization":
            order = [("gamma", "gamma", "plain"), ("beta", "beta", "plain"),
                     ("moving_mean", "moving_mean", "plain"), ("moving_variance", "moving_variance", "plain")]
        else:
            raise RuntimeError("no parameter mapping for " + fl["type"])
        assert set(by_name) == {o[0] for o in order}, (fl["type"], sorted(by_name))
        for pname, attr, kind in order:
            p = by_name[pname]
            index.append({"layer": li, "attr": attr, "buf": "params" if p["trainable"] else "state",
                          "offset": p["offset"], "size": int(np.prod(p["shape"])), "kind": kind,
                          "shape": p["shape"], "label": "%s/%s" % (fl["name"], pname)})
    return index


class KerasSide:
    """The config's network in Keras (bench/peers/keras_peer.py's builder) at one float type,
    with fer_gpu's weights loaded on demand and fer_gpu's dropout masks injected."""

    def __init__(self, cfg, man, keras, tf, dtype):
        from keras_peer import build_model
        self.keras, self.tf, self.dtype = keras, tf, dtype
        old, old_policy = keras.config.floatx(), keras.config.dtype_policy()
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
        try:
            self.model = build_model(cfg, keras)
        finally:
            keras.config.set_floatx(old)
            keras.config.set_dtype_policy(old_policy)
        self.layers = self.model.layers
        self.index = param_index(self.layers, man)
        self.trainable = [e for e in self.index if e["buf"] == "params"]
        self.tvars = [self.var(e) for e in self.trainable]
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(dtype=dtype)

    def var(self, e):
        return getattr(self.layers[e["layer"]], e["attr"])

    def load(self, params, state):
        for e in self.index:
            src = (params if e["buf"] == "params" else state)[e["offset"]:e["offset"] + e["size"]]
            self.var(e).assign(keras_layout(e["kind"], src, e["shape"]).astype(self.dtype))

    def flat(self, buf):
        """This model's current values of one fer_gpu buffer ("params" or "state"), fer layout."""
        parts = [(e["offset"], fer_layout(e["kind"], self.var(e).numpy())) for e in self.index if e["buf"] == buf]
        out = np.zeros(sum(p[1].size for p in parts), np.float64)
        for off, v in parts:
            out[off:off + v.size] = v
        return out

    def forward(self, x, training, masks, record=None):
        h = self.tf.cast(x, self.dtype)
        for i, kl in enumerate(self.layers):
            if record is not None:
                record.append(h)
            if isinstance(kl, self.keras.layers.Dropout):
                if training:
                    h = h * self.tf.cast(masks[i], self.dtype)
            else:
                h = kl(h, training=training)
        return h

    def rows_per_sample(self, layer):
        """Rows a BatchNormalization layer reduces over, per sample (h*w after a convolution)."""
        shape = self.layers[layer].input.shape
        return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1

    def maxpool_ties(self, x, masks, near=0.0):
        """Windows of every MaxPooling2D whose positive maximum is reached more than once in this
        model's forward (exactly, in this float type; with near > 0: the runner-up within
        near * the layer's largest activation, i.e. closer than float32 rounding can resolve):
        where the gradient's route is a choice, or depends on the last bits."""
        acts = []
        self.forward(x, True, masks, record=acts)
        ties = 0
        for i, kl in enumerate(self.layers):
            if not isinstance(kl, self.keras.layers.MaxPooling2D):
                continue
            a = acts[i].numpy()
            ph, pw = kl.pool_size
            sh, sw = kl.strides
            n, h, w, c = a.shape
            oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
            win = np.stack([a[:, r:r + sh * oh:sh, q:q + sw * ow:sw, :] for r in range(ph) for q in range(pw)])
            mx = win.max(axis=0)
            if near > 0:
                srt = np.sort(win, axis=0)
                gap = srt[-1] - srt[-2]
                ties += int(((gap <= near * float(np.abs(a).max())) & (mx > 0)).sum())
            else:
                ties += int(((win == mx).sum(axis=0) > 1)[mx > 0].sum())
        return ties

    def step_grads(self, x, y, masks):
        """Training forward (moving statistics updated), loss, gradients in fer_gpu's flat layout."""
        with self.tf.GradientTape() as tape:
            probs = self.forward(x, True, masks)
            loss = self.loss_fn(y, probs)
        grads = tape.gradient(loss, self.tvars)
        flat = {e["label"]: fer_layout(e["kind"], g.numpy()).astype(np.float64) for e, g in zip(self.trainable, grads)}
        return probs.numpy().astype(np.float64), float(loss), flat, grads


def verdict(res):
    """True when every comparison of one model's result is within TOL. fer_gpu's float32 error
    against float64 Keras may be at most TOL["vs_keras32_factor"] times Keras float32's own error
    plus a floor for tensors Keras gets almost exactly."""
    def within(fer_err, k_err, floor):
        return fer_err <= TOL["vs_keras32_factor"] * k_err + floor
    ok = True
    for st in res["per_step"]:
        ok &= within(st["probs_err_fer"], st["probs_err_keras32"], TOL["probs_floor"])
        ok &= within(st["loss_err_fer"], st["loss_err_keras32"], TOL["loss_floor"] * max(1.0, abs(st["loss_keras64"])))
        for lab, g in st["grads"].items():
            if st["maxpool_ties_float64"] > 0 or st["maxpool_near_ties_float64"] > 0:
                # A max-pool window whose maximum is reached twice (flat image regions: identical
                # patches give identical values in float64 and in Keras' float32, while fer_gpu's
                # blocked GEMMs may differ by an ulp between them), or whose runner-up is closer
                # than float32 rounding resolves, routes its gradient to either position; both are
                # valid subgradients and the layers below see slightly different gradients.
                ok &= g["fer"] <= max(TOL["grad_tie_routing"], TOL["vs_keras32_factor"] * g["keras32"] + TOL["grad_floor"])
            else:
                ok &= within(g["fer"], g["keras32"], TOL["grad_floor"])
        ok &= st["state_rel_err_fer"] <= TOL["state_rel"]
        for g in st["exactly_zero_grads"].values():
            ok &= within(g["fer"], g["keras32"], TOL["zero_grad_noise"])
    ok &= res["adam_max_abs_err"] <= TOL["adam_abs"]
    ok &= within(res["eval_probs_err_fer"], res["eval_probs_err_keras32"], TOL["probs_floor"])
    return bool(ok)


def run_model_parity(cfg_path, args, keras, tf):
    cfg = common.load_config(cfg_path)
    if args.batch == "random":  # uniform random pixels: no flat regions, so no max-pool ties
        rng = np.random.default_rng(11)
        x_u8 = rng.integers(0, 256, size=(args.n, 48, 48), dtype=np.uint8)
        y = rng.integers(0, cfg["classes"], size=args.n).astype(np.int32)
    else:
        x_u8, y = sample_batch(cfg, args.data, args.n)
    rates = [float(l["rate"]) for l in cfg["layers"] if l["type"] == "Dropout"]
    out = tempfile.mkdtemp(prefix="parity_%s_" % cfg["name"])
    x_u8.tofile(os.path.join(out, "images.u8"))
    y.astype("<i4").tofile(os.path.join(out, "labels.i32"))
    cmd = [args.dump, "model", "--config", cfg_path, "--images", os.path.join(out, "images.u8"),
           "--labels", os.path.join(out, "labels.i32"), "--n", str(args.n), "--steps", str(args.steps),
           "--seed", str(args.seed), "--out", out]
    if rates:
        cmd += ["--dropout-rates", ",".join(repr(r) for r in rates)]
    subprocess.run(cmd, check=True)
    man = json.load(open(os.path.join(out, "manifest.json")))
    ld = lambda name: np.load(os.path.join(out, name))  # noqa: E731

    keras.backend.clear_session()
    k32 = KerasSide(cfg, man, keras, tf, "float32")
    k64 = KerasSide(cfg, man, keras, tf, "float64")
    x = tf.constant(x_u8[..., None].astype(np.float32) * np.float32(1.0 / 255.0))  # fer_gpu's input, bit for bit
    yt = tf.constant(y)
    res = {"config": cfg_path, "model": cfg["name"], "n": args.n, "batch": args.batch, "steps": args.steps, "seed": args.seed,
           "dropout": "fer_gpu's Philox masks injected into Keras (rates %s)" % rates, "per_step": []}
    labels = [e["label"] for e in k32.trainable]
    state_labels = [e for e in k32.index if e["buf"] == "state"]

    # 1. Step by step on fer_gpu's own trajectory: before step t both Keras models get fer_gpu's
    #    weights and moving statistics of that step; compared to float64 Keras, is fer_gpu's
    #    float32 error of the forward, the loss and each gradient within Keras' own float32 error?
    for t in range(args.steps):
        masks = {i: ld("mask_%d_%d.npy" % (t, i)) for i, fl in enumerate(man["layers"]) if fl["type"] == "Dropout"}
        pt, st = ld("params_%d.npy" % t), ld("state_%d.npy" % t)
        k32.load(pt, st)
        k64.load(pt, st)
        p32, l32, g32, _ = k32.step_grads(x, yt, masks)
        p64, l64, g64, _ = k64.step_grads(x, yt, masks)
        pf, lf, gf = ld("probs_%d.npy" % t).astype(np.float64), man["losses"][t], ld("grads_%d.npy" % t).astype(np.float64)
        step = {"step": t, "loss_fer": lf, "loss_keras32": l32, "loss_keras64": l64,
                "probs_err_fer": float(np.max(np.abs(pf - p64))), "probs_err_keras32": float(np.max(np.abs(p32 - p64))),
                "loss_err_fer": abs(lf - l64), "loss_err_keras32": abs(l32 - l64), "grads": {}}
        total = math.sqrt(sum(float(np.sum(v * v)) for v in g64.values()))
        step["exactly_zero_grads"] = {}
        for e in k32.trainable:
            f = gf[e["offset"]:e["offset"] + e["size"]]
            ref = g64[e["label"]]
            if np.linalg.norm(ref) <= 1e-9 * total:
                # Zero in exact arithmetic (a bias right before BatchNormalization: the batch mean
                # removes it); both float32 results are rounding noise, compared to the whole
                # gradient's norm instead.
                step["exactly_zero_grads"][e["label"]] = {"fer": float(np.linalg.norm(f) / total),
                                                          "keras32": float(np.linalg.norm(g32[e["label"]]) / total)}
                continue
            step["grads"][e["label"]] = {"fer": rel_l2(f, ref), "keras32": rel_l2(g32[e["label"]], ref),
                                        "fer_vs_keras32": rel_l2(f, g32[e["label"]])}
        # BN moving statistics after this training forward (momentum 0.99 rule).
        s_next = ld("state_%d.npy" % (t + 1) if t + 1 < args.steps else "state_final.npy").astype(np.float64)
        s64 = k64.flat("state")
        s_adj = s64.copy()
        for e in state_labels:
            if e["attr"] != "moving_variance":
                continue
            # Keras 3 averages the biased batch variance; fer_gpu, like TensorFlow's fused batch
            # norm and Keras 2, the unbiased one (x N/(N-1)). Keras' new value with that factor:
            sl = slice(e["offset"], e["offset"] + e["size"])
            N = args.n * k64.rows_per_sample(e["layer"])
            m = float(k64.layers[e["layer"]].momentum)
            prev = st[sl].astype(np.float64)
            s_adj[sl] = m * prev + (s64[sl] - m * prev) * N / (N - 1.0)

        def state_err(a, b):
            return max([float(np.max(np.abs(a[e["offset"]:e["offset"] + e["size"]] - b[e["offset"]:e["offset"] + e["size"]])) /
                              max(float(np.max(np.abs(b[e["offset"]:e["offset"] + e["size"]]))), 1e-3)) for e in state_labels] or [0.0])
        step["state_rel_err_fer"] = state_err(s_next, s_adj)
        step["state_rel_err_fer_unadjusted"] = state_err(s_next, s64)
        # (after the state check: this training forward updates the moving statistics again)
        step["maxpool_ties_float64"] = k64.maxpool_ties(x, masks)
        step["maxpool_ties_float32_keras"] = k32.maxpool_ties(x, masks)
        step["maxpool_near_ties_float64"] = k64.maxpool_ties(x, masks, near=TOL["near_tie"])
        res["per_step"].append(step)

    # 2. Adam: Keras' Adam fed fer_gpu's gradients from fer_gpu's initial weights reproduces fer_gpu's
    #    weights after every step.
    k32.load(ld("params_0.npy"), ld("state_0.npy"))
    opt = keras.optimizers.Adam(learning_rate=cfg["learning_rate"], beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    adam_err = []
    for t in range(args.steps):
        gf = ld("grads_%d.npy" % t)
        grads = [tf.constant(keras_layout(e["kind"], gf[e["offset"]:e["offset"] + e["size"]], e["shape"])) for e in k32.trainable]
        opt.apply_gradients(zip(grads, k32.tvars))
        fer_next = ld("params_%d.npy" % (t + 1) if t + 1 < args.steps else "params_final.npy").astype(np.float64)
        kp = k32.flat("params")
        adam_err.append(float(np.max(np.abs(kp - fer_next))))
    res["adam_max_abs_err"] = max(adam_err)

    # 3. Inference forward after the steps with fer_gpu's final weights and moving statistics.
    pfin, sfin = ld("params_final.npy"), ld("state_final.npy")
    k32.load(pfin, sfin)
    k64.load(pfin, sfin)
    e64 = k64.forward(x, False, {}).numpy().astype(np.float64)
    res["eval_probs_err_fer"] = float(np.max(np.abs(ld("probs_eval.npy") - e64)))
    res["eval_probs_err_keras32"] = float(np.max(np.abs(k32.forward(x, False, {}).numpy() - e64)))

    # 4. Free running: Keras float32 alone from the same initial weights for the same steps.
    k32.load(ld("params_0.npy"), ld("state_0.npy"))
    opt = keras.optimizers.Adam(learning_rate=cfg["learning_rate"], beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    free_losses = []
    for t in range(args.steps):
        masks = {i: ld("mask_%d_%d.npy" % (t, i)) for i, fl in enumerate(man["layers"]) if fl["type"] == "Dropout"}
        _, loss, _, grads = k32.step_grads(x, yt, masks)
        free_losses.append(loss)
        opt.apply_gradients(zip(grads, k32.tvars))
    p0 = ld("params_0.npy").astype(np.float64)
    kp, ks = k32.flat("params"), k32.flat("state")
    fp, fs = pfin.astype(np.float64), sfin.astype(np.float64)
    res["free_losses_fer"], res["free_losses_keras32"] = man["losses"], free_losses
    res["free_update_rel_l2"] = {e["label"]: rel_l2(fp[e["offset"]:e["offset"] + e["size"]] - p0[e["offset"]:e["offset"] + e["size"]],
                                                    kp[e["offset"]:e["offset"] + e["size"]] - p0[e["offset"]:e["offset"] + e["size"]])
                                 for e in k32.trainable}
    res["free_state_rel"] = max([float(np.max(np.abs(fs[e["offset"]:e["offset"] + e["size"]] - ks[e["offset"]:e["offset"] + e["size"]])) /
                                       max(float(np.max(np.abs(ks[e["offset"]:e["offset"] + e["size"]]))), 1e-3)) for e in state_labels] or [0.0])

    res["pass"] = verdict(res)
    res["summary"] = {
        "probs_err_fer_max": max(s["probs_err_fer"] for s in res["per_step"]),
        "probs_err_keras32_max": max(s["probs_err_keras32"] for s in res["per_step"]),
        "loss_err_fer_max": max(s["loss_err_fer"] for s in res["per_step"]),
        "loss_err_keras32_max": max(s["loss_err_keras32"] for s in res["per_step"]),
        "grad_rel_err_fer_max": max(g["fer"] for s in res["per_step"] for g in s["grads"].values()),
        "grad_rel_err_keras32_max": max(g["keras32"] for s in res["per_step"] for g in s["grads"].values()),
        "grad_fer_vs_keras32_max": max(g["fer_vs_keras32"] for s in res["per_step"] for g in s["grads"].values()),
        "state_rel_err_fer_max": max(s["state_rel_err_fer"] for s in res["per_step"]),
        "state_rel_err_fer_unadjusted_max": max(s["state_rel_err_fer_unadjusted"] for s in res["per_step"]),
        "exactly_zero_grads_fer_max": max([g["fer"] for s in res["per_step"] for g in s["exactly_zero_grads"].values()] or [0.0]),
        "exactly_zero_grads_keras32_max": max([g["keras32"] for s in res["per_step"] for g in s["exactly_zero_grads"].values()] or [0.0]),
        "maxpool_ties_float64": [s["maxpool_ties_float64"] for s in res["per_step"]],
        "maxpool_ties_float32_keras": [s["maxpool_ties_float32_keras"] for s in res["per_step"]],
        "maxpool_near_ties_float64": [s["maxpool_near_ties_float64"] for s in res["per_step"]],
        "adam_max_abs_err": res["adam_max_abs_err"],
        "eval_probs_err_fer": res["eval_probs_err_fer"], "eval_probs_err_keras32": res["eval_probs_err_keras32"],
        "free_update_rel_l2_max": max(res["free_update_rel_l2"].values()),
        "free_state_rel": res["free_state_rel"],
    }
    sm = res["summary"]
    print("%-10s vs float64 Keras (fer / keras32): probs %.1e / %.1e  loss %.1e / %.1e  grads relL2 %.1e / %.1e  "
          "BN state %.1e (%.1e without the N/(N-1) convention)  zero-grad noise %.1e / %.1e  max-pool ties (f64) %s near %s  Adam %.1e  eval %.1e / %.1e | free-running update relL2 %.1e, losses fer %s keras %s  %s" % (
              cfg["name"], sm["probs_err_fer_max"], sm["probs_err_keras32_max"], sm["loss_err_fer_max"],
              sm["loss_err_keras32_max"], sm["grad_rel_err_fer_max"], sm["grad_rel_err_keras32_max"],
              sm["state_rel_err_fer_max"], sm["state_rel_err_fer_unadjusted_max"], sm["exactly_zero_grads_fer_max"],
              sm["exactly_zero_grads_keras32_max"], sm["maxpool_ties_float64"], sm["maxpool_near_ties_float64"], sm["adam_max_abs_err"], sm["eval_probs_err_fer"], sm["eval_probs_err_keras32"],
              sm["free_update_rel_l2_max"], ["%.4f" % v for v in man["losses"]], ["%.4f" % v for v in free_losses],
              "PASS" if res["pass"] else "FAIL"), flush=True)
    return res


def check_keras_dropout(keras, tf):
    """Keras' own Dropout scales kept values by 1/(1 - rate) (inverted dropout), like fer_gpu."""
    x = tf.ones([4096])
    y = keras.layers.Dropout(0.25, seed=3)(x, training=True).numpy()
    kept = y[y != 0]
    return {"rate": 0.25, "kept_fraction": float(kept.size / y.size),
            "kept_value": float(kept.mean()), "expected_kept_value": 1 / 0.75,
            "pass": bool(np.allclose(kept, 1 / 0.75, rtol=1e-6))}


# ---------------------------------------------------------------- augmentation

def augment_params(rng, n_random):
    """Parameter rows (shear degrees, zx, zy, flip): hand-picked ones that move the border, then
    draws from the shipped configs' ranges (shear 0.2 degrees, zoom 0.2, flip)."""
    rows = [(0, 1, 1, 0), (0, 1, 1, 1), (0, 0.8, 0.8, 0), (0, 1.2, 1.2, 0), (0, 0.8, 1.2, 1), (0, 1.2, 0.8, 0),
            (0.2, 1, 1, 0), (-0.2, 1, 1, 1), (20, 1, 1, 0), (-30, 1.1, 0.9, 1), (45, 0.8, 0.8, 0),
            (0.2, 0.8, 0.8, 1), (-0.2, 1.2, 1.2, 0), (0, 0.81, 1.19, 0), (5, 0.95, 1.05, 1)]
    for _ in range(n_random):
        rows.append((rng.uniform(-0.2, 0.2), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2), float(rng.uniform() < 0.5)))
    return np.asarray(rows, np.float32)


def keras_apply(gen_cls, x_u8, params):
    gen = gen_cls()  # defaults: fill_mode 'nearest', cval 0, interpolation order 1
    out = np.empty(x_u8.shape, np.float32)
    for i in range(len(x_u8)):
        img = x_u8[i][..., None].astype(np.float32)  # NumpyArrayIterator holds float32
        t = {"shear": float(params[i, 0]), "zx": float(params[i, 1]), "zy": float(params[i, 2]),
             "flip_horizontal": bool(params[i, 3] != 0)}
        r = gen.apply_transform(img, t)
        out[i] = r[..., 0] * np.float32(1.0 / 255.0)  # rescale = 1/255 after the transform (standardize)
    return out


def compare_images(fer, ker):
    d = np.abs(fer.astype(np.float64) - ker.astype(np.float64))
    border = np.zeros(fer.shape[1:], bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    per_image = d.reshape(len(d), -1).max(axis=1)
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "border_max_abs": float(d[:, border].max()), "interior_max_abs": float(d[:, ~border].max()),
            "pixels_over_half_grey_level": int((d > 0.5 / 255).sum()),
            "images_over_half_grey_level": int((per_image > 0.5 / 255).sum()),
            "per_image_max_abs": [float(v) for v in per_image]}


def run_augment_parity(args):
    cfg = common.load_config(os.path.join(ROOT, "configs", "model5-v2.toml"))
    xt, _, _, _ = common.load_real_data(cfg, args.data)
    rng = np.random.default_rng(7)
    params = augment_params(rng, 49)
    n = len(params)
    x_u8 = np.ascontiguousarray(xt[:n])
    out = tempfile.mkdtemp(prefix="parity_aug_")
    x_u8.tofile(os.path.join(out, "images.u8"))
    params.astype("<f4").tofile(os.path.join(out, "draws.f32"))
    subprocess.run([args.dump, "augment", "--images", os.path.join(out, "images.u8"), "--draws",
                    os.path.join(out, "draws.f32"), "--n", str(n), "--h", "48", "--w", "48", "--out", out], check=True)
    fer = np.load(os.path.join(out, "augmented.npy"))
    res = {"images": n, "params": params.tolist(), "fer_gpu_centre": "size/2 + 0.5 (keras_preprocessing 1.1.x)"}
    try:
        import keras_preprocessing
        from keras_preprocessing.image import ImageDataGenerator as IDG1
        res["keras_preprocessing_version"] = keras_preprocessing.__version__
        res["vs_keras_preprocessing"] = compare_images(fer, keras_apply(IDG1, x_u8, params))
    except Exception as e:  # noqa: BLE001
        res["vs_keras_preprocessing"] = {"error": "%s: %s" % (type(e).__name__, e)}
    try:
        import keras
        from keras.src.legacy.preprocessing.image import ImageDataGenerator as IDG3  # tf.keras.preprocessing.image
        res["keras_version"] = keras.__version__
        res["vs_keras3"] = compare_images(fer, keras_apply(IDG3, x_u8, params))
        # Where Keras 3 puts the centre: zoom 1.2 on both axes of a column ramp maps output column c
        # to input column 1.2 * (c - o) + o, so o = (v - 1.2 c) / (1 - 1.2) at an interior column.
        ramp = np.tile(np.arange(48, dtype=np.float32), (48, 1))[..., None]
        c = 30
        v3 = IDG3().apply_transform(ramp, {"zx": 1.2, "zy": 1.2})[..., 0][24, c]
        v1 = IDG1().apply_transform(ramp, {"zx": 1.2, "zy": 1.2})[..., 0][24, c]
        res["keras_preprocessing_centre_estimate"] = float((v1 - 1.2 * c) / (1 - 1.2))
        # Keras 3 swaps the axes (its zx scales columns, zy rows; shear moves rows along columns):
        # the same rows with zx and zy exchanged and shear 0 separate the centre's effect.
        swapped = params.copy()
        swapped[:, 1], swapped[:, 2] = params[:, 2], params[:, 1]
        no_shear = params[:, 0] == 0
        k3s = keras_apply(IDG3, x_u8, swapped)
        res["vs_keras3_axes_swapped_no_shear"] = compare_images(fer[no_shear], k3s[no_shear])
        res["keras3_centre_estimate"] = float((v3 - 1.2 * c) / (1 - 1.2))
    except Exception as e:  # noqa: BLE001
        res["vs_keras3"] = {"error": "%s: %s" % (type(e).__name__, e)}
    print("centre: keras_preprocessing %s, Keras 3 %s" % (res.get("keras_preprocessing_centre_estimate"),
                                                       res.get("keras3_centre_estimate")))
    for k in ("vs_keras_preprocessing", "vs_keras3", "vs_keras3_axes_swapped_no_shear"):
        v = res.get(k, {"error": "not run"})
        if "error" in v:
            print("augment %-22s %s" % (k, v["error"]))
        else:
            print("augment %-22s max %.3e (border %.3e, interior %.3e) mean %.3e, images over half a grey level: %d/%d"
                  % (k, v["max_abs"], v["border_max_abs"], v["interior_max_abs"], v["mean_abs"],
                     v["images_over_half_grey_level"], len(v["per_image_max_abs"])))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["model", "augment", "all", "reverdict"])
    ap.add_argument("--configs", nargs="*", default=None)
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "sample", "fer2013_sample.csv"))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", choices=["sample", "random", "both"], default="both",
                    help="real sample images, uniform random pixels (no max-pool ties), or both")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dump", default=default_dump())
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    if args.what == "reverdict":  # the verdicts of an earlier --json under this file's TOL
        out = json.load(open(args.json))
        out["tolerances"] = TOL
        for m in out.get("models", []):
            m["pass"] = verdict(m)
            print("%-7s %-10s %s" % (m.get("batch", "sample"), m["model"], "PASS" if m["pass"] else "FAIL"))
        common.write_json(args.json, out)
        return 0 if all(m["pass"] for m in out.get("models", [])) else 1
    out = {"tolerances": TOL}
    if args.what in ("model", "all"):
        import tensorflow as tf
        import keras
        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        out["tensorflow"], out["keras"] = tf.__version__, keras.__version__
        configs = args.configs or sorted(glob.glob(os.path.join(ROOT, "configs", "*.toml")))
        batches = ["sample", "random"] if args.batch == "both" else [args.batch]
        out["models"] = []
        for b in batches:
            print("-- batch: %s" % ("%d real images of %s" % (args.n, args.data) if b == "sample" else
                                   "%d images of uniform random pixels" % args.n), flush=True)
            for c in configs:
                a = argparse.Namespace(**vars(args))
                a.batch = b
                out["models"].append(run_model_parity(c, a, keras, tf))
        out["keras_dropout"] = check_keras_dropout(keras, tf)
        print("keras Dropout kept value %.6f (1/(1-rate) = %.6f)" % (out["keras_dropout"]["kept_value"], 1 / 0.75))
    if args.what in ("augment", "all"):
        out["augment"] = run_augment_parity(args)
    common.write_json(args.json, out)
    ok = all(m["pass"] for m in out.get("models", [])) and out.get("keras_dropout", {"pass": True})["pass"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
