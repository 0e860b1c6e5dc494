"""The run directory: atomic writes, run state and history, and loading a model.

A run directory holds `config.json`, `checkpoints/` (`epoch-NNNN.weights.h5`
with model and optimizer state, and `state.json` naming it with the history so
far), `history.csv`, `summary.json`, `logs/` (TensorBoard), `model.keras`,
`saved_model/<version>/` and `training_curves.png`.

Every file is written under a temporary name and renamed over its target, so a
kill at any moment leaves the old content or the new one, never half a file.
`state.json` is replaced after the weights it names, so a checkpoint is always
a consistent pair.
"""

import contextlib
import csv
import dataclasses
import glob
import io
import json
import os
import shutil

HISTORY_FIELDS = (
    "epoch",
    "step",
    "learning_rate",
    "loss",
    "top1_error",
    "top3_error",
    "top5_error",
    "val_loss",
    "val_top1_error",
    "val_top3_error",
    "val_top5_error",
    "seconds",
)
# Config fields a resumed run must share with the run it continues.
RESUME_FIELDS = (
    "dataset",
    "depth",
    "stem",
    "shortcut",
    "plain",
    "bottleneck_stride",
    "steps_per_epoch",
    "batch_size",
    "schedule",
    "recipe",
)


# ------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write; renames it over `path` on success.

    The temporary name keeps the extension (matplotlib and exporters read it).
    On an error the temporary file is removed and `path` is left as it was.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, extension = os.path.splitext(path)
    temporary = f"{root}.tmp-{os.getpid()}{extension}"
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_atomic(path, text):
    """Writes `text` to `path` whole or not at all, flushed to disk."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, value):
    """Writes `value` as indented JSON, whole or not at all."""
    write_atomic(path, json.dumps(value, indent=1))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def check_writable(output_dir, flag="output_dir"):
    """Fails if the folder could not be created or written, naming `flag`; creates nothing."""
    path = os.path.abspath(output_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(
            f"{flag} {output_dir!r} is not writable: {path!r} is "
            f"{'not a directory' if not os.path.isdir(path) else 'read-only'}."
        )


# ---------------------------------------------------------------- run state


def load_state(run_dir):
    """The last checkpoint's state (`epoch`, `step`, `weights`, `history`), or None."""
    path = os.path.join(run_dir, "checkpoints", "state.json")
    return read_json(path) if os.path.exists(path) else None


def write_checkpoint(run_dir, model, state):
    """Saves model and optimizer as the checkpoint of `state`, then `state.json` and history.

    Args:
        run_dir: the run directory.
        model: the compiled model.
        state: dict with `epoch`, `step`, `weights` (the file name to write)
            and `history` (a row per finished epoch).
    """
    directory = os.path.join(run_dir, "checkpoints")
    os.makedirs(directory, exist_ok=True)
    model.save_weights(os.path.join(directory, state["weights"]))
    write_json(os.path.join(directory, "state.json"), state)
    for old in glob.glob(os.path.join(directory, "epoch-*.weights.h5")):
        if os.path.basename(old) != state["weights"]:
            os.remove(old)
    write_history(os.path.join(run_dir, "history.csv"), state["history"])


# The subfolder of a results folder holding the copy of a running net's last checkpoint.
CHECKPOINT_COPY = "checkpoint"


def copy_file(source, target):
    """Copies `source` to `target` whole or not at all, flushed to disk."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())


def copy_checkpoint(run_dir, folder):
    """Copies a run's last checkpoint, `config.json` and `history.csv` into `folder`.

    The copy lives in `folder/checkpoint/` (`CHECKPOINT_COPY`): weights first,
    its `state.json` last, so it is always a consistent pair that
    `restore_checkpoint_copy` can turn back into a run directory when the run
    directory itself is lost (a new machine, a deleted work tree).
    """
    state = load_state(run_dir)
    if not state:
        return
    target = os.path.join(folder, CHECKPOINT_COPY)
    copy_file(
        os.path.join(run_dir, "checkpoints", state["weights"]),
        os.path.join(target, state["weights"]),
    )
    for name in ("config.json", "history.csv"):
        copy_file(os.path.join(run_dir, name), os.path.join(folder, name))
    write_json(os.path.join(target, "state.json"), state)
    for old in glob.glob(os.path.join(target, "*.weights.h5")):
        if os.path.basename(old) != state["weights"]:
            os.remove(old)


def restore_checkpoint_copy(folder, run_dir):
    """Makes `run_dir` resumable from the checkpoint copy in `folder`, if the copy is further on.

    Returns:
        The copy's state when it was restored; None when `folder` holds no
        copy or `run_dir`'s own checkpoint is at least as far.
    """
    source = os.path.join(folder, CHECKPOINT_COPY)
    path = os.path.join(source, "state.json")
    copied = read_json(path) if os.path.exists(path) else None
    own = load_state(run_dir)
    if not copied or (own and own["step"] >= copied["step"]):
        return None
    checkpoints = os.path.join(run_dir, "checkpoints")
    copy_file(os.path.join(source, copied["weights"]), os.path.join(checkpoints, copied["weights"]))
    for name in ("config.json", "history.csv"):
        copy_file(os.path.join(folder, name), os.path.join(run_dir, name))
    write_json(os.path.join(checkpoints, "state.json"), copied)  # last: it names the weights
    return copied


def remove_checkpoint_copy(folder):
    """Deletes the checkpoint copy in `folder` (once its net has finished)."""
    shutil.rmtree(os.path.join(folder, CHECKPOINT_COPY), ignore_errors=True)


def restore_checkpoint(model, run_dir, state):
    """Loads the model and optimizer state of the checkpoint `state` names."""
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(run_dir, "checkpoints", state["weights"]))


def write_history(path, rows):
    """`history.csv`: a row per epoch, the columns of `HISTORY_FIELDS`."""
    write_csv(path, rows, HISTORY_FIELDS)


def read_csv(path):
    """The rows of a CSV file as dicts of strings (empty cells as "")."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path, rows, fields=None):
    """Writes dict `rows` as CSV atomically; None and missing values as empty cells.

    Args:
        path: the file to write.
        rows: list of dicts.
        fields: the columns, in order. Default: the first row's keys.
    """
    buffer = io.StringIO()
    fields = list(fields or (rows[0] if rows else []))
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def check_same_run(run_dir, config):
    """Refuses to resume a run directory that holds a run of another configuration.

    Args:
        run_dir: the run directory.
        config: the resolved config (a dict) of the run about to start.
    """
    path = os.path.join(run_dir, "config.json")
    if not (os.path.exists(path) and load_state(run_dir)):
        return
    changed = config_changes(read_json(path), config, RESUME_FIELDS)
    if changed:
        raise ValueError(
            f"{run_dir!r} holds a run with another configuration ({changed}); "
            "choose another --output-dir to keep it."
        )


def config_changes(recorded, config, fields):
    """`"field: old -> new, ..."` for the `fields` where two config dicts differ; "" if none."""
    return ", ".join(
        f"{k}: {recorded.get(k)!r} -> {config[k]!r}" for k in fields if recorded.get(k) != config[k]
    )


# ------------------------------------------------------------ loading models


@dataclasses.dataclass
class LoadedModel:
    """A model read from disk, with what its run recorded about the data.

    Attributes:
        model: a `keras.Model` (`kind` `"keras"`) or the loaded SavedModel.
        kind: `"keras"` or `"saved_model"`.
        path: the `.keras` file or SavedModel version folder loaded.
        data: the `data` entry of the run's `config.json` (class names,
            preprocessing), or {} when the model has no run beside it.
    """

    model: object
    kind: str
    path: str
    data: dict


def find_model(path, saved_model=True):
    """The file or folder to load for `path`: (`"keras"` or `"saved_model"`, its path).

    `path` is a run directory (its `model.keras`), a `.keras` file, and with
    `saved_model` also a SavedModel folder or a TF Serving base folder (its
    newest version).
    """
    if not os.path.exists(path):
        raise ValueError(f"Model path {path!r} does not exist.")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.keras")):
        return "keras", os.path.join(path, "model.keras")
    if os.path.isfile(path) and path.endswith(".keras"):
        return "keras", path
    if saved_model and os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model", path
        versions = [
            n
            for n in os.listdir(path)
            if n.isdigit() and os.path.isfile(os.path.join(path, n, "saved_model.pb"))
        ]
        if versions:
            return "saved_model", os.path.join(path, max(versions, key=int))
    if saved_model:
        raise ValueError(
            f"{path!r} is not a run directory (with model.keras), a .keras file, a "
            "SavedModel folder (with saved_model.pb) or a TF Serving base folder."
        )
    raise ValueError(f"{path!r} is neither a run directory with model.keras nor a .keras file.")


def load_model(path, saved_model=True):
    """Loads a run directory's model, a `.keras` file or (with `saved_model`) a SavedModel.

    Returns:
        A `LoadedModel`.

    Raises:
        ValueError: for a missing path, an unknown layout or a file that does not load.
    """
    kind, found = find_model(path, saved_model)
    if kind == "keras":
        import keras

        try:
            model = keras.saving.load_model(found)
        except Exception as error:
            raise ValueError(f"Cannot load {found!r}: {error}") from None
        config = os.path.join(os.path.dirname(os.path.abspath(found)), "config.json")
        data = read_json(config).get("data", {}) if os.path.isfile(config) else {}
        return LoadedModel(model, kind, found, data)
    import tensorflow as tf

    try:
        model = tf.saved_model.load(found)
    except Exception as error:
        raise ValueError(f"Cannot load the SavedModel {found!r}: {error}") from None
    labels = os.path.join(found, "assets", "labels.txt")
    data = {}
    if os.path.isfile(labels):
        with open(labels) as f:
            data["class_names"] = [line.rstrip("\n") for line in f]
    return LoadedModel(model, kind, found, data)
