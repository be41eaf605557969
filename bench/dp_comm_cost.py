#!/usr/bin/env python3
"""Data-parallel communication cost per step of each numbered model, on paper.

For every configs/model*.toml: trainable parameters (Conv2D, Dense, BatchNormalization gamma/beta,
as fer_gpu summary counts them), the FP32 gradient bytes one all-reduce moves per step, the
forward multiply-adds per image, and the time of a ring all-reduce (each rank sends and receives
2 (N-1)/N of the buffer: the bandwidth term of NCCL's ring algorithm; latency left out) over
NVLink-class (400 GB/s bus bandwidth, what NCCL reaches on H100 NVLink 4) and a 100 Gb/s network
(12.5 GB/s). Compute per step is the forward+backward arithmetic (3x the forward) of the rank's
share of a global batch of 128 at an ASSUMED sustained rate (not measured here: no GPU): the
"compute" columns say how many milliseconds of arithmetic the all-reduce competes with.

Usage: python3 bench/dp_comm_cost.py [--tflops 30] [--batch 128]
"""
import argparse
import glob
import os
import tomllib


def analyse(path):
    cfg = tomllib.load(open(path, "rb"))
    h, w, c = cfg["model"]["input_shape"]
    params = 0
    macs = 0
    flat = None
    for layer in cfg["layers"]:
        t = layer["type"]
        if t == "Conv2D":
            k = layer["kernel_size"]
            kh, kw = (k, k) if isinstance(k, int) else k
            s = layer.get("strides", 1)
            sh, sw = (s, s) if isinstance(s, int) else s
            if layer.get("padding", "valid") == "same":
                oh, ow = -(-h // sh), -(-w // sw)
            else:
                oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
            f = layer["filters"]
            params += kh * kw * c * f + f
            macs += oh * ow * f * kh * kw * c
            h, w, c = oh, ow, f
        elif t == "MaxPooling2D" or t == "AveragePooling2D":
            p = layer.get("pool_size", 2)
            ph, pw = (p, p) if isinstance(p, int) else p
            s = layer.get("strides", (ph, pw))
            sh, sw = (s, s) if isinstance(s, int) else s
            h, w = (h - ph) // sh + 1, (w - pw) // sw + 1
        elif t == "BatchNormalization":
            params += 2 * (c if flat is None else flat)
        elif t == "Flatten":
            flat = h * w * c
        elif t == "Dense":
            units = layer["units"]
            params += flat * units + units
            macs += flat * units
            flat = units
    return params, macs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflops", type=float, default=30.0, help="assumed sustained TFLOP/s of one GPU")
    ap.add_argument("--batch", type=int, default=128, help="global batch")
    a = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    links = {"NVLink 400 GB/s": 400e9, "100 Gb/s": 12.5e9}
    print("| model | params | gradient MB | fwd GFLOP/img | " +
          " | ".join(f"all-reduce ms N={n}, {l}" for n in (2, 8) for l in links) +
          " | " + " | ".join(f"compute ms/step N={n}" for n in (1, 2, 8)) + " |")
    print("|" + "---|" * (4 + 4 + 3))
    for path in sorted(glob.glob(os.path.join(root, "configs", "model*.toml"))):
        name = os.path.basename(path)[:-5]
        params, macs = analyse(path)
        grad = 4 * params
        row = [name, f"{params:,}", f"{grad / 1e6:.1f}", f"{2 * macs / 1e9:.3f}"]
        for n in (2, 8):
            for bw in links.values():
                row.append(f"{2 * (n - 1) / n * grad / bw * 1e3:.2f}")
        for n in (1, 2, 8):
            flops = 3 * 2 * macs * (a.batch / n)
            row.append(f"{flops / (a.tflops * 1e12) * 1e3:.2f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
