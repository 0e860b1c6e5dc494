"""Peak memory of training CIFAR ResNet-110 and ResNet-1202 at batch 128.

Each run is a fresh process running `keras_resnet.training.train` (train.py's
code path) on the synthetic CIFAR-shaped dataset for a few steps, then its
test evaluation and export (model.keras, SavedModel), as `train.py` does; the
process's peak resident set size (`ru_maxrss`) is the figure. The
same network in PyTorch (the benchmark's eager channels_last model of
train_throughput.py) is measured the same way for comparison. A run the
kernel kills for lack of memory is reported with the peak it had reached. Peak RSS
includes the framework itself and the in-memory dataset (50,000 uint8 images,
150 MB for ours; PyTorch trains on one pre-made batch).

    python benchmarks/memory.py --depths 110 1202 --output benchmarks/results.md
"""

import argparse
import os
import signal
import subprocess
import sys

import common

OURS = """
import sys, tempfile
from keras_resnet import training
depth, steps, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as run_dir:
    config = training.TrainConfig(dataset="synthetic", depth=depth, steps=steps, batch_size=batch,
                                  steps_per_epoch=steps, output_dir=run_dir, log_every=1000)
    summary = training.train(config, log=lambda line: None)
print(summary["examples_per_second"] or 0, file=sys.stderr)
"""

PYTORCH = """
import sys
import train_throughput
print(train_throughput.pytorch(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), warmup=2),
      file=sys.stderr)
"""


def peak_memory(code, *args):
    """Runs `code` in a fresh Python; returns (its peak RSS in GiB, its last printed number).

    A run the kernel kills for memory returns the peak it reached and None.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        env=common.snippet_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = process.stderr.read()  # read before waiting: a full pipe would block the child
    # wait4 gives this child's own peak, not the maximum over all children so far.
    _, status, usage = os.wait4(process.pid, 0)
    peak = usage.ru_maxrss / 2**20
    code = os.waitstatus_to_exitcode(status)
    if code == -signal.SIGKILL:
        return peak, None
    if code:
        raise RuntimeError(stderr[-3000:])
    return peak, float(stderr.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", nargs="+", type=int, default=[110, 1202])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--output")
    args = parser.parse_args()
    rows = [
        "| network | keras_resnet peak RSS (GiB) | images/s | PyTorch peak RSS (GiB) | images/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for depth in args.depths:
        ours, ours_rate = peak_memory(OURS, depth, args.steps, args.batch_size)
        theirs, their_rate = peak_memory(PYTORCH, depth, args.steps, args.batch_size)
        cells = [
            f"{peak:.2f}" if rate is not None else f"killed for memory at {peak:.2f}"
            for peak, rate in ((ours, ours_rate), (theirs, their_rate))
        ]
        rates = [f"{rate:.1f}" if rate is not None else "-" for rate in (ours_rate, their_rate)]
        rows.append(f"| ResNet-{depth} | {cells[0]} | {rates[0]} | {cells[1]} | {rates[1]} |")
        print(rows[-1], flush=True)
    common.report(
        f"Peak memory of training, batch {args.batch_size}",
        f"python benchmarks/memory.py --depths {' '.join(map(str, args.depths))} "
        f"--steps {args.steps} --batch-size {args.batch_size}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
