"""What TensorFlow's CPU settings do to ResNet-20 training speed (batch 128).

Each setting runs in a fresh process (oneDNN is read when TensorFlow starts):
TF_ENABLE_ONEDNN_OPTS 0/1 crossed with XLA (`jit_compile`) off/on, timing
`model.fit` steps on one fixed batch after warm-up.

    python benchmarks/levers.py --output benchmarks/results.md
"""

import argparse
import os
import subprocess
import sys

import common

STEP = """
import sys, time
import numpy as np, keras, tensorflow as tf
import keras_resnet
model = keras_resnet.ResNet20()
model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy",
              jit_compile=sys.argv[1] == "on")
x = np.random.uniform(0, 255, (128, 32, 32, 3)).astype("float32")
data = tf.data.Dataset.from_tensors((x, np.random.randint(0, 10, 128))).repeat()
model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)
start = time.perf_counter()
model.fit(data, steps_per_epoch=int(sys.argv[2]), epochs=1, verbose=0)
print(int(sys.argv[2]) * 128 / (time.perf_counter() - start))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--output")
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = ["| TF_ENABLE_ONEDNN_OPTS | XLA | images/s |", "|---|---|---:|"]
    for onednn in ("0", "1"):
        for xla in ("off", "on"):
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": repo}
            result = subprocess.run([sys.executable, "-c", STEP, xla, str(args.steps)], env=env,
                                    capture_output=True, text=True, check=True)
            rows.append(f"| {onednn} | {xla} | {float(result.stdout.split()[-1]):.0f} |")
            print(rows[-1], flush=True)
    common.report("ResNet-20 training step: oneDNN and XLA", f"python benchmarks/levers.py --steps {args.steps}",
                  rows, args.output)


if __name__ == "__main__":
    main()
