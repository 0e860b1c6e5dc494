"""What TensorFlow's CPU settings do to training speed (batch 128 unless said).

Each setting runs in a fresh process (oneDNN is read when TensorFlow starts),
timing `model.fit` steps on one fixed batch after warm-up
(common.fit_images_per_second). CIFAR ResNet-20 unless said:

- TF_ENABLE_ONEDNN_OPTS 0/1 crossed with XLA (`jit_compile`) off/on and
  batch norm: keras_resnet's fused layer (TensorFlow's FusedBatchNormV3, the
  default) against Keras 3's own unfused one;
- TensorFlow's intra-/inter-op thread pools (0 = TensorFlow's choice);
- `steps_per_execution` (training steps per call into the graph);
- data layout, channels_last against channels_first, on
  `keras.applications.ResNet50` at 64x64, batch 32 (keras_resnet's models
  are channels_last only).

    python benchmarks/levers.py --output benchmarks/results.md
"""

import argparse
import json

import common

STEP = """
import json, sys
settings = json.loads(sys.argv[1])
import keras_resnet, numpy as np, keras, tensorflow as tf
import common
tf.config.threading.set_intra_op_parallelism_threads(settings["intra"])
tf.config.threading.set_inter_op_parallelism_threads(settings["inter"])
if settings["batch_norm"] == "keras":  # Keras 3's unfused implementation, same layer otherwise
    keras_resnet.layers.FusedBatchNormalization._fusable = lambda *args: False
batch = 128
if settings["layout"] == "resnet20":
    model = keras_resnet.ResNet20()
    shape = (32, 32, 3)
else:  # a layout comparison needs a model that takes both
    batch = 32
    keras.config.set_image_data_format(settings["layout"])
    shape = (3, 64, 64) if settings["layout"] == "channels_first" else (64, 64, 3)
    model = keras.applications.ResNet50(weights=None, input_shape=shape, classes=10)
model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy",
              jit_compile=settings["xla"] == "on",
              steps_per_execution=settings["steps_per_execution"])
x = np.random.uniform(0, 255, (batch, *shape)).astype("float32")
data = tf.data.Dataset.from_tensors((x, np.random.randint(0, 10, batch))).repeat()
if settings["profile_dir"]:
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # tracing stays out of the profile
    tf.profiler.experimental.start(settings["profile_dir"])
rate = common.fit_images_per_second(model, data, batch, settings["steps"])
if settings["profile_dir"]:
    tf.profiler.experimental.stop()
print(rate)
"""


def measure(
    steps,
    onednn="1",
    xla="off",
    batch_norm="fused",
    intra=0,
    inter=0,
    steps_per_execution=1,
    layout="resnet20",
    profile_dir=None,
):
    """Training images/s of `steps` steps in a fresh process.

    `layout` "resnet20" times keras_resnet's ResNet-20; "channels_last" or
    "channels_first" time keras.applications.ResNet50 at 64x64 in that layout.
    With `profile_dir`, TensorFlow's profiler records the timed steps there
    (which slows them a little).
    """
    settings = dict(
        steps=steps,
        xla=xla,
        batch_norm=batch_norm,
        intra=intra,
        inter=inter,
        steps_per_execution=steps_per_execution,
        layout=layout,
        profile_dir=profile_dir,
    )
    output = common.run_snippet(STEP, json.dumps(settings), env={"TF_ENABLE_ONEDNN_OPTS": onednn})
    return float(output.split()[-1])


def table(header, settings, steps):
    """Markdown rows: one per settings dict, its values then images/s."""
    rows = ["| " + " | ".join(header) + " | images/s |", "|" + "---|" * len(header) + "---:|"]
    for setting in settings:
        rate = measure(steps, **setting)
        rows.append(
            "| " + " | ".join(str(value) for value in setting.values()) + f" | {rate:.0f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--output")
    args = parser.parse_args()
    rows = table(
        ["TF_ENABLE_ONEDNN_OPTS", "XLA", "batch norm"],
        [
            dict(onednn=o, xla=x, batch_norm=b)
            for o in "01"
            for x in ("off", "on")
            for b in ("keras", "fused")
        ],
        args.steps,
    )
    rows += [""] + table(
        ["intra-op threads", "inter-op threads"],
        [dict(intra=a, inter=b) for a, b in ((0, 0), (2, 1), (1, 2), (2, 2), (1, 1))],
        args.steps,
    )
    rows += [""] + table(
        ["steps_per_execution"],
        [dict(steps_per_execution=s) for s in (1, 4, 16)],
        max(args.steps, 32),
    )
    rows += ["", "keras.applications.ResNet50, 64x64, batch 32:", ""]
    rows += table(
        ["data layout"],
        [dict(layout=l) for l in ("channels_last", "channels_first")],
        args.steps // 2,
    )
    common.report(
        "Training speed levers: oneDNN, XLA, batch norm, threads, steps_per_execution, layout",
        f"python benchmarks/levers.py --steps {args.steps}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
