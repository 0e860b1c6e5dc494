"""Input pipeline alone on the real CIFAR-10 JPEGs: decode, augment, batch.

    mkdir -p .data && tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C .data
    python benchmarks/input_pipeline.py --data-dir .data --output benchmarks/input_pipeline.md

Reports the one-off decode of the 60,000 JPEGs into memory and the images/s of
the training pipeline (shuffle, 4-pixel pad, random crop, flip, batch 128), to
compare with the training throughput: the pipeline should be at least 5x faster.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402
from keras_resnet import data  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--output")
    args = parser.parse_args()
    start = time.perf_counter()
    cifar = data.load_data("cifar10", data_dir=args.data_dir)
    decode_seconds = time.perf_counter() - start
    dataset = data.train_dataset(cifar, 128, seed=0)
    iterator = iter(dataset)
    for _ in range(20):  # warm-up: threads, autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(iterator)
    rate = args.batches * 128 / (time.perf_counter() - start)
    total = cifar.train.num_examples + cifar.test.num_examples
    command = (
        f"python benchmarks/input_pipeline.py --data-dir {args.data_dir} --batches {args.batches}"
    )
    common.report(
        "Input pipeline on real CIFAR-10 JPEGs",
        command,
        [
            f"- decode of {total:,} JPEGs into memory (once per run): {decode_seconds:.1f} s "
            f"({total / decode_seconds:,.0f} images/s)",
            "- training pipeline (shuffle, pad 4, random crop, flip, batch 128): "
            f"**{rate:,.0f} images/s**",
        ],
        args.output,
    )


if __name__ == "__main__":
    main()
