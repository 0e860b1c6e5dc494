"""The plan of a training run, made once: `prepare(config, data, strategy) -> RunPlan`.

    strategy = keras_resnet.runtime.setup_devices(config)
    data = keras_resnet.planning.load_config_data(config)
    plan = keras_resnet.planning.prepare(config, data, strategy)  # every check; writes nothing
    trained = keras_resnet.training.train(plan, strategy)

Every decision about a run is taken here and carried in the frozen `RunPlan`:
its recipe (`keras_resnet.config.resolve`, which also names the default run
directory), its network (`network_spec`), what its weights start from (none,
pretrained weights read once and checked against the network, or what a
resumed fine-tuning run recorded of them), its run directory and the record
(`config.json`) a resume is checked against. The training command, the
learning-rate range test, the hyperparameter search and the paper's sweeps
all plan their runs here, so every check runs for each of them; the steps
after it (`keras_resnet.training`) never decide again.
"""

import dataclasses

import keras
import numpy as np

from keras_resnet import _compat, files, models, runtime, specs
from keras_resnet import config as config_lib
from keras_resnet import data as data_lib
from keras_resnet import weights as weights_lib
from keras_resnet.rundir import RunDir


@dataclasses.dataclass(frozen=True)
class RecordedWeights:
    """The pretrained weights a resumed fine-tuning run started from, as its record says.

    Its checkpoint holds every weight, so a resume needs of them only what
    they implied: the input normalization (and the architecture, which the
    record holds). Their file may be gone, or need a download.

    Attributes:
        source: where they came from, for messages.
        input_mean: per-channel RGB mean the model subtracts from pixels 0-255.
        input_std: per-channel RGB divisor applied after it.
        channels: the channels of the images the run trains on.
    """

    source: str
    input_mean: np.ndarray
    input_std: np.ndarray
    channels: int


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Everything decided about a run before anything is written; `train` reads it.

    Attributes:
        run: the resolved config and the facts derived from it
            (`keras_resnet.config.ResolvedRun`); its `config.output_dir` is set.
        spec: the network's `keras_resnet.specs.Spec`.
        data: the `keras_resnet.data.Data` to train on, with the channels the
            pretrained weights take (`keras_resnet.data.with_channels`).
        start: what the weights start from: None (a fresh initialization), a
            `keras_resnet.weights.Pretrained` (read once, checked against
            `spec`), or `RecordedWeights` (a resumed fine-tuning run).
        run_dir: the run directory (`keras_resnet.rundir.RunDir`).
        record: its `config.json`: the resolved config, derived facts, data,
            replicas, versions, and what a resume needs of pretrained weights.
        replicas: the strategy's replicas; the global batch is split over them.
        chief: False on the non-chief workers of a cluster, which write nothing.
    """

    run: config_lib.ResolvedRun
    spec: specs.Spec
    data: data_lib.Data
    start: object
    run_dir: RunDir
    record: dict
    replicas: int
    chief: bool

    @property
    def config(self):
        return self.run.config


def load_config_data(config):
    """The `Data` a `TrainConfig` names: its dataset, split, subset and image size.

    Checks the config first (`keras_resnet.config.check`): loading may download.
    """
    config_lib.check(config)
    return data_lib.load_data(
        config.dataset,
        config.data_dir,
        config.tfds_data_dir,
        config.image_size,
        config.validation_split,
        config.train_subset,
        config.seed,
    )


# ------------------------------------------------------------------------ plan


def prepare(config, data, strategy, output_prefix="", trains_run_dir=True):
    """The plan of a run: every check of its inputs, before anything is written.

    Args:
        config: a `keras_resnet.config.TrainConfig`.
        data: the `keras_resnet.data.Data` it names (`load_config_data`).
        strategy: the strategy `runtime.setup_devices(config)` set up.
        output_prefix: what the default run directory's name starts with
            (`keras_resnet.config.default_output_dir`): "" for a training run,
            `"lr_find-"` for the range test's folder.
        trains_run_dir: whether the run trains into its folder. False for the
            range test, which writes only its own files there and keeps
            nothing it trains, so a trained run in that folder is no obstacle.

    Returns:
        A frozen `RunPlan`.

    Raises:
        ValueError: for an invalid config, data, weights or architecture, a
            run directory that cannot be written, or one that holds a run of
            another configuration.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Training runs on the TensorFlow backend (tf.distribute, tf.data); "
            f"KERAS_BACKEND is {keras.backend.backend()!r}."
        )
    if runtime.is_multi_worker(strategy):
        _compat.check_keras_for_multi_worker()
    if config.output_dir:
        files.check_writable(config.output_dir)  # before weights are read or fetched
    config, start = _weights_source(config, resumed=trains_run_dir)
    run = config_lib.resolve(config, data, output_prefix)
    spec = network_spec(run.config)
    if isinstance(start, weights_lib.Source):
        start = start.load(spec, fine_tune=True)
    run_dir = RunDir(run.config.output_dir)
    run_dir.check_writable()
    replicas = strategy.num_replicas_in_sync
    if run.config.batch_size % replicas:
        raise ValueError(
            f"batch_size={run.config.batch_size} does not split evenly over {replicas} replicas."
        )
    if start is not None:  # the images the weights take: gray data repeated into RGB, say
        data = data_lib.with_channels(data, start.channels)
    record = _run_record(run, data, replicas, start)
    if trains_run_dir:
        run_dir.check_same_run(record)
    return RunPlan(run, spec, data, start, run_dir, record, replicas, runtime.is_chief())


def _architecture(config):
    """What a `TrainConfig` sets of the network: `ResNet`'s and `specs.make_spec`'s arguments."""
    return {
        "depth": config.depth,
        "stem": config.stem,
        "shortcut": config.shortcut,
        "plain": config.plain,
        "bottleneck_stride": config.bottleneck_stride,
    }


def network_spec(config):
    """The `keras_resnet.specs.Spec` of a (resolved) `TrainConfig`'s network."""
    return specs.make_spec(**_architecture(config))


def network(config, image_shape, classes, **kwargs):
    """The freshly initialised network a resolved `TrainConfig` trains, frozen as it says.

    Args:
        config: a `TrainConfig` with its architecture resolved.
        image_shape: (height, width, channels) the network takes.
        classes: number of classes.
        **kwargs: further `keras_resnet.ResNet` arguments (input normalization,
            class names, weight decay).
    """
    model = models.ResNet(
        **_architecture(config), input_shape=tuple(image_shape), classes=classes, **kwargs
    )
    if config.freeze_backbone:
        models.freeze_backbone(model, config.unfreeze_from)
    return model


def _weights_source(config, resumed=True):
    """`config` with the architecture flags left open following its weights, and the weights.

    A resumed fine-tuning run (`resumed`: a run that trains into its run
    directory) takes both from its record (`RecordedWeights`), so its weights
    are not read again; otherwise the weights are read once
    (`keras_resnet.weights.resolve`) and the flags follow what they imply.
    """
    if not config.weights:
        return config, None
    output_dir = config.output_dir or (config.depth and config_lib.default_output_dir(config))
    run_dir = resumed and output_dir and RunDir(output_dir)
    recorded = run_dir and (run_dir.state() or run_dir.finished) and run_dir.record()
    same = recorded and weights_lib.same(recorded.get("weights"), config.weights)
    if same and recorded.get("pretrained"):
        implied = {k: recorded[k] for k in weights_lib.ARCHITECTURE_FLAGS}
        start = RecordedWeights(
            recorded["pretrained"]["source"],
            np.asarray(recorded["pretrained"]["input_mean"], "float32"),
            np.asarray(recorded["pretrained"]["input_std"], "float32"),
            recorded["data"]["image_shape"][-1],
        )
    else:
        start = weights_lib.resolve(config.weights)
        implied = dict(start.architecture)
        if config.plain:
            implied.pop("shortcut", None)
    return (
        dataclasses.replace(
            config, **{k: v for k, v in implied.items() if getattr(config, k) is None}
        ),
        start,
    )


def _run_record(run, data, replicas, start):
    """The run's `config.json`: the resolved config and the facts derived from it.

    A run from pretrained weights also records what a resume needs of them
    (`RecordedWeights`).
    """
    record = {
        **run.record(),
        "num_replicas": replicas,
        "per_replica_batch_size": run.config.batch_size // replicas,
        "data": data.describe(),
        "versions": runtime.versions(),
    }
    if start is not None:
        record["pretrained"] = {
            "source": start.source,
            "input_mean": np.asarray(start.input_mean).tolist(),
            "input_std": np.asarray(start.input_std).tolist(),
        }
    return record
