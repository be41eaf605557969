"""What the peer benchmarks share: reading fer_gpu's model configs, the data, timing statistics.

The peers build their networks from the same TOML files fer_gpu reads (configs/*.toml), so the
six networks are the same layer for layer: Keras names and defaults (Conv2D padding "valid",
strides 1; pooling strides = pool size; BatchNormalization momentum 0.99, epsilon 1e-3).
Standard library + numpy only.
"""
import csv
import json
import os
import platform
import statistics
import sys
import time

try:
    import tomllib  # Python 3.11+
except ImportError:  # pragma: no cover
    tomllib = None

import numpy as np

FER_USAGES = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}


def load_config(path):
    if tomllib is None:
        sys.exit("the peers need Python 3.11+ (tomllib) to read %s" % path)
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    model = cfg["model"]
    train = cfg.get("train", {})
    data = cfg.get("data", {})
    aug = cfg.get("augment", {})
    return {
        "path": path,
        "name": model["name"],
        "input_shape": list(model.get("input_shape", [48, 48, 1])),
        "classes": int(model["classes"]),
        "layers": cfg["layers"],
        "batch_size": int(train.get("batch_size", 128)),
        "epochs": int(train.get("epochs", 50)),
        "learning_rate": float(train.get("learning_rate", 1e-3)),
        "optimizer": train.get("optimizer", "adam"),
        "drop_classes": list(data.get("drop_classes", [])),
        "train_usage": list(data.get("train_usage", ["Training"])),
        "validation_usage": list(data.get("validation_usage", ["PublicTest", "PrivateTest"])),
        "shear_range": float(aug.get("shear_range", 0.0)),
        "zoom_range": float(aug.get("zoom_range", 0.0)),
        "horizontal_flip": bool(aug.get("horizontal_flip", False)),
    }


def pair(v):
    """Keras accepts an int or a pair for kernel_size, strides, pool_size."""
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def same_padding(size, k, s):
    """TensorFlow "same": total padding, the odd pixel at the end (bottom/right)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def fer2013_split_sizes(cfg):
    """(train, validation) images of the real FER2013 split the config uses, or None."""
    if cfg["train_usage"] != ["Training"] or cfg["validation_usage"] != ["PublicTest", "PrivateTest"]:
        return None
    if cfg["drop_classes"] == []:
        return 28709, 7178
    if cfg["drop_classes"] == [1]:
        return 28273, 7067
    return None


def synthetic_data(cfg, n_train, n_val, seed=1):
    rng = np.random.default_rng(seed)
    h, w = cfg["input_shape"][:2]
    xt = rng.integers(0, 256, size=(n_train, h, w), dtype=np.uint8)
    yt = rng.integers(0, cfg["classes"], size=n_train).astype(np.int64)
    xv = rng.integers(0, 256, size=(n_val, h, w), dtype=np.uint8)
    yv = rng.integers(0, cfg["classes"], size=n_val).astype(np.int64)
    return xt, yt, xv, yv


def load_real_data(cfg, path):
    """FER2013 from a Kaggle CSV (emotion,pixels,Usage) or the .npz that unpack_fer2013.py writes
    (x, emotion, usage). Applies drop_classes (remaining classes renumbered in FER id order) and the
    config's train/validation usages."""
    if path.endswith(".npz"):
        z = np.load(path)
        x = z["x"].astype(np.uint8)
        emotion = z["emotion"].astype(np.int64)
        usage = z["usage"].astype(np.int64)
    else:
        xs, es, us = [], [], []
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader)]
            ie, ip, iu = header.index("emotion"), header.index("pixels"), header.index("Usage")
            for row in reader:
                es.append(int(row[ie]))
                us.append(FER_USAGES[row[iu].strip()])
                xs.append(np.asarray(row[ip].split(), dtype=np.uint8))
        x = np.stack(xs).reshape(-1, 48, 48)
        emotion = np.asarray(es, dtype=np.int64)
        usage = np.asarray(us, dtype=np.int64)
    keep_ids = [c for c in range(7) if c not in cfg["drop_classes"]]
    remap = np.full(7, -1, dtype=np.int64)
    for new, old in enumerate(keep_ids):
        remap[old] = new
    labels = remap[emotion]
    ok = labels >= 0
    train_u = [FER_USAGES[u] for u in cfg["train_usage"]]
    val_u = [FER_USAGES[u] for u in cfg["validation_usage"]]
    tr = ok & np.isin(usage, train_u)
    va = ok & np.isin(usage, val_u)
    return x[tr], labels[tr], x[va], labels[va]


def stats(samples):
    s = sorted(samples)
    if not s:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "samples": []}
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "samples": list(samples)}


def machine_info():
    info = {"python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_json(path, obj):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


class Clock:
    """Wall-clock timing of a region (the caller synchronises the device where it must)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False
