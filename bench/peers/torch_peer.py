#!/usr/bin/env python3
"""PyTorch peer of `fer_gpu bench`: the same network, recipe and data handling, in PyTorch.

  python3 bench/peers/torch_peer.py configs/model5-v2.toml --device cuda
  python3 bench/peers/torch_peer.py configs/model5-v2.toml --device cpu --modes eager,channels_last
  python3 bench/peers/torch_peer.py configs/model5-v2.toml --device cuda --modes cudagraph \\
      --epochs 50 --data fer2013.csv          # a whole run, validation every epoch, wall clock

Same as fer_gpu: the network built from the same TOML config (Keras layer semantics, Flatten in
H, W, C order, "same" padding with the odd pixel at the bottom/right), glorot-uniform kernels and
zero biases, BatchNormalization momentum 0.99 / epsilon 1e-3 (PyTorch momentum 0.01), Adam 1e-3
with epsilon 1e-7, batch size from the config, the final softmax fused into the cross-entropy,
the config's augmentation (shear, zoom, horizontal flip: one affine warp per image with bilinear
sampling and edge replication, done on the device), uint8 images held on the device and
normalised to [0, 1] there.

Modes (GPU; the CPU runs those without TF32/CUDA graphs):
  eager           FP32, NCHW, TF32 off
  channels_last   NHWC memory format, TF32 on (CPU: NHWC only)
  bf16            channels_last + TF32 + bf16 autocast
  compile         channels_last + TF32 + torch.compile of the model
  compile_bf16    compile + bf16 autocast
  cudagraph       channels_last + TF32, the whole training step (augmentation, forward, loss,
                  backward, Adam with capturable=True) captured once as a CUDA graph and replayed
  cudagraph_bf16  cudagraph + bf16 autocast
Throughput is images/s over `steps` steps per repeat after `warmup` steps, median and spread over
`repeats`, timed with CUDA events on the GPU. --json writes every number.
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MODES = {
    #                 channels_last, tf32,  bf16,  compile, cudagraph
    "eager": (False, False, False, False, False),
    "channels_last": (True, True, False, False, False),
    "bf16": (True, True, True, False, False),
    "compile": (True, True, False, True, False),
    "compile_bf16": (True, True, True, True, False),
    "cudagraph": (True, True, False, False, True),
    "cudagraph_bf16": (True, True, True, False, True),
}
GPU_DEFAULT = "eager,channels_last,bf16,compile,cudagraph,cudagraph_bf16"
CPU_DEFAULT = "eager,channels_last"


# ----------------------------------------------------------------------------- the network

class KerasFlatten(nn.Module):
    """Keras flattens NHWC tensors in (H, W, C) order."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def build_model(cfg):
    h, w, c = cfg["input_shape"]
    shape = (c, h, w)  # or (features,)
    mods = []
    layers = cfg["layers"]
    for i, spec in enumerate(layers):
        t = spec["type"]
        last = i == len(layers) - 1
        act = spec.get("activation", "linear")
        if t == "Conv2D":
            kh, kw = common.pair(spec["kernel_size"])
            sh, sw = common.pair(spec.get("strides", 1))
            cin, hh, ww = shape
            if spec.get("padding", "valid") == "same":
                pt, pb = common.same_padding(hh, kh, sh)
                pl, pr = common.same_padding(ww, kw, sw)
                if pt == pb and pl == pr:
                    conv = nn.Conv2d(cin, spec["filters"], (kh, kw), (sh, sw), padding=(pt, pl))
                    mods.append(conv)
                else:
                    mods.append(nn.ZeroPad2d((pl, pr, pt, pb)))
                    conv = nn.Conv2d(cin, spec["filters"], (kh, kw), (sh, sw))
                    mods.append(conv)
                oh, ow = -(-hh // sh), -(-ww // sw)
            else:
                conv = nn.Conv2d(cin, spec["filters"], (kh, kw), (sh, sw))
                mods.append(conv)
                oh, ow = (hh - kh) // sh + 1, (ww - kw) // sw + 1
            shape = (spec["filters"], oh, ow)
        elif t == "Dense":
            mods.append(nn.Linear(shape[0], spec["units"]))
            shape = (spec["units"],)
        elif t == "BatchNormalization":
            bn = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            mods.append(bn(shape[0], eps=spec.get("epsilon", 1e-3), momentum=1.0 - spec.get("momentum", 0.99)))
            act = "linear"
        elif t in ("MaxPooling2D", "AveragePooling2D"):
            ph, pw = common.pair(spec.get("pool_size", 2))
            sh, sw = common.pair(spec.get("strides", spec.get("pool_size", 2)))
            pool = nn.MaxPool2d if t == "MaxPooling2D" else nn.AvgPool2d
            mods.append(pool((ph, pw), (sh, sw)))
            cin, hh, ww = shape
            shape = (cin, (hh - ph) // sh + 1, (ww - pw) // sw + 1)
            act = "linear"
        elif t == "GlobalAveragePooling2D":
            mods.append(GlobalAvgPool())
            shape = (shape[0],)
            act = "linear"
        elif t == "Dropout":
            mods.append(nn.Dropout(spec["rate"]))
            act = "linear"
        elif t == "Flatten":
            mods.append(KerasFlatten())
            shape = (shape[0] * shape[1] * shape[2],)
            act = "linear"
        elif t == "Activation":
            pass
        else:
            sys.exit("%s: layer type %s is not known to the PyTorch peer" % (cfg["path"], t))
        if act == "relu":
            mods.append(nn.ReLU(inplace=True))
        elif act == "softmax" and not last:
            mods.append(nn.Softmax(dim=1))
        # the last layer's softmax is fused into the loss (cross_entropy on logits)
    model = nn.Sequential(*mods)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)  # Keras glorot_uniform: same fans for conv kernels
            nn.init.zeros_(m.bias)
    return model


def count_flops(cfg, batch):
    """Forward multiply-add FLOPs (2 per MAC) of the convolutions and dense layers."""
    h, w, c = cfg["input_shape"]
    shape = (c, h, w)
    total = 0
    for spec in cfg["layers"]:
        t = spec["type"]
        if t == "Conv2D":
            kh, kw = common.pair(spec["kernel_size"])
            sh, sw = common.pair(spec.get("strides", 1))
            cin, hh, ww = shape
            if spec.get("padding", "valid") == "same":
                oh, ow = -(-hh // sh), -(-ww // sw)
            else:
                oh, ow = (hh - kh) // sh + 1, (ww - kw) // sw + 1
            total += 2 * batch * oh * ow * spec["filters"] * kh * kw * cin
            shape = (spec["filters"], oh, ow)
        elif t == "Dense":
            total += 2 * batch * shape[0] * spec["units"]
            shape = (spec["units"],)
        elif t in ("MaxPooling2D", "AveragePooling2D"):
            ph, pw = common.pair(spec.get("pool_size", 2))
            sh, sw = common.pair(spec.get("strides", spec.get("pool_size", 2)))
            shape = (shape[0], (shape[1] - ph) // sh + 1, (shape[2] - pw) // sw + 1)
        elif t == "GlobalAveragePooling2D":
            shape = (shape[0],)
        elif t == "Flatten":
            shape = (shape[0] * shape[1] * shape[2],)
    return total


# ----------------------------------------------------------------------------- augmentation

def make_augment(cfg):
    """Keras ImageDataGenerator(shear_range, zoom_range, horizontal_flip) as one batched affine
    warp: output pixel -> input coordinate (in_row = zx*r - sin(s)*zy*c, in_col = cos(s)*zy*c
    about the centre), bilinear, edge replication, then the flip."""
    shear = math.radians(cfg["shear_range"])  # Keras takes the range in degrees
    zoom = cfg["zoom_range"]
    flip = cfg["horizontal_flip"]
    if shear == 0 and zoom == 0 and not flip:
        return None

    def augment(x):  # x: [n, 1, h, w] float
        n = x.shape[0]
        dev = x.device
        s = (torch.rand(n, device=dev) * 2 - 1) * shear
        zx = 1 - zoom + torch.rand(n, device=dev) * 2 * zoom
        zy = 1 - zoom + torch.rand(n, device=dev) * 2 * zoom
        f = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=dev)
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0] = torch.cos(s) * zy * f  # input x (column) from output x
        theta[:, 1, 0] = -torch.sin(s) * zy * f  # input y (row) from output x
        theta[:, 1, 1] = zx  # input y from output y
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return augment


# ----------------------------------------------------------------------------- one mode

class Peer:
    def __init__(self, cfg, mode, device, batch, seed, augment_on):
        self.cfg, self.mode, self.device, self.batch = cfg, mode, device, batch
        cl, tf32, bf16, comp, graph = MODES[mode]
        gpu = device.type == "cuda"
        self.channels_last, self.bf16, self.graph = cl, bf16, graph and gpu
        if gpu:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(seed)
        self.model = build_model(cfg).to(device)
        if cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        kwargs = {"lr": cfg["learning_rate"], "betas": (0.9, 0.999), "eps": 1e-7}
        if gpu:
            kwargs["fused"] = True
        if self.graph:
            kwargs["capturable"] = True
        self.opt = torch.optim.Adam(self.model.parameters(), **kwargs)
        self.forward = torch.compile(self.model) if comp else self.model
        self.augment = make_augment(cfg) if augment_on else None
        self.amp_dtype = torch.bfloat16
        self.train_graph = self.infer_graph = None

    def _input(self, xb_u8, augment):
        x = xb_u8.unsqueeze(1).float().mul_(1.0 / 255.0)
        if augment and self.augment is not None:
            x = self.augment(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _loss(self, x, y):
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.bf16):
            logits = self.forward(x)
        return F.cross_entropy(logits.float(), y)

    def _train_eager(self, xb, yb):
        x = self._input(xb, True)
        loss = self._loss(x, yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def _capture_train(self, xb, yb):
        self.static_x = xb.clone()
        self.static_y = yb.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                self._train_eager(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(s)
        self.train_graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.train_graph):
            x = self._input(self.static_x, True)
            self.static_loss = self._loss(x, self.static_y)
            self.static_loss.backward()
            self.opt.step()

    def train_step(self, xb, yb):
        self.model.train()
        if not self.graph:
            return self._train_eager(xb, yb)
        if self.train_graph is None:
            self._capture_train(xb, yb)
        self.static_x.copy_(xb, non_blocking=True)
        self.static_y.copy_(yb, non_blocking=True)
        self.train_graph.replay()
        return self.static_loss

    def _infer_eager(self, xb):
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.bf16):
            return self.forward(self._input(xb, False))

    def infer_step(self, xb):
        self.model.eval()
        if not self.graph or xb.shape[0] != self.batch:
            return self._infer_eager(xb)
        if self.infer_graph is None:
            self.static_xi = xb.clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    self._infer_eager(self.static_xi)
            torch.cuda.current_stream().wait_stream(s)
            self.infer_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.infer_graph):
                self.static_logits = self._infer_eager(self.static_xi)
        self.static_xi.copy_(xb, non_blocking=True)
        self.infer_graph.replay()
        return self.static_logits


class Timer:
    def __init__(self, device):
        self.gpu = device.type == "cuda"

    def __enter__(self):
        if self.gpu:
            self.a = torch.cuda.Event(enable_timing=True)
            self.b = torch.cuda.Event(enable_timing=True)
            self.a.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.gpu:
            self.b.record()
            self.b.synchronize()
            self.seconds = self.a.elapsed_time(self.b) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0
        return False


def throughput(cfg, mode, device, args, pool_x, pool_y):
    peer = Peer(cfg, mode, device, args.batch_size, args.seed, not args.no_augment)
    b = args.batch_size
    nb = pool_x.shape[0] // b
    batches = [(pool_x[i * b:(i + 1) * b], pool_y[i * b:(i + 1) * b]) for i in range(nb)]
    k = 0
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        peer.train_step(*batches[k % nb]); k += 1
    loss = peer.train_step(*batches[k % nb]); k += 1
    float(loss.detach())  # synchronises
    setup_s = time.perf_counter() - t0
    train = []
    for _ in range(args.repeats):
        with Timer(device) as t:
            for _ in range(args.steps):
                loss = peer.train_step(*batches[k % nb]); k += 1
        train.append(args.steps * b / t.seconds)
    final_loss = float(loss.detach())
    for _ in range(max(1, min(args.warmup, 3))):
        peer.infer_step(batches[k % nb][0]); k += 1
    infer = []
    for _ in range(args.repeats):
        with Timer(device) as t:
            for _ in range(args.steps):
                peer.infer_step(batches[k % nb][0]); k += 1
        infer.append(args.steps * b / t.seconds)
    flops = 3 * count_flops(cfg, b)
    r = {
        "mode": mode,
        "train_images_per_s": common.stats(train),
        "infer_images_per_s": common.stats(infer),
        "final_loss": final_loss,
        "warmup_and_setup_s": setup_s,
        "step_gflop": flops / 1e9,
    }
    if not math.isfinite(final_loss):
        r["error"] = "loss is not finite"
    return r


def full_run(cfg, mode, device, args, data):
    """A whole training run: shuffled epochs (drop_last), validation every epoch; wall clock from
    the model's creation to the last validation result on the host, compilation and capture
    included. Data already on the device."""
    xt, yt, xv, yv = data
    b = args.batch_size
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    peer = Peer(cfg, mode, device, b, args.seed, not args.no_augment)
    steps = xt.shape[0] // b
    if steps < 1 or xv.shape[0] < 1:
        raise ValueError("a whole run needs at least one training batch and one validation image")
    history = []
    for epoch in range(args.epochs):
        perm = torch.randperm(xt.shape[0], device=device)
        loss_sum = torch.zeros((), device=device)
        for s in range(steps):
            idx = perm[s * b:(s + 1) * b]
            loss_sum += peer.train_step(xt[idx], yt[idx]).detach()
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for s in range(0, xv.shape[0], b):
            logits = peer.infer_step(xv[s:s + b])
            correct += (logits.argmax(1) == yv[s:s + b]).sum()
        history.append((float(loss_sum) / steps, int(correct) / xv.shape[0]))  # one sync per epoch
    wall = time.perf_counter() - t0
    return {
        "mode": mode,
        "epochs": args.epochs,
        "wall_s": wall,
        "train_images": int(xt.shape[0]),
        "validation_images": int(xv.shape[0]),
        "final_train_loss": history[-1][0],
        "final_val_accuracy": history[-1][1],
        "best_val_accuracy": max(a for _, a in history),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--modes", default=None, help="comma-separated (default: GPU %s; CPU %s)" % (GPU_DEFAULT, CPU_DEFAULT))
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0, help="timed steps per repeat (default: cuda 50, cpu 10)")
    ap.add_argument("--warmup", type=int, default=0, help="(default: cuda 10, cpu 3)")
    ap.add_argument("--repeats", type=int, default=0, help="(default: cuda 5, cpu 3)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: all CPUs this process may use)")
    ap.add_argument("--data", default="", help="FER2013 CSV (emotion,pixels,Usage) or .npz (x, emotion, usage)")
    ap.add_argument("--epochs", type=int, default=0, help="also time a whole run of this many epochs per mode")
    ap.add_argument("--no-augment", action="store_true", help="leave the config's augmentation out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    cfg = common.load_config(args.config)
    gpu = args.device == "cuda"
    if gpu and not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device (use --device cpu)")
    device = torch.device(args.device)
    args.batch_size = args.batch_size or cfg["batch_size"]
    args.steps = args.steps or (50 if gpu else 10)
    args.warmup = args.warmup or (10 if gpu else 3)
    args.repeats = args.repeats or (5 if gpu else 3)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    modes = (args.modes or (GPU_DEFAULT if gpu else CPU_DEFAULT)).split(",")
    for m in modes:
        if m not in MODES:
            sys.exit("unknown mode %s (known: %s)" % (m, ", ".join(MODES)))
        if not gpu and MODES[m][4]:
            sys.exit("mode %s needs a GPU (CUDA graphs)" % m)

    # Data resident on the device: the pool the throughput cycles through, and for a whole run
    # the full split (real data, or synthetic at FER2013's split sizes).
    split = common.fer2013_split_sizes(cfg)
    if args.data:
        xt, yt, xv, yv = common.load_real_data(cfg, args.data)
        data_desc = "real data: %s (%d train + %d validation images)" % (args.data, len(xt), len(xv))
    else:
        n_train, n_val = split if (split and args.epochs) else (args.batch_size * 4, args.batch_size)
        xt, yt, xv, yv = common.synthetic_data(cfg, n_train, n_val, args.seed)
        data_desc = "synthetic (uniform random pixels and labels, seed %d)" % args.seed
    pool_n = min(len(xt), args.batch_size * (16 if args.data else 4))
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(xt))[:pool_n]
    pool_x = torch.from_numpy(xt[pick]).to(device)
    pool_y = torch.from_numpy(yt[pick]).to(device)
    if pool_n < args.batch_size:
        sys.exit("fewer training images (%d) than one batch" % pool_n)

    info = common.machine_info()
    info["torch"] = torch.__version__
    info["threads"] = torch.get_num_threads()
    if gpu:
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = p.name
        info["sms"] = p.multi_processor_count
    out = {"peer": "pytorch", "config": args.config, "model": cfg["name"], "device": args.device,
           "batch": args.batch_size, "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
           "augment": not args.no_augment, "data": data_desc, "machine": info, "results": [], "runs": []}
    print("pytorch %s peer: %s on %s (%s), batch %d, %s" % (torch.__version__, cfg["name"], args.device,
          info.get("gpu", info.get("cpu", "?")) + ", %d threads" % info["threads"], args.batch_size, data_desc))
    print("%-16s %14s %20s %14s %20s" % ("mode", "train img/s", "[min, max]", "infer img/s", "[min, max]"))
    for m in modes:
        try:
            r = throughput(cfg, m, device, args, pool_x, pool_y)
        except Exception as e:  # a mode that does not work here is reported, not fatal
            r = {"mode": m, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")}
        out["results"].append(r)
        if "train_images_per_s" in r:
            t, i = r["train_images_per_s"], r["infer_images_per_s"]
            print("%-16s %14.1f %20s %14.1f %20s" % (m, t["median"], "[%.1f, %.1f]" % (t["min"], t["max"]),
                  i["median"], "[%.1f, %.1f]" % (i["min"], i["max"])), flush=True)
        else:
            print("%-16s failed: %s" % (m, r["error"]), flush=True)
        common.write_json(args.json, out)

    if args.epochs:
        data = tuple(torch.from_numpy(a).to(device) for a in (xt, yt, xv, yv))
        for m in modes:
            try:
                r = full_run(cfg, m, device, args, data)
                print("%s: %d epochs in %.1f s (val accuracy %.4f final, %.4f best)" % (
                    m, r["epochs"], r["wall_s"], r["final_val_accuracy"], r["best_val_accuracy"]), flush=True)
            except Exception as e:
                r = {"mode": m, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")}
                print("%s: whole run failed: %s" % (m, r["error"]), flush=True)
            out["runs"].append(r)
            common.write_json(args.json, out)
    common.write_json(args.json, out)


if __name__ == "__main__":
    main()
