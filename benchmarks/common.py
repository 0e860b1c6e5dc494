"""Shared by the benchmarks: the setup header of every result and its Markdown file."""

import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine():
    """CPU model, widest vector instructions, cores and OS: the same model name can come with
    or without AVX-512, which changes oneDNN's kernels."""
    cpu, flags = "unknown CPU", set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown CPU":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{cpu} ({vectors}), {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def versions():
    import keras
    import tensorflow as tf

    found = [
        f"Python {platform.python_version()}",
        f"TensorFlow {tf.__version__}",
        f"Keras {keras.__version__}",
    ]
    try:
        import torch

        found.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset: the commands set 1")
    return ", ".join(found) + f"; TF_ENABLE_ONEDNN_OPTS={onednn}"


def report(title, command, lines, output=None):
    """Prints a result section (machine, versions, command, numbers) and appends it to `output`."""
    text = "\n".join(
        [
            f"### {title} ({time.strftime('%Y-%m-%d')})",
            "",
            f"- machine: {machine()}",
            f"- versions: {versions()}",
            f"- command: `{command}`",
            "",
            *lines,
            "",
        ]
    )
    print(text)
    if output:
        with open(output, "a") as f:
            f.write(text + "\n")


def snippet_env(extra=None):
    """Environment of a fresh benchmark process: the repository and this folder
    importable, TensorFlow's info logs off, oneDNN on unless the environment says
    otherwise (as the commands set it), plus the variables in `extra`."""
    return {
        "TF_ENABLE_ONEDNN_OPTS": "1",
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "benchmarks")]),
        **(extra or {}),
    }


def run_snippet(code, *args, env=None):
    """Standard output of Python `code` run with `args` in a fresh process.

    A fresh process per measurement, since TensorFlow reads its settings
    (oneDNN, thread pools) once when it starts. Its environment is
    `snippet_env(env)`. Raises with the end of its standard error if it fails.
    """
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=snippet_env(env),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout


def fit_images_per_second(model, dataset, batch_size, steps, warmup=5):
    """Training images/s of `model.fit` over `steps` steps after `warmup` steps.

    Timed between batch ends inside one `fit` call: `fit`'s start and its
    teardown (which now and then takes seconds on TensorFlow) are left out,
    as they are from a long training run. With the model's
    `steps_per_execution` above 1, Keras calls back once per execution: both
    counts round up to whole executions.
    """
    import math
    import time

    import keras

    per_call = model.steps_per_execution
    warmup_calls, timed_calls = max(1, math.ceil(warmup / per_call)), math.ceil(steps / per_call)
    batch_ends = []

    class BatchEnds(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batch_ends.append(time.perf_counter())

    model.fit(
        dataset,
        steps_per_epoch=(warmup_calls + timed_calls) * per_call,
        epochs=1,
        verbose=0,
        callbacks=[BatchEnds()],
    )
    assert len(batch_ends) == warmup_calls + timed_calls, len(batch_ends)
    return timed_calls * per_call * batch_size / (batch_ends[-1] - batch_ends[warmup_calls - 1])
