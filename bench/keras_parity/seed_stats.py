#!/usr/bin/env python3
"""How often does a short run leave the class prior? fer_gpu and Keras, several seeds each.

  python3 bench/keras_parity/seed_stats.py keras  --config configs/model5-v2.toml --data CSV --seeds 1-5 --epochs 3 --json k.json
  python3 bench/keras_parity/seed_stats.py fer    --config configs/model5-v2.toml --data CSV --seeds 1-5 --epochs 3 --json f.json
  python3 bench/keras_parity/seed_stats.py cut    --data /work/data/fer2013.csv --fraction 0.5 --out /tmp/cut.csv
  python3 bench/keras_parity/seed_stats.py table  f.json k.json

keras: the original recipe in Keras 3 on TensorFlow: ImageDataGenerator(rescale=1/255,
shear_range, zoom_range, horizontal_flip from the config).flow(x, y, batch_size, shuffle=True,
seed), model.fit(steps_per_epoch = n // batch, validation on the config's validation rows / 255),
the network built by bench/peers/keras_peer.py, Adam(1e-3, epsilon 1e-7), sparse categorical
cross-entropy on the softmax output. --idg kp112 uses keras_preprocessing 1.1.2's generator (the
original project's) instead of Keras 3's.
fer: `fer_gpu train CONFIG --data CSV --epochs E --seed S --device cpu --out DIR` per seed, its
history.csv read back.
cut: a stratified cut of a FER2013 CSV (the same fraction of every class in every Usage, rows in
file order), for runs on fewer images.

"Left the prior" at epoch e, counted two ways (`table` prints both):
- by validation: validation accuracy above the majority class's share of the validation rows
  + 0.02 (a model answering one class scores exactly that share; 0.2510 for the six-class
  validation split of model5-v2). In the first epochs this measures the BatchNormalization moving
  averages as much as the network: inference uses statistics still weighted towards the initial
  mean 0 / variance 1 (Keras' rule, not zero-debiased), so a network that has left the prior in
  training can still answer one class on validation for an epoch or two.
- by training: the epoch's running training accuracy (batch statistics, as the optimizer sees
  the network) above the majority class's share of the training rows + 0.02.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import common  # noqa: E402


def parse_seeds(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def prior_share(cfg, data):
    _, _, _, yv = common.load_real_data(cfg, data)
    return float(np.bincount(yv).max() / len(yv))


def cmd_cut(args):
    rng_rows = {}
    with open(args.data, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        ie, iu = header.index("emotion"), header.index("Usage")
        rows = list(reader)
    for i, r in enumerate(rows):
        rng_rows.setdefault((r[iu].strip(), r[ie]), []).append(i)
    keep = set()
    for key, idx in rng_rows.items():
        keep.update(idx[:int(round(len(idx) * args.fraction))])
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, r in enumerate(rows):
            if i in keep:
                w.writerow(r)
    print("%s: %d of %d rows (fraction %.3f of every class in every Usage)" % (args.out, len(keep), len(rows), args.fraction))


def cmd_keras(args):
    import tensorflow as tf
    import keras
    from keras_peer import build_model

    threads = args.threads or len(os.sched_getaffinity(0))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    cfg = common.load_config(args.config)
    aug = cfg_aug(args.config)
    xt, yt, xv, yv = common.load_real_data(cfg, args.data)
    xt = xt[..., None].astype(np.float32)
    xv = xv[..., None].astype(np.float32) / np.float32(255.0)
    if args.idg == "kp112":
        from keras_preprocessing.image import ImageDataGenerator
    else:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator  # = tf.keras.preprocessing.image
    b = cfg["batch_size"]
    prior = prior_share(cfg, args.data)
    out = {"framework": "keras", "keras": keras.__version__, "tensorflow": tf.__version__, "idg": args.idg,
           "config": args.config, "data": args.data, "train_rows": int(len(xt)), "val_rows": int(len(xv)),
           "prior": prior, "threads": threads, "runs": []}
    for seed in parse_seeds(args.seeds):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = build_model(cfg, keras)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg["learning_rate"], epsilon=1e-7),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        gen = ImageDataGenerator(rescale=1.0 / 255, shear_range=aug["shear_range"], zoom_range=aug["zoom_range"],
                                 horizontal_flip=aug["horizontal_flip"])
        it = gen.flow(xt, yt, batch_size=b, shuffle=True, seed=seed)
        # fit_generator's way: an endless stream of the iterator's batches (reshuffled every pass,
        # the last batch of a pass partial), steps_per_epoch = n // batch taken from it per epoch.
        # (Passing the iterator itself as a PyDataset with steps_per_epoch < len(it) makes Keras 3
        # end the second epoch after one batch: "Your input ran out of data".)
        flow = (next(it) for _ in iter(int, 1))
        t0 = time.time()
        h = model.fit(flow, steps_per_epoch=len(xt) // b, epochs=args.epochs, validation_data=(xv, yv),
                      verbose=2)
        run = {"seed": seed, "seconds": time.time() - t0,
               "epochs": [{"epoch": e + 1, "loss": h.history["loss"][e], "accuracy": h.history["accuracy"][e],
                           "val_loss": h.history["val_loss"][e], "val_accuracy": h.history["val_accuracy"][e]}
                          for e in range(args.epochs)]}
        out["runs"].append(run)
        common.write_json(args.json, out)
        print("keras seed %d: %s" % (seed, " ".join("%.4f/%.4f" % (e["accuracy"], e["val_accuracy"]) for e in run["epochs"])),
              flush=True)
    common.write_json(args.json, out)


def cfg_aug(path):
    import tomllib
    with open(path, "rb") as f:
        a = tomllib.load(f).get("augment", {})
    return {"shear_range": float(a.get("shear_range", 0.0)), "zoom_range": float(a.get("zoom_range", 0.0)),
            "horizontal_flip": bool(a.get("horizontal_flip", False))}


def cmd_fer(args):
    cfg = common.load_config(args.config)
    prior = prior_share(cfg, args.data)
    out = {"framework": "fer_gpu", "binary": args.fer_gpu, "config": args.config, "data": args.data,
           "prior": prior, "runs": []}
    for seed in parse_seeds(args.seeds):
        run_dir = os.path.join(args.runs, "%s-seed%d" % (os.path.splitext(os.path.basename(args.config))[0], seed))
        cmd = [args.fer_gpu, "train", args.config, "--data", args.data, "--epochs", str(args.epochs), "--seed",
               str(seed), "--device", "cpu", "--out", run_dir] + args.extra
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if args.quiet else None)
        with open(os.path.join(run_dir, "history.csv")) as f:
            rows = list(csv.DictReader(f))
        run = {"seed": seed, "seconds": time.time() - t0, "command": " ".join(cmd),
               "epochs": [{"epoch": int(r["epoch"]), "loss": float(r["loss"]), "accuracy": float(r["accuracy"]),
                           "val_loss": float(r["val_loss"]), "val_accuracy": float(r["val_accuracy"])} for r in rows]}
        out["runs"].append(run)
        common.write_json(args.json, out)
        print("fer_gpu seed %d: %s" % (seed, " ".join("%.4f/%.4f" % (e["accuracy"], e["val_accuracy"]) for e in run["epochs"])),
              flush=True)


def train_prior_share(data):
    """Majority class's share of the Training rows of a FER2013 CSV (emotion, pixels, Usage)."""
    counts = {}
    with open(data, newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"] == "Training":
                counts[row["emotion"]] = counts.get(row["emotion"], 0) + 1
    return max(counts.values()) / sum(counts.values())


def count_left(runs, key, threshold, n_ep):
    """Runs whose `key` exceeded threshold at some epoch <= e, for each e (0-based)."""
    return [sum(1 for r in runs if any(x[key] > threshold for x in r["epochs"][:e + 1])) for e in range(n_ep)]


def thresholds(d):
    """'Left the prior' thresholds of a table: majority share + 0.02, for val_accuracy (validation
    rows) and accuracy (training rows; read from the CSV once when the table does not record it)."""
    return {"val_accuracy": d["prior"] + 0.02,
            "accuracy": (d.get("train_prior") or train_prior_share(d["data"])) + 0.02}


def cmd_table(args):
    tables = []
    for path in args.files:
        d = json.load(open(path))
        d["thresholds"] = thresholds(d)
        tables.append(d)
        prior = d["prior"]
        label = d["framework"] + (" (%s ImageDataGenerator)" % d["idg"] if "idg" in d else "")
        print("\n%s, %s, data %s; prior share %.4f, 'left' = val_accuracy > %.4f\n" % (label, d["config"], d["data"], prior, prior + 0.02))
        n_ep = max(len(r["epochs"]) for r in d["runs"])
        print("| seed | " + " | ".join("epoch %d acc / val" % (e + 1) for e in range(n_ep)) + " |")
        print("|---|" + "---|" * n_ep)
        for r in d["runs"]:
            cells = []
            for e in r["epochs"]:
                ok = e["val_accuracy"] > prior + 0.02
                cells.append("%.4f / %s%.4f%s" % (e["accuracy"], "**" if ok else "", e["val_accuracy"], "**" if ok else ""))
            print("| %d | %s |" % (r["seed"], " | ".join(cells)))
        n = len(d["runs"])
        for what, key in (("validation", "val_accuracy"), ("training", "accuracy")):
            threshold = d["thresholds"][key]
            left = count_left(d["runs"], key, threshold, n_ep)
            print("\nleft the prior by epoch, by %s (%s > %.4f): " % (what, key, threshold) +
                  ", ".join("%d: %d/%d" % (e + 1, left[e], n) for e in range(n_ep)))
    if len(tables) == 2:
        compare_two(tables)


def compare_two(ds):
    """Fisher's exact test (two-sided) on each 'left the prior' count of two tables (as cmd_table
    loaded them, with their thresholds), and the Mann-Whitney U test (two-sided) on the last
    epoch's accuracies: is either framework's rate different? Needs scipy."""
    try:
        from scipy.stats import fisher_exact, mannwhitneyu
    except ImportError:
        print("\n(scipy missing: no tests of the difference)")
        return
    names = [d["framework"] for d in ds]
    n_ep = min(max(len(r["epochs"]) for r in d["runs"]) for d in ds)
    print("\n%s vs %s (Fisher's exact test, two-sided, on the counts above):" % tuple(names))
    for what, key in (("validation", "val_accuracy"), ("training", "accuracy")):
        lefts = [count_left(d["runs"], key, d["thresholds"][key], n_ep) for d in ds]
        cells = []
        for e in range(n_ep):
            counts = [(left[e], len(d["runs"]) - left[e]) for left, d in zip(lefts, ds)]
            p = fisher_exact(counts)[1]
            cells.append("epoch %d: %d/%d vs %d/%d, p = %.3f" % (e + 1, counts[0][0], sum(counts[0]),
                                                                 counts[1][0], sum(counts[1]), p))
        print("- by %s: %s" % (what, "; ".join(cells)))
    for key in ("accuracy", "val_accuracy"):
        xs = [[r["epochs"][n_ep - 1][key] for r in d["runs"] if len(r["epochs"]) >= n_ep] for d in ds]
        med = [sorted(x)[len(x) // 2] for x in xs]
        p = mannwhitneyu(xs[0], xs[1], alternative="two-sided").pvalue
        print("- epoch %d %s, Mann-Whitney U (two-sided): medians %.4f vs %.4f, p = %.3f" % (n_ep, key, med[0], med[1], p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("keras", "fer"):
        p = sub.add_parser(name)
        p.add_argument("--config", default=os.path.join(ROOT, "configs", "model5-v2.toml"))
        p.add_argument("--data", required=True)
        p.add_argument("--seeds", default="1-5")
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--json", default="")
        if name == "keras":
            p.add_argument("--threads", type=int, default=0)
            p.add_argument("--idg", choices=["keras3", "kp112"], default="keras3")
        else:
            p.add_argument("--fer-gpu", default=os.path.join(ROOT, "build", "tools", "fer_gpu"))
            p.add_argument("--runs", default="/tmp/seed_stats_runs")
            p.add_argument("--quiet", action="store_true")
            p.add_argument("extra", nargs="*", help="more fer_gpu train arguments (after --)")
    p = sub.add_parser("cut")
    p.add_argument("--data", required=True)
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("table")
    p.add_argument("files", nargs="+")
    args = ap.parse_args()
    {"keras": cmd_keras, "fer": cmd_fer, "cut": cmd_cut, "table": cmd_table}[args.what](args)


if __name__ == "__main__":
    main()
