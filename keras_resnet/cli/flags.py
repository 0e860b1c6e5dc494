"""Flags -> `TrainConfig`: the one way every command turns its flags into a config.

    parser = flags.ArgumentParser()
    flags.add_train_config_flags(parser, skip=("epochs", "output_dir"))
    parser.add_argument("--output-dir")          # the command's own flag
    config = flags.train_config(parser.parse_args(argv))

A command takes the `TrainConfig` fields it has a use for as flags, one flag
per field (`--batch-size` for `batch_size`), plus `--config`, a JSON file of
fields that the flags override. `train_config` builds the config from exactly
those: the command's own flags never reach it, even where one shares a
field's name (the range test's `--steps`, the sweeps' `--output-dir`).
Every command's parser is a `flags.ArgumentParser`, which refuses empty values.
"""

import argparse
import dataclasses
import json

from keras_resnet import specs
from keras_resnet.config import TrainConfig

# Where `add_train_config_flags` leaves, in the parsed namespace, the fields it added.
_FIELDS_TAKEN = "train_config_fields"


def _text(value):
    """A flag's text, refused when empty: `--data-dir "$UNSET"` must not mean no --data-dir."""
    if not value:
        raise argparse.ArgumentTypeError("an empty value: give one, or leave the flag out")
    return value


# A field's flag type, by the name of its type.
_TYPES = {"int": int, "float": float, "str": _text, "list": int}


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose flags without a `type` (text) refuse empty values.

    Otherwise `--output-json ""` or `--data-dir "$UNSET"` would read as the flag left
    out, and the command would go on without it. Subcommands' parsers are the same.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", None, _text)  # argparse's type for flags that name none

    def add_subparsers(self, **kwargs):
        commands = super().add_subparsers(**kwargs)
        # Its values are the whole subcommand line, whose own parser checks each flag.
        commands.type = str
        return commands


def _fields(names, what):
    known = {field.name: field for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(
            f"{what} names {unknown}, not TrainConfig fields; allowed: {sorted(known)}"
        )
    return known


def _flag(name):
    return "--" + name.replace("_", "-")


def _add_field_flag(parser, field, default=argparse.SUPPRESS):
    """Adds the flag of one field; with the default default, an unset flag stays absent."""
    meta = dict(field.metadata)
    if field.default is not None:
        meta["help"] += f" (default: {field.default})"
    if field.type is bool:
        action = argparse.BooleanOptionalAction
        parser.add_argument(_flag(field.name), action=action, default=default, help=meta["help"])
        return
    kind = meta.pop("type", _TYPES[field.type.__name__])
    parser.add_argument(_flag(field.name), type=kind, default=default, **meta)


def add_train_config_flags(parser, skip=(), only=None):
    """Adds `--config` and one flag per `TrainConfig` field the command takes.

    Args:
        parser: an `argparse.ArgumentParser` (or a subcommand's parser).
        skip: names of fields the command sets itself or has no use for.
        only: names of the only fields it takes (None: every field not in `skip`).

    Raises:
        ValueError: for a name in `skip` or `only` that is not a field.
    """
    known = _fields([*skip, *(only or ())], "add_train_config_flags")
    taken = [name for name in known if (only is None or name in only) and name not in skip]
    parser.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    for name in taken:
        _add_field_flag(parser, known[name])
    parser.set_defaults(**{_FIELDS_TAKEN: tuple(taken)})


def train_config(args):
    """The `TrainConfig` of parsed flags: the `--config` file's fields, overridden by flags.

    Args:
        args: the namespace a parser given `add_train_config_flags` returned.

    Returns:
        A `TrainConfig`; the fields neither the file nor a flag sets keep their defaults.

    Raises:
        ValueError: for a `--config` file that cannot be read, is not a JSON
            object, or sets a field that is unknown or that this command does
            not take.
        OSError: for a `--config` file that cannot be opened.
    """
    taken = getattr(args, _FIELDS_TAKEN)
    values = _read_config_file(args.config, taken) if args.config else {}
    values.update({name: getattr(args, name) for name in taken if hasattr(args, name)})
    return TrainConfig(**values)


def _read_config_file(path, taken):
    with open(path, encoding="utf-8") as f:
        try:
            values = json.load(f)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"--config {path!r} is not valid JSON: {error}.") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path!r} must hold a JSON object of TrainConfig fields.")
    known = {field.name: field for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"--config {path!r} has unknown fields {unknown}; allowed: {sorted(known)}."
        )
    refused = sorted(set(values) - set(taken))
    if refused:
        raise ValueError(
            f"--config {path!r} sets {refused}, which this command sets itself or does not "
            f"use; it takes {sorted(taken)}."
        )
    for name, value in values.items():
        _check_config_value(path, known[name], value)
    return values


def _check_config_value(path, field, value):
    """Checks one value of a --config file as its flag's parser would: its type and choices.

    JSON is typed where flags are text, so "128" (a string) is refused, not read.
    None is a value only where it is the field's default (the recipe's value).
    """
    if value is None and field.default is None:
        return
    meta = field.metadata
    if field.type is list:
        count = meta["nargs"] if isinstance(meta["nargs"], int) else None  # else "+"
        ok = isinstance(value, list) and all(_is(meta["type"], item) for item in value)
        ok = ok and (len(value) == count if count else len(value) > 0)
        wanted = f"a list of {count or 'one or more'} {meta['type'].__name__}s"
    else:
        ok = _is(field.type, value) and value != ""  # as its flag refuses an empty one
        wanted = {bool: "true or false", int: "an int", float: "a number"}
        wanted = wanted.get(field.type, "a non-empty string")
    if ok and meta.get("choices") and value not in meta["choices"]:
        ok, wanted = False, f"one of {list(meta['choices'])}"
    if not ok:
        raise ValueError(f"--config {path!r}: {field.name} must be {wanted}, received {value!r}.")


def _is(kind, value):
    """Whether a JSON value is of `kind`: an int is a float too, and true is not an int."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


def add_evaluation_data_flags(parser):
    """Adds the flags of a command that reads a dataset's test split in batches.

    --dataset, --data-dir, --tfds-data-dir and --image-size are the
    `TrainConfig` fields of that name, with their defaults (the arguments of
    `keras_resnet.data.load_test_data`); --batch-size is the evaluation batch.
    """
    known = _fields((), "add_evaluation_data_flags")
    for name in ("dataset", "data_dir", "tfds_data_dir", "image_size"):
        _add_field_flag(parser, known[name], default=known[name].default)
    parser.add_argument(
        "--batch-size", type=int, default=256, help="images per batch (default: 256)"
    )


def add_model_source_flags(parser):
    """Adds the flags that say where a command's model comes from.

    --model (a run directory, a `.keras` file, a SavedModel folder or a TF
    Serving base folder) and --weights (pretrained weights: a name or a file,
    `keras_resnet.weights`) are a required, mutually exclusive choice;
    --depth and --bottleneck-stride go with --weights and pick the network
    the weights load into. `check_model_source_flags` refuses them with
    --model.

    Args:
        parser: an `argparse.ArgumentParser` (or a subcommand's parser).
    """
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", help="run directory, .keras file, SavedModel folder or TF Serving base folder"
    )
    source.add_argument(
        "--weights",
        help="pretrained weights: 'cifar10', 'imagenet' or a file (.h5, .pth, .safetensors, .npz)",
    )
    parser.add_argument(
        "--depth", type=int, help="with --weights: the network's depth (default: the file's)"
    )
    parser.add_argument(
        "--bottleneck-stride",
        choices=specs.BOTTLENECK_STRIDES,
        help="with --weights: where bottleneck blocks stride (default: the weights')",
    )


def check_model_source_flags(args):
    """Refuses --depth and --bottleneck-stride without --weights.

    Args:
        args: the namespace a parser given `add_model_source_flags` returned.

    Raises:
        ValueError: for --depth or --bottleneck-stride given with --model.
    """
    if args.model and (args.depth is not None or args.bottleneck_stride):
        raise ValueError("--depth and --bottleneck-stride go with --weights, not --model.")
