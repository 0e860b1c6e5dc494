"""The run directory: one writer, atomic writes, kept checkpoints, and loading a model.

A run directory holds `config.json`, `checkpoints/`, `history.csv`,
`summary.json`, `logs/` (TensorBoard), `model.keras`, `saved_model/<version>/`,
`training_curves.png` and `lock`.

- One writer: a process that writes a run directory holds an exclusive lock on
  its `lock` file (`RunLock`; `fcntl.flock`, so the kernel drops it when the
  process dies, even by kill -9); a second one stops at once, naming the first.
- Every file is written under a temporary name, flushed and renamed over its
  target, so a kill or a full disk at any moment leaves the old content or the
  new one, never half a file under its final name.
- `checkpoints/` keeps the last `KEEP_CHECKPOINTS` checkpoints, each a weights
  file (model and optimizer: `epoch-NNNN.weights.h5` after an epoch,
  `step-NNNNNNN.weights.h5` when a run is stopped part way through one) and its
  state beside it (`<name>.state.json`: epoch, step, the history so far);
  `state.json` is the newest one's state. A checkpoint that cannot be read is
  reported and the run resumes from the newest one that can.
"""

import contextlib
import csv
import dataclasses
import fcntl
import glob
import io
import json
import os
import shutil
import socket
import time

from keras_resnet import _compat

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


# ---------------------------------------------------------------- one writer
class RunDirError(RuntimeError):
    """A run directory that cannot be written or read as the run needs it."""


class RunLock:
    """The exclusive lock of one run directory's writer (its `lock` file).

    `fcntl.flock` on the open file: the kernel releases it when the process
    ends however it ends (kill -9 included), so a stale lock never blocks a
    resume; on a network filesystem the server drops the lock of a lost
    machine when its lease ends. The file records the holder's pid and host
    for the message a second writer gets. Released by `release()` or when the
    object is garbage-collected.
    """

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, "lock")
        self._fd = None

    def acquire(self):
        """Takes the lock, or raises `RunDirError` naming the process that holds it."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with os.fdopen(fd) as f:
                    holder = f.read().strip() or "another process"
                raise RunDirError(
                    f"{os.path.dirname(self.path)!r} is in use: {holder} is writing it. Wait "
                    "for that run to end (or stop it) and run the command again, or choose "
                    "another --output-dir."
                ) from None
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break  # the lock file in place, not one removed while we opened it
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        holder = f"process {os.getpid()} on host {socket.gethostname()}"
        os.write(fd, f"{holder} (since {time.strftime('%Y-%m-%d %H:%M:%S')})".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def release_and_tidy(self):
        """Releases the lock; a run directory holding nothing but it is removed too.

        For a run that failed before writing anything: it leaves no trace. The
        file goes while the lock is still held (`acquire` checks that the file
        it locked is still in place).
        """
        folder = os.path.dirname(self.path)
        with contextlib.suppress(OSError):
            if self._fd is not None and os.listdir(folder) == ["lock"]:
                os.remove(self.path)
                self.release()
                os.rmdir(folder)
        self.release()

    def __del__(self):
        self.release()


# ---------------------------------------------------------------- run state
# Checkpoints kept: a damaged newest one (a truncated copy, a disk error) leaves two to go
# on from, at three times one checkpoint's disk (TF's CheckpointManager and Orbit keep 5).
KEEP_CHECKPOINTS = 3


def load_state(run_dir):
    """The newest checkpoint's state (`epoch`, `step`, `weights`, `history`), or None."""
    states = checkpoint_states(run_dir)
    return states[0] if states else None


def checkpoint_states(run_dir):
    """The states of the checkpoints in `run_dir`, newest first; unreadable ones left out.

    `state.json` (the newest, and the only one in run directories written
    before checkpoints were kept) and each `<weights>.state.json`, by step.
    """
    directory = os.path.join(run_dir, "checkpoints")
    states = {}
    paths = [os.path.join(directory, "state.json")]
    paths += glob.glob(os.path.join(directory, "*.weights.h5.state.json"))
    for path in paths:
        try:
            state = read_json(path)
            states.setdefault(state["weights"], state)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # absent, or damaged: the others are tried
    return sorted(states.values(), key=lambda state: state["step"], reverse=True)


def write_checkpoint(run_dir, model, state):
    """Saves model and optimizer as the checkpoint of `state`, its state, and the history.

    The weights go to a temporary file, flushed and renamed; then the
    checkpoint's own state file, `state.json` and `history.csv`; then all but
    the newest `KEEP_CHECKPOINTS` checkpoints are deleted.

    Args:
        run_dir: the run directory.
        model: the compiled model.
        state: dict with `epoch`, `step`, `weights` (the file name to write)
            and `history` (a row per finished epoch).

    Raises:
        RunDirError: when the disk is full, the folder read-only or gone: the
            message says what failed, what is kept and how to resume.
    """
    directory = os.path.join(run_dir, "checkpoints")
    path = os.path.join(directory, state["weights"])
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{state['weights']}")
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise RunDirError(
            f"The run directory {run_dir!r} vanished during training (its config.json is "
            f"gone), so the checkpoint of epoch {state['epoch']} was not written and nothing of "
            "this run is kept there; run the same command to train it again from the start."
        )
    try:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, ".tmp-*")):  # a killed writer's
            os.remove(stale)
        content = _compat.weights_file_bytes(model)  # HDF5 never writes to the disk itself
        with open(temporary, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        write_json(f"{path}.state.json", state)
        newest = os.path.join(directory, "state.json")
        try:
            previous = read_json(newest)
        except (OSError, ValueError):
            previous = None  # none yet, or damaged: each kept checkpoint has its own
        if previous and not os.path.exists(
            os.path.join(directory, f"{previous['weights']}.state.json")
        ):  # written before each checkpoint had its own state: give it one, so it is kept
            write_json(os.path.join(directory, f"{previous['weights']}.state.json"), previous)
        write_json(newest, state)
        write_history(os.path.join(run_dir, "history.csv"), state["history"])
        kept = {s["weights"] for s in checkpoint_states(run_dir)[:KEEP_CHECKPOINTS]}
        for old in glob.glob(os.path.join(directory, "*.weights.h5")):
            if os.path.basename(old) not in kept:
                os.remove(old)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{old}.state.json")
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise RunDirError(_write_failure(run_dir, state, error)) from None


def _write_failure(run_dir, state, error):
    """What a failed checkpoint write says: what failed, where, what is kept, how to resume."""
    where = getattr(error, "filename", None) or os.path.join(run_dir, "checkpoints")
    reason = getattr(error, "strerror", None) or str(error)
    try:
        kept = load_state(run_dir)
    except OSError:
        kept = None
    kept_text = (
        f"The checkpoint of epoch {kept['epoch']} (step {kept['step']}) is kept and intact"
        if kept
        else "No earlier checkpoint of this run is kept"
    )
    return (
        f"Could not write the checkpoint of epoch {state['epoch']} (step {state['step']}) to "
        f"{where!r}: {reason}. {kept_text}. Make room (or make the folder writable again) "
        "and run the same command to resume from it."
    )


def restore_checkpoint(model, run_dir, log=print, set_aside=True):
    """Loads model and optimizer from the newest checkpoint that can be read.

    A checkpoint that cannot be read (truncated, damaged) is reported, naming
    its file, and the one before it is tried; once one loads, the damaged
    ones are set aside (renamed `<name>.damaged`, kept, never tried again)
    and `state.json` names the one that loaded.

    Args:
        model: the compiled model.
        run_dir: the run directory.
        log: function taking one line of progress text.
        set_aside: False on the non-chief workers of a cluster, which write
            nothing.

    Returns:
        The state of the checkpoint loaded, or None when `run_dir` has none.

    Raises:
        RunDirError: when there are checkpoints and none of them can be read.
    """
    states = checkpoint_states(run_dir)
    if not states:
        return None
    model.optimizer.build(model.trainable_variables)
    failures = []
    for state in states:
        path = os.path.join(run_dir, "checkpoints", state["weights"])
        try:
            model.load_weights(path)
        except Exception as error:  # h5py's OSError, Keras's ValueError for a wrong layout
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            failures.append((path, reason))
            log(f"Checkpoint {path!r} cannot be read ({reason}); trying the one before it.")
            continue
        if failures and set_aside:
            for damaged, _ in failures:
                for name in (damaged, f"{damaged}.state.json"):
                    if os.path.exists(name):
                        os.replace(name, f"{name}.damaged")
            write_json(os.path.join(run_dir, "checkpoints", "state.json"), state)
        return state
    raise RunDirError(
        f"No checkpoint in {os.path.join(run_dir, 'checkpoints')!r} can be read: "
        + "; ".join(f"{path!r}: {reason}" for path, reason in failures)
        + ". Move the run directory aside to start the run again."
    )


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
    write_json(os.path.join(checkpoints, f"{copied['weights']}.state.json"), copied)
    write_json(os.path.join(checkpoints, "state.json"), copied)  # last: it names the weights
    return copied


def remove_checkpoint_copy(folder):
    """Deletes the checkpoint copy in `folder` (once its net has finished)."""
    shutil.rmtree(os.path.join(folder, CHECKPOINT_COPY), ignore_errors=True)


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
