"""The 3x3 convolutions of a CIFAR ResNet, op by op: TensorFlow against PyTorch.

Convolutions are about 80% of a training step in both frameworks, and both
call oneDNN (each its own build of it). This times the three kernels a
training step runs for every 3x3 convolution - forward, gradient of the
input, gradient of the filter - at the shapes of the three CIFAR stages,
batch 128, channels-last. TensorFlow runs `--repeats` of one kernel in one
graph, each waiting on the one before (a single inter-op thread, so that none
overlap), with oneDNN on as keras_resnet sets it; PyTorch calls the same aten
kernels eagerly. `--dtype bfloat16` times the kernels that mixed precision
runs (`train.py --mixed-precision`, `torch.autocast`). Each framework runs in
its own process. Milliseconds per op: the fastest of 7 rounds of `--repeats`
ops (this VM's neighbours add noise of tens of percent to single rounds now
and then).

    python benchmarks/conv_ops.py --output benchmarks/results.md
    python benchmarks/conv_ops.py --dtype bfloat16 --output benchmarks/results.md

Needs PyTorch (`pip install torch`, CPU build).
"""

import argparse
import json

import common

STAGES = [(32, 16), (16, 32), (8, 64)]  # (side, channels) of the three CIFAR stages
KINDS = ["forward", "input gradient", "filter gradient"]

TENSORFLOW = """
import json, sys, time
import tensorflow as tf
batch, repeats, side, channels = map(int, sys.argv[1:5])
dtype = getattr(tf, sys.argv[5])
tf.config.threading.set_inter_op_parallelism_threads(1)
shape, kernel_shape = (batch, side, side, channels), (3, 3, channels, channels)
# distinct inputs: no op is merged away
xs = [tf.random.normal(shape, dtype=dtype) for _ in range(repeats)]
ks = [tf.random.normal(kernel_shape, dtype=dtype) for _ in range(repeats)]
strides = [1, 1, 1, 1]
kernels = {
    "forward": lambda x, k: tf.raw_ops.Conv2D(input=x, filter=k, strides=strides, padding="SAME"),
    "input gradient": lambda x, k: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=shape, filter=k, out_backprop=x, strides=strides, padding="SAME"),
    "filter gradient": lambda x, k: tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=kernel_shape, out_backprop=x, strides=strides, padding="SAME"),
}
result = {}
for kind, kernel in kernels.items():
    @tf.function
    def chain():
        outputs = []
        for x, k in zip(xs, ks):
            with tf.control_dependencies(outputs[-1:]):
                outputs.append(kernel(x, k))
        return outputs  # all of them: an op nothing reads would be pruned from the graph
    for _ in range(3):
        chain()
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        chain()
        rounds.append(time.perf_counter() - start)
    result[kind] = min(rounds) / repeats * 1e3
print(json.dumps(result))
"""

PYTORCH = """
import json, sys, time
import torch
batch, repeats, side, channels = map(int, sys.argv[1:5])
dtype = getattr(torch, sys.argv[5])
channels_last = lambda t: t.contiguous(memory_format=torch.channels_last)
xs = [channels_last(torch.randn(batch, channels, side, side, dtype=dtype)) for _ in range(repeats)]
ks = [channels_last(torch.randn(channels, channels, 3, 3, dtype=dtype)) for _ in range(repeats)]
def backward(mask):
    return lambda x, k: torch.ops.aten.convolution_backward(
        x, x, k, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
kernels = {
    "forward": lambda x, k: torch.nn.functional.conv2d(x, k, padding=1),
    "input gradient": backward([True, False, False]),
    "filter gradient": backward([False, True, False]),
}
result = {}
with torch.no_grad():
    for kind, kernel in kernels.items():
        for x, k in zip(xs[:3], ks[:3]):
            kernel(x, k)
        rounds = []
        for _ in range(7):
            start = time.perf_counter()
            for x, k in zip(xs, ks):
                kernel(x, k)
            rounds.append(time.perf_counter() - start)
        result[kind] = min(rounds) / repeats * 1e3
print(json.dumps(result))
"""


def milliseconds(code, batch, repeats, side, channels, dtype):
    """{kernel: ms per op} of one framework at one stage, in a fresh process."""
    return json.loads(
        common.run_snippet(code, batch, repeats, side, channels, dtype).split("\n")[-2]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20, help="ops per timed round of a kernel")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="the kernels' data type; bfloat16 is what mixed precision runs on a CPU",
    )
    parser.add_argument("--output")
    args = parser.parse_args()
    rows = [
        "| stage (side x side x channels) | kernel | TensorFlow ms | PyTorch ms "
        "| PyTorch / TensorFlow |",
        "|---|---|---:|---:|---:|",
    ]
    totals = [0.0, 0.0]
    for side, channels in STAGES:
        ours = milliseconds(TENSORFLOW, args.batch_size, args.repeats, side, channels, args.dtype)
        theirs = milliseconds(PYTORCH, args.batch_size, args.repeats, side, channels, args.dtype)
        for kind in KINDS:
            totals[0] += ours[kind]
            totals[1] += theirs[kind]
            rows.append(
                f"| {side}x{side}x{channels} | {kind} | {ours[kind]:.2f} | {theirs[kind]:.2f} "
                f"| {theirs[kind] / ours[kind]:.2f}x |"
            )
            print(rows[-1], flush=True)
    rows.append(
        f"| all three stages | sum | {totals[0]:.2f} | {totals[1]:.2f} "
        f"| {totals[1] / totals[0]:.2f}x |"
    )
    common.report(
        f"3x3 convolution kernels, batch {args.batch_size}, {args.dtype}",
        f"python benchmarks/conv_ops.py --batch-size {args.batch_size} --repeats {args.repeats} "
        f"--dtype {args.dtype}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
