#!/usr/bin/env python3
"""Cut the committed sample from the full Kaggle-layout FER2013 CSV.

  python3 ../shared/data/unpack_fer2013.py ../shared/data/fer2013-6class.ferpack --csv /tmp/fer2013.csv
  python3 data/sample/make_sample.py /tmp/fer2013.csv data/sample/fer2013_sample.csv

The data-parallel accuracy test's two-class cut (tests/distributed/mpi_test.cpp):

  python3 data/sample/make_sample.py /tmp/fer2013.csv data/sample/fer2013_happy_surprise.csv \
      --emotions 3 5 --training 120 --public 50 --private 0

Takes, for every (Usage, emotion) group, rows evenly spaced through the group (first, then every
len/k-th), so the sample is deterministic and spans the whole set. Output keeps the Kaggle
layout (emotion,pixels,Usage, LF line endings). Standard library only.
"""
import argparse
import collections

PER_CLASS = {'Training': 12, 'PublicTest': 3, 'PrivateTest': 3}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('full_csv')
    ap.add_argument('out_csv')
    ap.add_argument('--emotions', type=int, nargs='+', default=list(range(7)), help='FER ids to keep')
    ap.add_argument('--training', type=int, default=PER_CLASS['Training'], help='Training rows per class')
    ap.add_argument('--public', type=int, default=PER_CLASS['PublicTest'], help='PublicTest rows per class')
    ap.add_argument('--private', type=int, default=PER_CLASS['PrivateTest'], help='PrivateTest rows per class')
    a = ap.parse_args()
    per_class = {'Training': a.training, 'PublicTest': a.public, 'PrivateTest': a.private}
    groups = collections.OrderedDict()
    with open(a.full_csv, newline='') as f:
        header = f.readline().rstrip('\r\n')
        assert header == 'emotion,pixels,Usage', header
        for line in f:
            line = line.rstrip('\r\n')
            emotion, _, usage = line.split(',')
            groups.setdefault((usage, int(emotion)), []).append(line)
    out = []
    for usage in ('Training', 'PublicTest', 'PrivateTest'):
        for emotion in range(7):
            if emotion not in a.emotions:
                continue
            rows = groups.get((usage, emotion), [])
            k = min(per_class[usage], len(rows))
            out += [rows[i * len(rows) // k] for i in range(k)]
    with open(a.out_csv, 'w', newline='\n') as f:
        f.write('emotion,pixels,Usage\n')
        for line in out:
            f.write(line + '\n')
    print('%d rows -> %s' % (len(out), a.out_csv))


if __name__ == '__main__':
    main()
