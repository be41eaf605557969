#!/usr/bin/env python3
"""A fer_gpu run's history.csv as a markdown table beside the original project's reference points
for model5-v2 (standard library only).

  python3 bench/keras_parity/curve_table.py RUN_DIR/history.csv >> bench/results/FILE.md

The original project's model5-v2 (Keras 2, 6 classes) published curve: about 0.32 training
accuracy after epoch 1, about 0.41 validation accuracy after epoch 2, best validation accuracy
about 0.64 over 50 epochs (the README's table). Only those points are known, so only they are
shown beside fer_gpu's epochs.
"""
import csv
import sys

ORIGINAL = {1: "train ~0.32", 2: "val ~0.41", 50: "best val ~0.64"}


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    if not rows:
        print("(no finished epoch yet)")
        return
    print("| epoch | loss | accuracy | val_loss | val_accuracy | seconds | original |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        e = int(r["epoch"])
        print("| %d | %.4f | %.4f | %.4f | %.4f | %.0f | %s |" % (
            e, float(r["loss"]), float(r["accuracy"]), float(r["val_loss"]), float(r["val_accuracy"]),
            float(r["seconds"]), ORIGINAL.get(e, "")))
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    print("\nBest validation accuracy after %d of 50 epochs: **%.4f** (epoch %s); the original: about 0.64 "
          "after 50." % (len(rows), float(best["val_accuracy"]), best["epoch"]))


if __name__ == "__main__":
    main()
