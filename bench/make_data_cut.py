#!/usr/bin/env python3
"""Writes a small FER2013 cut (Kaggle CSV layout, xz-compressed) for the GPU machine's runs.

  make_data_cut.py PACK OUT.csv.xz [--train 3072] [--public 512] [--private 512] [--seed 12]

PACK is ../shared/data/fer2013-6class.ferpack; its reader (unpack_fer2013.py beside it) is
imported. The pack groups rows by class, so rows are drawn at random (seeded, without
replacement) within each usage split: every class appears in about its share. Only the drawn
images are decoded (pure Python, a few seconds; numpy is not needed). A few thousand rows are
enough for a short training run and the loader, and keep the staged folder far under the 64 MiB
that the GPU machine takes (4096 rows: about 8.5 MB compressed, against 53 MB for the pack).
"""
import argparse
import lzma
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('pack')
    ap.add_argument('out')
    ap.add_argument('--train', type=int, default=3072)
    ap.add_argument('--public', type=int, default=512)
    ap.add_argument('--private', type=int, default=512)
    ap.add_argument('--seed', type=int, default=12)
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.pack)))
    import unpack_fer2013 as u  # the pack's own reader

    raw = lzma.decompress(open(a.pack, 'rb').read())
    nl = raw.index(b'\n')
    import json
    hdr = json.loads(raw[:nl])
    n, h, w = hdr['rows'], hdr['height'], hdr['width']
    hw = h * w
    off = nl + 1
    emotion = raw[off:off + n]; off += n
    usage = raw[off:off + n]; off += n
    resid = raw[off:off + n * hw]
    if len(resid) != n * hw:
        sys.exit('%s: truncated pack' % a.pack)

    rng = random.Random(a.seed)
    wanted = {0: a.train, 1: a.public, 2: a.private}
    chosen = []
    for split, count in wanted.items():
        rows = [k for k in range(n) if usage[k] == split]
        if count > len(rows):
            sys.exit('%s: asked for %d %s rows, the pack has %d' % (a.pack, count, u.USAGE[split], len(rows)))
        chosen += sorted(rng.sample(rows, count))
    tmp = a.out + '.tmp'
    with lzma.open(tmp, 'wt', preset=6, newline='\n') as f:
        f.write('emotion,pixels,Usage\n')
        for k in chosen:
            px = u.decode(resid[k * hw:(k + 1) * hw], 1, h, w)
            f.write('%d,%s,%s\n' % (emotion[k], ' '.join(map(str, px)), u.USAGE[usage[k]]))
    os.replace(tmp, a.out)
    print('%s: %d rows (%d Training, %d PublicTest, %d PrivateTest), %.1f MB'
          % (a.out, len(chosen), a.train, a.public, a.private, os.path.getsize(a.out) / 1e6))


if __name__ == '__main__':
    main()
