#!/usr/bin/env python3
"""onnxruntime runs `fer_gpu export`'s file and gives `fer_gpu predict`'s probabilities.

For every numbered model (configs/*.toml) and the two every-layer test models, with random weights
(tests/export/random_checkpoint.h), and for a checkpoint trained one short epoch on the bundled
sample: export to ONNX, predict the sample's 108 faces (--csv) and four of them as PGM files with
fer_gpu, run the same pixels through onnxruntime (NHWC float32, pixel * 1/255, as the file's
metadata says) at the full batch and at batch 1, and require every probability to agree within
1e-5 absolute. The file's metadata (classes, layout, shape) must match what predict reports.

Exits 77 (ctest: skipped) with the reason when onnxruntime or numpy is not installed.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

TOLERANCE = 1e-5

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIPPED: {e}; install it with tools/scripts/install_deps.sh (a venv in build/venv) "
          "to compare onnxruntime with fer_gpu predict")
    sys.exit(77)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def sample_pixels(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([[int(v) for v in r["pixels"].split()] for r in rows], dtype=np.uint8).reshape(-1, 48, 48)


def write_pgm(path, img):
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (img.shape[1], img.shape[0]))
        f.write(img.tobytes())


def predict(fer_gpu, ckpt, inputs):
    out = json.loads(run([fer_gpu, "predict", "--checkpoint", ckpt, "--json", "--device", "cpu", *inputs]))
    classes = out["classes"]
    probs = np.array([[p["probabilities"][c] for c in classes] for p in out["predictions"]], dtype=np.float64)
    return classes, probs


def check(name, ckpt, args, work, pixels, pgm_paths, pgm_rows):
    onnx_path = os.path.join(work, name + ".onnx")
    run([args.fer_gpu, "export", ckpt, "--format", "onnx", "-o", onnx_path])
    classes, fer_csv = predict(args.fer_gpu, ckpt, ["--csv", args.sample])
    classes_pgm, fer_pgm = predict(args.fer_gpu, ckpt, pgm_paths)

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    problems = []
    if json.loads(meta["classes"]) != classes or classes_pgm != classes:
        problems.append(f"class order: file {meta['classes']}, predict {classes}")
    if meta["input_layout"] != "NHWC" or json.loads(meta["input_shape"]) != ["N", 48, 48, 1]:
        problems.append(f"input convention: {meta['input_layout']} {meta['input_shape']}")
    (inp,) = sess.get_inputs()
    if inp.name != meta["input_name"] or inp.shape[1:] != [48, 48, 1] or isinstance(inp.shape[0], int):
        problems.append(f"input {inp.name} {inp.shape}: expected a dynamic batch and 48x48x1")

    x = pixels.astype(np.float32)[..., None] * np.float32(1.0 / 255.0)
    (ort_all,) = sess.run(["probabilities"], {inp.name: x})
    ort_one = np.concatenate([sess.run(["probabilities"], {inp.name: x[i:i + 1]})[0] for i in pgm_rows])
    worst = max(np.abs(ort_all - fer_csv).max(), np.abs(ort_one - fer_pgm).max())
    # Random weights must give probabilities that differ between faces and from uniform, or
    # the agreement would prove nothing.
    spread = float(np.abs(fer_csv - 1.0 / len(classes)).max())
    varies = float(fer_csv.std(axis=0).max())
    if worst > TOLERANCE:
        problems.append(f"max |onnxruntime - predict| = {worst:.3g} > {TOLERANCE}")
    if spread < 1e-3 or varies < 1e-4:
        problems.append(f"degenerate probabilities (spread {spread:.3g}, std {varies:.3g})")
    status = "ok" if not problems else "FAILED: " + "; ".join(problems)
    print(f"{name:28s} {len(fer_csv)} + {len(fer_pgm)} faces, max abs diff {worst:.2e}: {status}", flush=True)
    return not problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fer-gpu", required=True)
    ap.add_argument("--random-checkpoint", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    args.sample = os.path.join(args.source_dir, "data/sample/fer2013_sample.csv")
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    pixels = sample_pixels(args.sample)
    configs = sorted(f for f in os.listdir(os.path.join(args.source_dir, "configs")) if f.endswith(".toml"))
    if len(configs) < 6:
        sys.exit(f"FAILED: expected the six numbered configs in configs/, found {configs}")
    configs = [os.path.join("configs", c) for c in configs]
    configs += ["tests/export/every_layer_a.toml", "tests/export/every_layer_b.toml"]

    ok = True
    with tempfile.TemporaryDirectory(prefix="fer_onnx_") as work:
        pgm_rows = [0, 17, 50, 107]
        pgm_paths = []
        for i in pgm_rows:
            pgm_paths.append(os.path.join(work, f"face{i}.pgm"))
            write_pgm(pgm_paths[-1], pixels[i])
        for seed, rel in enumerate(configs, start=100):
            name = os.path.splitext(os.path.basename(rel))[0]
            ckpt = os.path.join(work, name + ".ckpt")
            run([args.random_checkpoint, os.path.join(args.source_dir, rel), ckpt, str(seed)])
            ok &= check(name + " (random)", ckpt, args, work, pixels, pgm_paths, pgm_rows)

        # A trained checkpoint: one short epoch of model5-v2 on the sample (moving statistics
        # updated by training, weights moved by Adam).
        run_dir = os.path.join(work, "run")
        run([args.fer_gpu, "train", os.path.join(args.source_dir, "configs/model5-v2.toml"), "--device", "cpu",
             "--epochs", "1", "--batch-size", "16", "--data", args.sample, "--out", run_dir])
        ok &= check("model5-v2 (trained 1 epoch)", os.path.join(run_dir, "last.ckpt"), args, work, pixels,
                    pgm_paths, pgm_rows)
    print("onnxruntime agrees with fer_gpu predict" if ok else "onnxruntime DISAGREES with fer_gpu predict")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
