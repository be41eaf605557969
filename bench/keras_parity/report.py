#!/usr/bin/env python3
"""Markdown tables of a keras_parity.py --json file (standard library only).

  python3 bench/keras_parity/report.py bench/results/2026-11-30-keras-parity.json
"""
import json
import sys


def main():
    d = json.load(open(sys.argv[1]))
    tol = d["tolerances"]
    print("TensorFlow %s, Keras %s. Errors are against float64 Keras on the same weights, batch and "
          "dropout masks, maximum over %d steps (fer_gpu / Keras float32).\n" % (
              d.get("tensorflow"), d.get("keras"), d["models"][0]["steps"]))
    print("| batch | model | softmax max abs | loss abs | gradient rel. L2 (worst tensor) | zero-gradient noise | "
          "max-pool ties exact / near | BN moving stats (raw) | Adam | inference after the steps | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in d["models"]:
        s = m["summary"]
        print("| %s | %s | %.1e / %.1e | %.1e / %.1e | %.1e / %.1e | %.1e / %.1e | %s / %s | %.1e (%.1e) | %.1e | %.1e / %.1e | %s |" % (
            m.get("batch", "sample"), m["model"], s["probs_err_fer_max"], s["probs_err_keras32_max"],
            s["loss_err_fer_max"], s["loss_err_keras32_max"], s["grad_rel_err_fer_max"], s["grad_rel_err_keras32_max"],
            s["exactly_zero_grads_fer_max"], s["exactly_zero_grads_keras32_max"],
            max(s["maxpool_ties_float64"]), max(s.get("maxpool_near_ties_float64", [0])),
            s["state_rel_err_fer_max"], s["state_rel_err_fer_unadjusted_max"], s["adam_max_abs_err"],
            s["eval_probs_err_fer"], s["eval_probs_err_keras32"], "pass" if m["pass"] else "FAIL"))
    print("\nFree-running (Keras float32 alone from the same weights, same masks): losses per step\n")
    print("| batch | model | fer_gpu | Keras | weight change rel. L2 after the steps (worst tensor) |")
    print("|---|---|---|---|---|")
    for m in d["models"]:
        print("| %s | %s | %s | %s | %.1e |" % (m.get("batch", "sample"), m["model"],
                                               " ".join("%.4f" % v for v in m["free_losses_fer"]),
                                               " ".join("%.4f" % v for v in m["free_losses_keras32"]),
                                               m["summary"]["free_update_rel_l2_max"]))
    print("\nTolerances: %s" % ", ".join("%s %g" % kv for kv in tol.items()))
    if "keras_dropout" in d:
        k = d["keras_dropout"]
        print("\nKeras' own Dropout(%.2f): kept fraction %.3f, kept value %.6f (1/(1-rate) = %.6f)." % (
            k["rate"], k["kept_fraction"], k["kept_value"], k["expected_kept_value"]))
    if "augment" in d:
        a = d["augment"]
        print("\nAugmentation, %d images (15 hand-picked parameter rows that move the border, 49 drawn from the "
              "configs' ranges), values in [0, 1] after rescaling:\n" % a["images"])
        print("| against | max abs | border max | interior max | mean abs | images over half a grey level |")
        print("|---|---|---|---|---|---|")
        for key, name in (("vs_keras_preprocessing", "keras_preprocessing %s ImageDataGenerator.apply_transform" % a.get("keras_preprocessing_version")),
                          ("vs_keras3", "Keras %s ImageDataGenerator.apply_transform" % a.get("keras_version")),
                          ("vs_keras3_axes_swapped_no_shear", "Keras 3, zx/zy exchanged, rows without shear")):
            v = a.get(key)
            if not v or "error" in v:
                print("| %s | %s |" % (name, v.get("error") if v else "not run"))
                continue
            print("| %s | %.2e | %.2e | %.2e | %.2e | %d / %d |" % (name, v["max_abs"], v["border_max_abs"], v["interior_max_abs"],
                                                                   v["mean_abs"], v["images_over_half_grey_level"],
                                                                   len(v["per_image_max_abs"])))
        print("\nCentre of the transform: keras_preprocessing %.3f, Keras 3 %.3f (48-pixel image)." % (
            a.get("keras_preprocessing_centre_estimate", float("nan")), a.get("keras3_centre_estimate", float("nan"))))


if __name__ == "__main__":
    main()
