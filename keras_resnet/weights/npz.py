"""This package's own weights format: one `.npz` of a `Pretrained`, read back exactly.

The file holds every layer's arrays as `<layer name>/<index>` (the order of
the layer's `get_weights()`), the input normalization as `input_mean` and
`input_std`, and a JSON `__meta__` entry with the source, the network's spec,
the classes and the batch-norm epsilon. It is already in this package's
layout: reading it converts nothing. The packaged `weights="cifar10"` files
are in this format (`keras_resnet.weights.packaged`).
"""

import dataclasses
import json

import numpy as np

from keras_resnet import files, specs
from keras_resnet.weights.core import Pretrained


def save(pretrained, path):
    """Writes `pretrained` as one `.npz` file that `read` (and `weights=path`) reads back exactly.

    Args:
        pretrained: a `keras_resnet.weights.Pretrained`.
        path: the file to write, whole or not at all.
    """
    meta = {
        "source": pretrained.source,
        "spec": dataclasses.asdict(pretrained.spec),
        "classes": pretrained.classes,
        "bn_epsilon": pretrained.bn_epsilon,
    }
    arrays = {
        f"{name}/{i}": array
        for name, layer_arrays in pretrained.layers.items()
        for i, array in enumerate(layer_arrays)
    }
    arrays["input_mean"] = pretrained.input_mean
    arrays["input_std"] = pretrained.input_std
    with files.atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **arrays)


def read(path):
    """Reads a `.npz` file that `save` wrote into a `Pretrained`.

    Raises:
        ValueError: for a file that is no such `.npz`.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        spec_fields = meta["spec"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path!r} is not a weights .npz of keras_resnet ({error}).") from None
    spec = specs.Spec(**{**spec_fields, "stage_blocks": tuple(spec_fields["stage_blocks"])})
    layers = {}
    for key in sorted(k for k in arrays if "/" in k):
        name, index = key.rsplit("/", 1)
        layers.setdefault(name, {})[int(index)] = arrays[key]
    return Pretrained(
        meta["source"],
        spec,
        meta["classes"],
        arrays["input_mean"],
        arrays["input_std"],
        meta["bn_epsilon"],
        {name: [by_index[i] for i in sorted(by_index)] for name, by_index in layers.items()},
    )
