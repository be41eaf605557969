#!/usr/bin/env python3
"""Keras/TensorFlow peer of `fer_gpu bench`: the original Keras models, built with tf.keras from the
same TOML configs, trained with the original recipe, timed the way `fer_gpu bench` times.

  python3 bench/peers/keras_peer.py configs/model5-v2.toml                 # CPU, modes graph,fit
  python3 bench/peers/keras_peer.py configs/model8.toml --modes graph --steps 10 --json k.json

The model is keras.Sequential of the config's layers with Keras' own defaults (it is the original
network: Conv2D/Dense glorot-uniform kernels and zero biases, BatchNormalization momentum 0.99 and
epsilon 1e-3, the final softmax and a cross-entropy on it), Adam(1e-3, epsilon 1e-7), the config's
batch size. uint8 images are held in memory as tensors and normalised to [0, 1] inside the step;
the config's augmentation (shear, zoom, horizontal flip) is one projective warp per image
(ImageProjectiveTransformV3, bilinear, nearest fill: what Keras' own random-zoom layer runs).

Modes:
  graph   a tf.function training step (GradientTape, apply_gradients): what model.fit runs,
          without fit's per-batch callbacks
  xla     the same step with jit_compile=True
  fit     model.fit on a tf.data pipeline (normalise + augment in the pipeline, prefetch)
Throughput is images/s over `steps` steps per repeat after `warmup` steps, median and spread over
`repeats`. --json writes every number. Threads: --threads (default: all CPUs this process may use).
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402


def build_model(cfg, keras):
    L = keras.layers
    h, w, c = cfg["input_shape"]
    layers = [keras.Input(shape=(h, w, c))]
    for spec in cfg["layers"]:
        t = spec["type"]
        act = spec.get("activation", None)
        if t == "Conv2D":
            layers.append(L.Conv2D(spec["filters"], common.pair(spec["kernel_size"]),
                                   strides=common.pair(spec.get("strides", 1)),
                                   padding=spec.get("padding", "valid"), activation=act))
        elif t == "Dense":
            layers.append(L.Dense(spec["units"], activation=act))
        elif t == "BatchNormalization":
            layers.append(L.BatchNormalization(momentum=spec.get("momentum", 0.99),
                                               epsilon=spec.get("epsilon", 1e-3)))
        elif t == "MaxPooling2D":
            layers.append(L.MaxPooling2D(common.pair(spec.get("pool_size", 2)),
                                         strides=common.pair(spec["strides"]) if "strides" in spec else None))
        elif t == "AveragePooling2D":
            layers.append(L.AveragePooling2D(common.pair(spec.get("pool_size", 2)),
                                             strides=common.pair(spec["strides"]) if "strides" in spec else None))
        elif t == "GlobalAveragePooling2D":
            layers.append(L.GlobalAveragePooling2D())
        elif t == "Dropout":
            layers.append(L.Dropout(spec["rate"]))
        elif t == "Flatten":
            layers.append(L.Flatten())
        elif t == "Activation":
            layers.append(L.Activation(spec["activation"]))
        else:
            sys.exit("%s: layer type %s is not known to the Keras peer" % (cfg["path"], t))
    return keras.Sequential(layers)


def make_augment(cfg, tf):
    shear = math.radians(cfg["shear_range"])
    zoom = cfg["zoom_range"]
    flip = cfg["horizontal_flip"]
    h, w, _ = cfg["input_shape"]
    if shear == 0 and zoom == 0 and not flip:
        return None
    o_r, o_c = h / 2 + 0.5, w / 2 + 0.5  # keras_preprocessing 1.x centre

    def augment(x):  # [n, h, w, 1] float
        n = tf.shape(x)[0]
        s = tf.random.uniform([n], -shear, shear) if shear else tf.zeros([n])
        zx = tf.random.uniform([n], 1 - zoom, 1 + zoom)
        zy = tf.random.uniform([n], 1 - zoom, 1 + zoom)
        cs, sn = tf.cos(s) * zy, tf.sin(s) * zy
        zeros = tf.zeros([n])
        # output (col x, row y) -> input: col = cs*(x-oc)+oc; row = zx*(y-or) - sn*(x-oc) + or
        t = tf.stack([cs, zeros, o_c * (1 - cs),
                      -sn, zx, o_r * (1 - zx) + sn * o_c,
                      zeros, zeros], axis=1)
        y = tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=t, output_shape=[h, w], fill_value=0.0,
                                                  interpolation="BILINEAR", fill_mode="NEAREST")
        if flip:
            f = tf.random.uniform([n]) < 0.5
            y = tf.where(f[:, None, None, None], tf.reverse(y, axis=[2]), y)
        return y

    return augment


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--modes", default="graph,fit")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data", default="", help="FER2013 CSV (emotion,pixels,Usage) or .npz (x, emotion, usage)")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    import tensorflow as tf
    import keras

    threads = args.threads or len(os.sched_getaffinity(0))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    try:
        tf.config.set_visible_devices([], "GPU")  # the CPU peer
    except Exception:
        pass
    keras.utils.set_random_seed(args.seed)

    cfg = common.load_config(args.config)
    b = args.batch_size or cfg["batch_size"]
    if args.data:
        xt, yt, _, _ = common.load_real_data(cfg, args.data)
        data_desc = "real data: %s" % args.data
    else:
        xt, yt, _, _ = common.synthetic_data(cfg, b * 4, 1, args.seed)
        data_desc = "synthetic (uniform random pixels and labels, seed %d)" % args.seed
    pool_n = min(len(xt), b * (16 if args.data else 4))
    pick = np.random.default_rng(args.seed).permutation(len(xt))[:pool_n]
    xt, yt = xt[pick], yt[pick].astype(np.int32)
    nb = pool_n // b
    if nb < 1:
        sys.exit("fewer training images than one batch")
    batches = [(tf.constant(xt[i * b:(i + 1) * b][..., None]), tf.constant(yt[i * b:(i + 1) * b])) for i in range(nb)]
    augment = None if args.no_augment else make_augment(cfg, tf)

    info = common.machine_info()
    info.update({"tensorflow": tf.__version__, "keras": keras.__version__, "threads": threads})
    out = {"peer": "keras", "config": args.config, "model": cfg["name"], "device": "cpu", "batch": b,
           "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "augment": augment is not None,
           "data": data_desc, "machine": info, "results": []}
    print("keras %s / tensorflow %s peer: %s on cpu (%s, %d threads), batch %d, %s" % (
        keras.__version__, tf.__version__, cfg["name"], info.get("cpu", "?"), threads, b, data_desc))
    print("%-8s %14s %20s %14s %20s" % ("mode", "train img/s", "[min, max]", "infer img/s", "[min, max]"))

    def prep(x_u8, training):
        x = tf.cast(x_u8, tf.float32) * (1.0 / 255.0)
        if training and augment is not None:
            x = augment(x)
        return x

    for mode in args.modes.split(","):
        try:
            keras.backend.clear_session()
            keras.utils.set_random_seed(args.seed)
            model = build_model(cfg, keras)
            opt = keras.optimizers.Adam(learning_rate=cfg["learning_rate"], beta_1=0.9, beta_2=0.999, epsilon=1e-7)
            loss_fn = keras.losses.SparseCategoricalCrossentropy()
            k = 0
            if mode in ("graph", "xla"):
                jit = mode == "xla"

                def core(x, y):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(y, model(x, training=True))
                    grads = tape.gradient(loss, model.trainable_variables)
                    opt.apply_gradients(zip(grads, model.trainable_variables))
                    return loss

                if jit:  # XLA has no kernel for the warp: augment in a graph, then the compiled step
                    aug = tf.function(lambda x_u8: prep(x_u8, True))
                    core_xla = tf.function(core, jit_compile=True)

                    def train_step(x_u8, y):
                        return core_xla(aug(x_u8), y)
                else:
                    @tf.function
                    def train_step(x_u8, y):
                        return core(prep(x_u8, True), y)

                @tf.function(jit_compile=jit)
                def infer_step(x_u8):
                    return model(prep(x_u8, False), training=False)

                def run_train(n):
                    nonlocal k
                    loss = None
                    for _ in range(n):
                        loss = train_step(*batches[k % nb]); k += 1
                    return float(loss)  # waits for the last step

                def run_infer(n):
                    nonlocal k
                    y = None
                    for _ in range(n):
                        y = infer_step(batches[k % nb][0]); k += 1
                    return y.numpy()
            elif mode == "fit":
                model.compile(optimizer=opt, loss=loss_fn, jit_compile=False)
                xs = tf.constant(xt[: nb * b][..., None])
                ys = tf.constant(yt[: nb * b])
                ds = (tf.data.Dataset.from_tensor_slices((xs, ys)).repeat().batch(b, drop_remainder=True)
                      .map(lambda x, y: (prep(x, True), y), num_parallel_calls=tf.data.AUTOTUNE)
                      .prefetch(tf.data.AUTOTUNE))
                dsi = (tf.data.Dataset.from_tensor_slices(xs).repeat().batch(b, drop_remainder=True)
                       .map(lambda x: prep(x, False), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

                def run_train(n):
                    h = model.fit(ds, epochs=1, steps_per_epoch=n, verbose=0, shuffle=False)
                    return float(h.history["loss"][-1])

                def run_infer(n):
                    return model.predict(dsi, steps=n, verbose=0)
            else:
                raise ValueError("unknown mode %s (graph, xla, fit)" % mode)

            t0 = time.perf_counter()
            run_train(args.warmup)
            setup_s = time.perf_counter() - t0
            train = []
            final_loss = float("nan")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                final_loss = run_train(args.steps)
                train.append(args.steps * b / (time.perf_counter() - t0))
            run_infer(max(1, min(args.warmup, 3)))
            infer = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run_infer(args.steps)
                infer.append(args.steps * b / (time.perf_counter() - t0))
            r = {"mode": mode, "train_images_per_s": common.stats(train), "infer_images_per_s": common.stats(infer),
                 "final_loss": final_loss, "warmup_and_setup_s": setup_s,
                 "parameters": int(model.count_params())}
            t, i = r["train_images_per_s"], r["infer_images_per_s"]
            print("%-8s %14.1f %20s %14.1f %20s" % (mode, t["median"], "[%.1f, %.1f]" % (t["min"], t["max"]),
                  i["median"], "[%.1f, %.1f]" % (i["min"], i["max"])), flush=True)
        except Exception as e:
            r = {"mode": mode, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")}
            print("%-8s failed: %s" % (mode, r["error"]), flush=True)
        out["results"].append(r)
        common.write_json(args.json, out)
    common.write_json(args.json, out)


if __name__ == "__main__":
    main()
