#!/usr/bin/env python3
"""Comparison tables (markdown) from the JSON files a bench suite run leaves in one folder:

  fer_<config>.json     fer_gpu bench --json   (results per device: cpu and/or cuda)
  fer_bf16_<config>.json  the same with --precision bf16 (a "fer_gpu <device> bf16" column)
  fer_run_<config>.json a whole `fer_gpu train` run, written by bench/gpu_bench.sh
                        ({"device", "epochs", "wall_s", "final_val_accuracy", "best_val_accuracy"})
  torch_<config>.json   bench/peers/torch_peer.py --json   (results per mode, optional whole runs)
  keras_<config>.json   bench/peers/keras_peer.py --json   (results per mode)

  suite_table.py WORKDIR --configs model4,model5 --fer-device cpu [--metric train|infer]

Prints one row per config: GFLOP per training step, fer_gpu's images/s on each device present
(and their GPU/CPU ratio when both are), every peer mode's images/s, and fer_gpu (on
--fer-device) divided by the fastest peer mode; then the whole runs, when there are any.
Standard library only.
"""
import argparse
import json
import os

PEER_ORDER = [("torch", ["eager", "channels_last", "bf16", "compile", "compile_bf16", "cudagraph",
                         "cudagraph_bf16"]),
              ("keras", ["graph", "xla", "fit"])]
PEER_NAMES = {"torch": "PyTorch", "keras": "Keras/TF"}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, best=0.0):
    if not v:
        return "-"
    return "%.1f (%.1f)" % (v, best) if best else "%.1f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--configs", required=True)
    ap.add_argument("--fer-device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--peer-device", default="", help="only peer files measured on this device")
    ap.add_argument("--metric", default="train", choices=["train", "infer"])
    ap.add_argument("--show-best", action="store_true",
                    help="cells read 'median (best repeat)': on a shared machine the best repeat is the least disturbed")
    args = ap.parse_args()
    key = "%s_images_per_s" % args.metric
    configs = args.configs.split(",")

    fer, fer_bf16, peers = {}, {}, {}
    for c in configs:
        fer[c] = load(os.path.join(args.workdir, "fer_%s.json" % c))
        fer_bf16[c] = load(os.path.join(args.workdir, "fer_bf16_%s.json" % c))
        for peer, _ in PEER_ORDER:
            d = load(os.path.join(args.workdir, "%s_%s.json" % (peer, c)))
            if d and (not args.peer_device or d.get("device") == args.peer_device):
                peers[(peer, c)] = d

    fer_devices = [d for d in ("cuda", "cpu")
                   if any(f and any(r["device"] == d for r in f.get("results", [])) for f in fer.values())]
    columns = []
    for peer, modes in PEER_ORDER:
        for m in modes:
            if any(any(r.get("mode") == m for r in d.get("results", [])) for (p, _), d in peers.items() if p == peer):
                columns.append((peer, m))

    with_bf16 = any(fer_bf16.values())
    head = ["model", "GFLOP/step"] + ["fer_gpu %s%s" % (d, " (tf32)" if d == "cuda" else "") for d in fer_devices]
    if with_bf16:
        head.append("fer_gpu %s bf16" % args.fer_device)
    both = len(fer_devices) == 2
    if both:
        head.append("GPU/CPU")
    head += ["%s %s" % (PEER_NAMES[p], m) for p, m in columns]
    head += ["fer_gpu %s / best peer" % args.fer_device]
    if with_bf16:
        head.append("fer_gpu bf16 / PyTorch bf16")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for c in configs:
        row = [c]
        f = fer[c]
        gflop = 0.0
        mine = 0.0
        cells = []
        by_device = {}
        for d in fer_devices:
            v = b = 0.0
            for r in (f or {}).get("results", []):
                if r["device"] == d:
                    v = r[key]["median"]
                    b = r[key]["max"] if args.show_best else 0.0
                    gflop = r["step_flops"] / 1e9 if args.metric == "train" else r["infer_flops"] / 1e9
                    if d == args.fer_device:
                        mine = v
            by_device[d] = v
            cells.append(fmt(v, b))
        row.append("%.1f" % gflop if gflop else "-")
        row += cells
        mine_bf16 = 0.0
        if with_bf16:
            v = b = 0.0
            for r in (fer_bf16[c] or {}).get("results", []):
                if r["device"] == args.fer_device:
                    v = r[key]["median"]
                    b = r[key]["max"] if args.show_best else 0.0
            mine_bf16 = v
            row.append(fmt(v, b))
        if both:
            g, c_ = by_device.get("cuda", 0), by_device.get("cpu", 0)
            row.append("%.1fx" % (g / c_) if g and c_ else "-")
        best = 0.0
        torch_bf16 = 0.0
        for p, m in columns:
            v = b = 0.0
            d = peers.get((p, c))
            for r in (d or {}).get("results", []):
                if r.get("mode") == m and key in r:
                    v = r[key]["median"]
                    b = r[key]["max"] if args.show_best else 0.0
            if not (with_bf16 and "bf16" in m):  # with a bf16 column, bf16 is compared with bf16
                best = max(best, v)
            if p == "torch" and m == "bf16":
                torch_bf16 = v
            row.append(fmt(v, b))
        row.append("%.2fx" % (mine / best) if mine and best else "-")
        if with_bf16:
            row.append("%.2fx" % (mine_bf16 / torch_bf16) if mine_bf16 and torch_bf16 else "-")
        print("| " + " | ".join(row) + " |")

    runs = []
    for c in configs:
        d = load(os.path.join(args.workdir, "fer_run_%s.json" % c))
        if d:
            runs.append((c, "fer_gpu %s" % d.get("device", "?"), d))
        for (p, c2), d in sorted(peers.items()):
            if p == "torch" and c2 == c:
                runs += [(c, "PyTorch %s" % r.get("mode"), r) for r in d.get("runs", [])]
    if runs:
        print()
        print("| model | engine | epochs | wall clock s | final val accuracy | best val accuracy |")
        print("|---|---|---|---|---|---|")
        for c, who, r in runs:
            if "error" in r:
                print("| %s | %s | - | failed: %s | | |" % (c, who, r["error"]))
            else:
                acc = lambda k: "%.4f" % r[k] if isinstance(r.get(k), (int, float)) else "-"
                print("| %s | %s | %s | %.1f | %s | %s |" % (c, who, r.get("epochs", "-"), r["wall_s"],
                                                           acc("final_val_accuracy"), acc("best_val_accuracy")))


if __name__ == "__main__":
    main()
