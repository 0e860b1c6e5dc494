"""The training configuration: the paper's recipes, their overrides and their flags (cli.flags)."""

import argparse
import dataclasses
import importlib
import json
import re

import pytest

from keras_resnet import config as config_lib
from keras_resnet import data, planning, specs, training
from keras_resnet import weights as weights_lib
from keras_resnet.analysis import sweeps
from keras_resnet.weights import npz
from keras_resnet.cli import flags


@pytest.fixture(scope="module")
def synthetic():
    return data.load_data("synthetic")  # 10,000 training examples: 78 steps of 128


def test_paper_cifar_recipe(synthetic):
    run = config_lib.resolve(config_lib.TrainConfig(depth=110), synthetic)
    config = run.config
    assert (config.batch_size, config.lr, config.momentum, config.weight_decay) == (
        128,
        0.1,
        0.9,
        1e-4,
    )
    assert (run.total_steps, run.lr_boundaries, run.warmup) == (64_000, [32_000, 48_000], 400)
    assert config.stem == "cifar" and config.recipe == "paper-cifar" and run.steps_per_epoch == 78
    assert run.epochs == 821  # ceil(64000 / 78); training stops at step 64,000
    assert config_lib.resolve(config_lib.TrainConfig(depth=56), synthetic).warmup == 0
    assert config_lib.resolve(config_lib.TrainConfig(depth=56, warmup=100), synthetic).warmup == 100
    schedule = training.make_schedule(run)
    assert [float(schedule(s)) for s in (0, 400, 32_000, 48_000)] == pytest.approx(
        [0.01, 0.1, 0.01, 0.001]
    )


def test_length_overrides_scale_the_boundaries(synthetic):
    run = config_lib.resolve(config_lib.TrainConfig(epochs=2), synthetic)
    assert (run.total_steps, run.lr_boundaries) == (156, [78, 117])
    run = config_lib.resolve(
        config_lib.TrainConfig(steps=1000, lr_boundaries=[600, 300]), synthetic
    )
    assert (run.total_steps, run.lr_boundaries) == (1000, [300, 600])
    # --steps-per-epoch sets how often to validate and checkpoint, not the length.
    run = config_lib.resolve(config_lib.TrainConfig(steps=100, steps_per_epoch=30), synthetic)
    assert (run.steps_per_epoch, run.epochs, run.total_steps, run.lr_boundaries) == (
        30,
        4,
        100,
        [50, 75],
    )
    run = config_lib.resolve(config_lib.TrainConfig(epochs=3, steps_per_epoch=200), synthetic)
    assert (run.steps_per_epoch, run.total_steps) == (200, 600)  # an epoch may exceed one pass
    imagenet = config_lib.resolve(config_lib.TrainConfig(recipe="paper-imagenet"), synthetic)
    assert imagenet.total_steps == 600_000 and imagenet.lr_boundaries == [150_000, 300_000, 450_000]
    assert imagenet.config.batch_size == 256


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 1, "steps": 10}, "Give --epochs or --steps, not both"),
        ({"batch_size": 20_000}, "exceeds the 10000 training examples"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be positive"),
        ({"lr": -0.1}, "lr must be positive"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"seed": -1}, "seed must be from 0 to 2\\*\\*32 - 1"),
        ({"seed": 2**32}, "seed must be from 0 to 2\\*\\*32 - 1"),
    ],
)
def test_bad_recipe_values(synthetic, changes, message):
    with pytest.raises(ValueError, match=message):
        config_lib.resolve(config_lib.TrainConfig(**changes), synthetic)


@pytest.mark.parametrize(
    "changes, message",
    [
        # No stem given: the data picks it, so each stem's reason is given.
        ({"depth": 7}, "Invalid depth 7 for the CIFAR stem.*Invalid depth 7 for the ImageNet stem"),
        ({"depth": 20, "stem": "imagenet"}, "^Invalid depth 20 for the ImageNet stem"),
        ({"depth": 0}, "Invalid depth 0 for the CIFAR stem"),  # not taken for the default
        ({"depth": 20, "plain": True, "shortcut": "B"}, "plain"),
        ({"lr": -0.1}, "lr must be positive"),
        ({"momentum": -0.9}, "momentum must be >= 0"),
        # NaN passes every comparison, so it is named first; infinity too.
        ({"lr": float("nan")}, "lr must be a finite number, received nan"),
        ({"lr": float("inf")}, "lr must be a finite number, received inf"),
        ({"warmup_lr": float("nan")}, "warmup_lr must be a finite number"),
        ({"momentum": 5.0}, "momentum must be below 1, received 5.0"),
        ({"validation_split": float("inf")}, "validation_split must be a finite number"),
        ({"validation_split": 1.5}, "a fraction below 1 or a whole count of examples"),
    ],
)
def test_a_bad_flag_stops_the_run_before_its_data_loads(changes, message, monkeypatch):
    # cifar10 without --data-dir is a TFDS download: minutes before any check after it.
    def load_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the config was checked")

    monkeypatch.setattr(data, "load_data", load_data)
    config = config_lib.TrainConfig(dataset="cifar10", **changes)
    with pytest.raises(ValueError, match=message):
        planning.load_config_data(config)
    with pytest.raises(ValueError, match=message):  # and a sweep, for any of its nets
        sweeps.train_sweep(
            dataclasses.replace(config, depth=None),
            [(20, False), (20 if config.depth is None else config.depth, config.plain)],
            "unused",
        )


@pytest.mark.parametrize(
    "command, argv, message",
    [
        (
            "evaluate",
            ["--weights", "cifar10", "--depth", "7"],
            "Invalid depth 7 for the CIFAR stem",
        ),
        ("evaluate", ["--weights", "cifar10", "--depth", "1202"], "weights='cifar10' exist for"),
        (
            "evaluate",
            ["--weights", "imagenet", "--depth", "20"],
            "Invalid depth 20 for the ImageNet",
        ),
        ("evaluate", ["--model", "no/such/run"], "no/such/run"),
        ("analysis", ["layer-responses", "--model", "no/such/run"], "no/such/run"),
        ("tune", ["--search", "depth", "--depths", "20", "57"], "Invalid depth 57"),
        ("tune", ["--depths", "20", "56"], "--depths shapes the search of depth, which --search"),
        ("tune", ["--lr-range", "0.01", "0.1", "--search", "momentum"], "--lr-range shapes"),
        ("tune", ["--search", "depth", "--stem", "imagenet"], "Invalid depth 20 for the ImageNet"),
        # A file's architecture against --depth, and named weights' bottleneck stride:
        (
            "evaluate",
            ["--weights", "WEIGHTS_FILE", "--depth", "56"],
            "hold a .*ResNet-20.*is a .*ResNet-56",
        ),
        (
            "evaluate",
            ["--weights", "imagenet", "--depth", "50", "--bottleneck-stride", "3x3"],
            "Pass bottleneck_stride='1x1'",
        ),
        # Output paths, before the work rather than after it (TMP: a folder, TMP/file: a file):
        (
            "evaluate",
            ["--weights", "cifar10", "--depth", "20", "--output-json", "TMP"],
            "--output-json .* is a folder",
        ),
        (
            "evaluate",
            ["--weights", "cifar10", "--depth", "20", "--confusion-png", "TMP/file/c.png"],
            "--confusion-png .* is not a directory",
        ),
        (
            "analysis",
            ["layer-responses", "--model", "no/such/run", "--output-dir", "TMP/file"],
            "--output-dir .* is not a directory",
        ),
    ],
)
def test_a_command_names_a_bad_flag_before_its_data_loads(
    command, argv, message, monkeypatch, capsys, no_network, tmp_path
):
    def load(*args, **kwargs):
        raise AssertionError("the data was loaded before the flags were checked")

    monkeypatch.setattr(data, "load_data", load)
    monkeypatch.setattr(data, "load_test_data", load)
    main = importlib.import_module(f"keras_resnet.cli.{command}").main
    if "WEIGHTS_FILE" in argv:  # a ResNet-20's weights in this package's .npz
        path = tmp_path / "resnet20.npz"
        npz.save(weights_lib.resolve("cifar10").load(specs.make_spec(20, "cifar")), path)
        argv = [str(path) if arg == "WEIGHTS_FILE" else arg for arg in argv]
    (tmp_path / "file").write_text("not a folder")
    argv = [arg.replace("TMP", str(tmp_path)) for arg in argv]
    output = ["--output-dir", str(tmp_path / "tune")] if command == "tune" else []
    assert main([*argv, "--dataset", "cifar10", *output]) == 1
    assert re.search(message, capsys.readouterr().err.splitlines()[-1])
    assert not (tmp_path / "tune").exists()


@pytest.mark.parametrize("depth", [20, 50])  # a CIFAR and an ImageNet depth
def test_the_check_before_the_data_lets_a_depth_of_either_stem_through(depth):
    config_lib.check(config_lib.TrainConfig(dataset="cifar10", depth=depth))


def parse_config(argv, **taken):
    parser = argparse.ArgumentParser()
    flags.add_train_config_flags(parser, **taken)
    parser.add_argument("--steps", type=int, default=300)  # a command's own flag
    return flags.train_config(parser.parse_args(argv))


def test_every_config_field_is_a_flag_and_config_files_merge(tmp_path):
    parser = argparse.ArgumentParser()
    flags.add_train_config_flags(parser)
    fields = {f.name for f in dataclasses.fields(config_lib.TrainConfig)}
    assert fields <= {a.dest for a in parser._actions}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"depth": 32, "lr": 0.05, "plain": True}))
    argv = ["--config", str(path), "--lr", "0.02", "--lr-boundaries", "5", "9"]
    config = parse_config(argv, skip=("steps",))
    assert (config.depth, config.lr, config.plain, config.lr_boundaries) == (32, 0.02, True, [5, 9])
    assert config.steps is None  # the command's own --steps is not the field's
    path.write_text(json.dumps({"depht": 32}))
    with pytest.raises(ValueError, match=r"unknown fields \['depht'\]"):
        parse_config(["--config", str(path)], skip=("steps",))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"batch_size": "128"}, "batch_size must be an int, received '128'"),
        ({"cpu_devices": 2.0}, "cpu_devices must be an int, received 2.0"),
        ({"mixed_precision": "false"}, "mixed_precision must be true or false, received 'false'"),
        ({"depth": True}, "depth must be an int, received True"),
        ({"lr": "0.1"}, "lr must be a number, received '0.1'"),
        ({"seed": None}, "seed must be an int, received None"),
        ({"schedule": "step"}, "schedule must be one of \\['piecewise', 'onecycle', 'cosine'\\]"),
        ({"lr_boundaries": [100, "200"]}, "lr_boundaries must be a list of one or more ints"),
        ({"profile_steps": [1, 2, 3]}, "profile_steps must be a list of 2 ints"),
        ({"lr_boundaries": []}, "lr_boundaries must be a list of one or more ints"),
        ({"data_dir": ""}, "data_dir must be a non-empty string, received ''"),
    ],
)
def test_config_file_values_are_checked_as_their_flags_are(tmp_path, values, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=f"--config .*config.json.: {message}"):
        parse_config(["--config", str(path)], skip=("steps",))
    path.write_text(json.dumps({"lr": 1, "depth": None, "lr_boundaries": [100, 200]}))
    config = parse_config(["--config", str(path)], skip=("steps",))  # None: the recipe's
    assert (config.lr, config.depth, config.lr_boundaries) == (1, None, [100, 200])


def test_a_command_takes_the_fields_it_names_and_no_others(tmp_path):
    config = parse_config(["--depth", "8"], only=("depth", "dataset"))
    assert (config.depth, config.dataset) == (8, "cifar10")
    with pytest.raises(SystemExit):  # argparse: unrecognized arguments
        parse_config(["--lr", "0.1"], only=("depth", "dataset"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"depth": 8, "lr": 0.1}))
    with pytest.raises(ValueError, match=r"sets \['lr'\], which this command sets itself"):
        parse_config(["--config", str(path)], only=("depth", "dataset"))
    with pytest.raises(ValueError, match="not TrainConfig fields"):
        parse_config([], skip=("lrr",))


def test_data_preprocessing_picks_the_papers_network_and_recipe(synthetic):
    large = dataclasses.replace(
        synthetic, preprocessing=data.Preprocessing("imagenet", image_size=224)
    )
    run = config_lib.resolve(config_lib.TrainConfig(), large)
    assert (run.config.stem, run.config.depth, run.config.recipe) == (
        "imagenet",
        50,
        "paper-imagenet",
    )
    run = config_lib.resolve(config_lib.TrainConfig(), synthetic)
    assert (run.config.stem, run.config.depth, run.config.recipe) == ("cifar", 20, "paper-cifar")
    # The config's own choice wins over what the data implies.
    run = config_lib.resolve(config_lib.TrainConfig(stem="imagenet"), synthetic)
    assert (run.config.stem, run.config.depth, run.config.recipe) == (
        "imagenet",
        50,
        "paper-cifar",
    )
