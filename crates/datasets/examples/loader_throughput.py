"""The Python side of `loader_throughput.rs`: the same test transform with Pillow + numpy.

PIL open + convert("RGB"), Resize(224) on the shorter side (bicubic, as
torchvision computes the size), CenterCrop(224), to float, CLIP normalise;
`--threads` worker processes like a DataLoader with that many workers.

    python loader_throughput.py --dir /tmp/datasets-throughput --threads 2
"""
import argparse
import os
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)
SIZE = 224


def transform(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = SIZE, int(SIZE * h / w)
    else:
        nw, nh = int(SIZE * w / h), SIZE
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - SIZE) / 2.0)), int(round((nh - SIZE) / 2.0))
    img = img.crop((left, top, left + SIZE, top + SIZE))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - MEAN) / STD


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/datasets-throughput")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    files = sorted(os.path.join(args.dir, f) for f in os.listdir(args.dir) if f.endswith(".jpg"))
    print(f"{len(files)} files, Pillow {Image.__version__}")
    print(f"{'workers':>8} {'seconds':>10} {'images/s':>10}")
    for workers in [1, args.threads]:
        with Pool(workers) as pool:
            pool.map(transform, files[: args.batch])  # warm up
            start = time.perf_counter()
            for i in range(0, len(files), args.batch):
                batch = np.stack(pool.map(transform, files[i : i + args.batch], chunksize=4))
            secs = time.perf_counter() - start
        print(f"{workers:>8} {secs:>10.3f} {len(files) / secs:>10.1f}")


if __name__ == "__main__":
    main()
