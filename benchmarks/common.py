"""Shared by the benchmarks: the setup header of every result and its Markdown file."""

import os
import platform
import time


def machine():
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def versions():
    import keras
    import tensorflow as tf

    found = [f"Python {platform.python_version()}", f"TensorFlow {tf.__version__}", f"Keras {keras.__version__}"]
    try:
        import torch

        found.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset: keras_resnet sets 1")
    return ", ".join(found) + f"; TF_ENABLE_ONEDNN_OPTS={onednn}"


def report(title, command, lines, output=None):
    """Prints a result section (machine, versions, command, numbers) and appends it to `output`."""
    text = "\n".join([f"### {title} ({time.strftime('%Y-%m-%d')})", "", f"- machine: {machine()}",
                      f"- versions: {versions()}", f"- command: `{command}`", "", *lines, ""])
    print(text)
    if output:
        with open(output, "a") as f:
            f.write(text + "\n")
