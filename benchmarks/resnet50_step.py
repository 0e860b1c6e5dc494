"""Our ResNet-50 training step against `keras.applications.ResNet50(weights=None)`.

Both are the v1 ResNet-50 (stride on the first 1x1 of a bottleneck), 1000
classes, 224x224, compiled the same way (SGD momentum 0.9, sparse
cross-entropy, no XLA) and timed with `model.fit` on one fixed batch after
warm-up, each in a fresh process. Differences that remain are the
implementations': keras.applications puts a bias in every convolution and
uses Keras's unfused batch norm; ours has bias-free convolutions, the paper's
weight decay on every weight, and the fused batch norm.

    python benchmarks/resnet50_step.py --batch-size 16 --output benchmarks/results.md
"""

import argparse

import common

STEP = """
import sys
import keras_resnet, numpy as np, keras, tensorflow as tf
import common
which, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if which == "keras_resnet":
    model = keras_resnet.ResNet50()
else:
    model = keras.applications.ResNet50(weights=None)
model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
x = np.random.uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
data = tf.data.Dataset.from_tensors((x, np.random.randint(0, 1000, batch))).repeat()
print(model.count_params(), common.fit_images_per_second(model, data, batch, steps, warmup=3))
"""


def measure(which, batch_size, steps):
    output = common.run_snippet(STEP, which, batch_size, steps)
    params, rate = output.split()[-2:]
    return int(params), float(rate)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output")
    args = parser.parse_args()
    rows = ["| model | parameters | training images/s |", "|---|---:|---:|"]
    rates = {}
    for which in ("keras_resnet", "keras.applications"):
        params, rates[which] = measure(which, args.batch_size, args.steps)
        rows.append(f"| {which} ResNet-50 | {params:,} | {rates[which]:.2f} |")
        print(rows[-1], flush=True)
    rows += [
        "",
        f"ratio keras_resnet / keras.applications: "
        f"**{rates['keras_resnet'] / rates['keras.applications']:.2f}x**",
    ]
    common.report(
        f"ResNet-50 training step, batch {args.batch_size}, 224x224",
        f"python benchmarks/resnet50_step.py --batch-size {args.batch_size} --steps {args.steps}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
