"""Multiply-accumulate and parameter accounting, as the paper counts FLOPs.

The paper's Table 1 "FLOPs" are multiply-adds of the convolutions and the
fully connected layer for one 224x224 image; batch norm, ReLU, additions and
pooling are not counted. `count_flops` counts the same way.

`python -m keras_resnet.flops` prints the README's table of every registered
network, from the built models.
"""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class FlopsReport:
    """What `count_flops` measures.

    Attributes:
        macs: multiply-accumulates of one forward pass at batch 1.
        trainable_params: trainable parameters of the model.
        macs_by_stage: dict, stage name (`conv1` .. `conv5`, `predictions`) to MACs.
        params_by_stage: dict, stage name to trainable parameters.
    """

    macs: int
    trainable_params: int
    macs_by_stage: dict
    params_by_stage: dict


def _stage(layer_name):
    """`conv3_block2_1_conv` -> `conv3`; other layers keep their own name."""
    return layer_name.split("_", 1)[0] if layer_name.startswith("conv") else layer_name


def count_flops(model):
    """Counts multiply-accumulates (the paper's "FLOPs") and parameters by stage.

    Args:
        model: a `keras.Model` built with a fixed input height and width.

    Returns:
        A `FlopsReport`.

    Example:

    >>> report = count_flops(keras_resnet.ResNet20())
    >>> round(report.macs / 1e6)
    41
    """
    macs_by_stage, params_by_stage = {}, {}
    for layer in model.layers:
        stage = _stage(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            if height is None or width is None:
                raise ValueError(
                    f"count_flops needs a fixed input height and width; layer {layer.name!r} "
                    f"has output shape {layer.output.shape}."
                )
            macs = height * width * int(keras.ops.size(layer.kernel)) // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs = int(keras.ops.size(layer.kernel))
        else:
            macs = 0
        params = sum(int(keras.ops.size(w)) for w in layer.trainable_weights)
        if macs or params:
            macs_by_stage[stage] = macs_by_stage.get(stage, 0) + macs
            params_by_stage[stage] = params_by_stage.get(stage, 0) + params
    return FlopsReport(
        macs=sum(macs_by_stage.values()),
        trainable_params=sum(params_by_stage.values()),
        macs_by_stage=macs_by_stage,
        params_by_stage=params_by_stage,
    )


def zoo_reports(names=None):
    """Builds registered networks one at a time and returns `{name: FlopsReport}`."""
    from keras_resnet.models import SPECS, build_model

    reports = {}
    for name in names or SPECS:
        reports[name] = count_flops(build_model(name))
        keras.backend.clear_session()  # keeps memory flat over the whole zoo
    return reports


def model_table(reports=None):
    """Markdown table of networks with their parameters and MACs, built from code.

    Args:
        reports: `{name: FlopsReport}` of registered models (default: the whole
            zoo, from `zoo_reports()`).
    """
    from keras_resnet.models import SPECS
    from keras_resnet.specs import STEM_DEFAULTS

    rows = [
        "| model | stem | shortcut | input | trainable parameters | multiply-adds |",
        "|---|---|---|---|---:|---:|",
    ]
    for name, report in (reports or zoo_reports()).items():
        spec = SPECS[name]
        size = "x".join(map(str, STEM_DEFAULTS[spec.stem]["input_shape"]))
        rows.append(
            f"| `{name}` | {spec.stem} | {spec.shortcut or 'none'} | {size} "
            f"| {report.trainable_params:,} | {report.macs / 1e9:.3g} G |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(model_table())
