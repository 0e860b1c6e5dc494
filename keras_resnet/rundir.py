"""The run directory: `RunDir`, the one owner of a run's files, and its one writer.

A run directory holds:

    config.json          the run's record: the resolved config and the facts derived from it
    checkpoints/         the last `KEEP_CHECKPOINTS` checkpoints, each a weights file (model
                         and optimizer: `epoch-NNNN.weights.h5` after an epoch,
                         `step-NNNNNNN.weights.h5` when a run is stopped part way through one)
                         and its state beside it (`<name>.state.json`: epoch, step, the history
                         so far); `state.json` is the newest one's state
    history.csv          a row per finished epoch (`HISTORY_FIELDS`)
    logs/                TensorBoard
    model.keras, saved_model/<version>/, training_curves.png   written when the run ends
    summary.json         the run's results, written last: it marks the run finished
    lock                 held by the process that writes the directory

- One writer: a process that writes a run directory holds an exclusive lock on
  its `lock` file (`RunLock`; `fcntl.flock`, so the kernel drops it when the
  process dies, even by kill -9); a second one stops at once, naming the first.
- Every file is written whole or not at all (`keras_resnet.files`); a
  checkpoint's weights go first and its state last, so a kill at any moment
  leaves a consistent checkpoint to resume from. One that cannot be read is
  reported and the run resumes from the newest one that can.
- A results folder (what a sweep commits of each net) has the same layout
  less the weights: `RESULT_FILES`, and while the net trains a copy of its last
  two checkpoints in `checkpoint/`, from which a lost run directory goes on.
"""

import contextlib
import dataclasses
import glob
import os
import shutil

from keras_resnet import _compat, files
from keras_resnet import config as config_lib
from keras_resnet import weights as weights_lib
from keras_resnet.runlock import RunDirError, RunLock

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
# Record fields a resumed run must share with the run it continues.
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
    "weights",
    "freeze_backbone",
    "unfreeze_from",
)
# Record fields a finished run's results must share with a sweep to be taken for its net.
RECIPE_FIELDS = RESUME_FIELDS + (
    "validation_split",
    "train_subset",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_lr",
    "seed",
    "mixed_precision",
    "total_steps",
    "lr_boundaries_steps",
    "warmup_steps",
)
# What is worth committing of a finished run (no weights); summary.json last, as it marks
# the results complete.
RESULT_FILES = ("config.json", "history.csv", "summary.json")
# Checkpoints kept: a damaged newest one (a truncated copy, a disk error) leaves two to go
# on from, at three times one checkpoint's disk (TF's CheckpointManager and Orbit keep 5).
KEEP_CHECKPOINTS = 3
# The subfolder of a results folder holding the copy of a running net's last checkpoint.
CHECKPOINT_COPY = "checkpoint"


class RunDirTaken(ValueError):
    """The run directory holds a trained run that the run about to start would lose, or be
    taken for: its message names what differs, and says to choose another folder."""


class RunDir:
    """A run directory (see the module docstring): its files, state and checkpoints.

    Args:
        path: the folder; nothing is created until something is written.
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"RunDir({self.path!r})"

    def file(self, name):
        """The path of `name` inside the run directory."""
        return os.path.join(self.path, name)

    @property
    def log_dir(self):
        return self.file("logs")

    @property
    def model_path(self):
        return self.file("model.keras")

    # ------------------------------------------------------- record, summary

    def record(self):
        """The run's `config.json`, or None when it has none."""
        return _read_if_present(self.file("config.json"))

    def write_record(self, record):
        files.write_json(self.file("config.json"), record)

    def summary(self):
        """The finished run's results (`summary.json`), or None when it has not finished."""
        return _read_if_present(self.file("summary.json"))

    def write_summary(self, summary):
        """Writes `summary.json`, which marks the run finished: write it last."""
        files.write_json(self.file("summary.json"), summary)

    @property
    def finished(self):
        return os.path.isfile(self.file("summary.json"))

    def history(self):
        """The rows of `history.csv` (strings), or [] when there is none."""
        path = self.file("history.csv")
        return files.read_csv(path) if os.path.isfile(path) else []

    def check_writable(self):
        files.check_writable(self.path)

    def check_same_run(self, record):
        """Refuses to train into a run directory where that would lose a trained run.

        A directory holding nothing trained (none, empty, or a run stopped
        before its first checkpoint) may take any run. One holding a
        checkpoint, a finished run's `summary.json` or `model.keras`, takes
        only the run its `config.json` records: that run is resumed, or found
        finished.

        Args:
            record: the record (`config.json`) of the run about to start.

        Raises:
            RunDirTaken: naming the fields that differ, when the directory
                holds a trained run whose `RESUME_FIELDS` differ; naming what
                it holds, when that cannot be resumed (no record, or
                checkpoint state files that are all unreadable).
        """
        held = self._trained()
        if not held:
            return
        keep = "choose another --output-dir to keep it"
        recorded = self.record()
        if recorded is None:
            raise RunDirTaken(
                f"{self.path!r} holds a trained run ({', '.join(held)}) but no config.json "
                f"saying how it was trained; {keep}."
            )
        changed = config_changes(recorded, record, RESUME_FIELDS)
        if changed:
            raise RunDirTaken(
                f"{self.path!r} holds a run with another configuration ({changed}); {keep}."
            )
        if not (self.state() or self.finished):
            raise RunDirTaken(
                f"{self.path!r} holds {held[0]}, so its run can be neither resumed nor found "
                f"finished; {keep}, or delete it there to train the run again from the start."
            )

    def _trained(self):
        """What this folder holds of a trained run: [] when nothing.

        Checkpoint weights without a state file (a writer stopped between the
        two) are not a checkpoint: the run goes on without them.
        """
        if self.state():
            return ["checkpoints"]
        held = [name for name in ("summary.json", "model.keras") if os.path.isfile(self.file(name))]
        states = glob.glob(os.path.join(self.checkpoints, "*state.json"))
        if states:
            held.append(f"checkpoint state files that cannot be read ({len(states)})")
        return held

    def finished_results(self, record):
        """Whether this folder holds every `RESULT_FILES` of a finished run of `record`'s recipe.

        Raises:
            ValueError: when the files are there but record another recipe
                (`RECIPE_FIELDS`): a sweep never draws two recipes as one.
        """
        if not all(os.path.isfile(self.file(name)) for name in RESULT_FILES):
            return False
        changed = config_changes(self.record(), record, RECIPE_FIELDS)
        if changed:
            raise ValueError(
                f"{self.path!r} holds the results of another recipe ({changed}); choose another "
                "--results-dir, or remove that folder to train the net again."
            )
        return True

    def copy_results(self, folder):
        """Copies `RESULT_FILES` (summary last) to `folder`, and drops its checkpoint copy."""
        if os.path.abspath(folder) == os.path.abspath(self.path):
            return
        for name in RESULT_FILES:
            files.copy_file(self.file(name), os.path.join(folder, name))
        drop_checkpoint_copy(folder)

    # ----------------------------------------------------------- checkpoints

    @property
    def checkpoints(self):
        return self.file("checkpoints")

    def state(self):
        """The newest checkpoint's state (`epoch`, `step`, `weights`, `history`), or None."""
        states = self.checkpoint_states()
        return states[0] if states else None

    def checkpoint_states(self):
        """The states of the checkpoints, newest first; unreadable ones left out.

        `state.json` (the newest, and the only one in run directories written
        before checkpoints were kept) and each `<weights>.state.json`, by step.
        """
        states = {}
        paths = [os.path.join(self.checkpoints, "state.json")]
        paths += glob.glob(os.path.join(self.checkpoints, "*.weights.h5.state.json"))
        for path in paths:
            try:
                state = files.read_json(path)
                states.setdefault(state["weights"], state)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # absent, or damaged: the others are tried
        return sorted(states.values(), key=lambda state: state["step"], reverse=True)

    def write_checkpoint(self, model, state):
        """Saves model and optimizer as the checkpoint of `state`, its state, and the history.

        The weights first (a temporary file, flushed and renamed), then the
        checkpoint's own state file, `state.json` and `history.csv`; then all
        but the newest `KEEP_CHECKPOINTS` checkpoints are deleted.

        Args:
            model: the compiled model.
            state: dict with `epoch`, `step`, `weights` (the file name to
                write) and `history` (a row per finished epoch).

        Raises:
            RunDirError: when the disk is full, the folder read-only or gone:
                the message says what failed, what is kept and how to resume.
        """
        if not os.path.isfile(self.file("config.json")):
            raise RunDirError(
                f"The run directory {self.path!r} vanished during training (its config.json is "
                f"gone), so the checkpoint of epoch {state['epoch']} was not written and nothing "
                "of this run is kept there; run the same command to train it again from the "
                "start."
            )
        path = os.path.join(self.checkpoints, state["weights"])
        temporary = os.path.join(self.checkpoints, f".tmp-{os.getpid()}-{state['weights']}")
        try:
            os.makedirs(self.checkpoints, exist_ok=True)
            for stale in glob.glob(os.path.join(self.checkpoints, ".tmp-*")):  # a killed writer's
                os.remove(stale)
            content = _compat.weights_file_bytes(model)  # HDF5 never writes to the disk itself
            with open(temporary, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
            files.sync_folder(self.checkpoints)
            self._keep_state_of_legacy_newest()
            _write_states(self.checkpoints, state)
            write_history(self.file("history.csv"), state["history"])
            kept = {s["weights"] for s in self.checkpoint_states()[:KEEP_CHECKPOINTS]}
            for old in glob.glob(os.path.join(self.checkpoints, "*.weights.h5")):
                if os.path.basename(old) not in kept:  # its state first: no orphan state file
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(f"{old}.state.json")
                    os.remove(old)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise RunDirError(self._write_failure(state, error)) from None

    def _keep_state_of_legacy_newest(self):
        """Gives the newest checkpoint of a run written before each had its own state one, so
        that it is kept."""
        try:
            previous = files.read_json(os.path.join(self.checkpoints, "state.json"))
        except (OSError, ValueError):
            return  # none yet, or damaged: each kept checkpoint has its own
        own = os.path.join(self.checkpoints, f"{previous['weights']}.state.json")
        if not os.path.exists(own):
            files.write_json(own, previous)

    def _write_failure(self, state, error):
        """What a failed checkpoint write says: what failed, where, what is kept, how to resume."""
        where = getattr(error, "filename", None) or self.checkpoints
        reason = getattr(error, "strerror", None) or str(error)
        try:
            kept = self.state()
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

    def restore_checkpoint(self, model, log=print, set_aside=True):
        """Loads model and optimizer from the newest checkpoint that can be read.

        A checkpoint that cannot be read (truncated, damaged) is reported,
        naming its file, and the one before it is tried; once one loads, the
        damaged ones are set aside (renamed `<name>.damaged`, kept, never tried
        again) and `state.json` names the one that loaded.

        Args:
            model: the compiled model.
            log: function taking one line of progress text.
            set_aside: False on the non-chief workers of a cluster, which
                write nothing.

        Returns:
            The state of the checkpoint loaded, or None when there is none.

        Raises:
            RunDirError: when there are checkpoints and none of them can be read.
        """
        states = self.checkpoint_states()
        if not states:
            return None
        model.optimizer.build(model.trainable_variables)
        failures = []
        for state in states:
            path = os.path.join(self.checkpoints, state["weights"])
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
                files.write_json(os.path.join(self.checkpoints, "state.json"), state)
            return state
        raise RunDirError(
            f"No checkpoint in {self.checkpoints!r} can be read: "
            + "; ".join(f"{path!r}: {reason}" for path, reason in failures)
            + ". Move the run directory aside to start the run again."
        )

    # ------------------------------------------ the copy kept in a results folder

    def copy_checkpoint(self, folder):
        """Copies the last checkpoint, `config.json` and `history.csv` into `folder`.

        The copy lives in `folder/checkpoint/` (`CHECKPOINT_COPY`), laid out as
        the run directory's checkpoints are: weights first, their own state
        file, then `state.json`, which names the newest. The previous
        checkpoint stays until the next copy, so a snapshot of the folder taken
        while a copy is written (a `git add` beside the training) holds at
        least one whole pair, which `restore_checkpoint_copy` turns back into a
        run directory when the run directory itself is lost (a new machine, a
        deleted work tree).
        """
        state = self.state()
        if not state:
            return
        target = os.path.join(folder, CHECKPOINT_COPY)
        for stale in glob.glob(os.path.join(target, "*.tmp-*")):  # a killed copy's
            os.remove(stale)
        previous = _read_state(os.path.join(target, "state.json"))
        files.copy_file(
            os.path.join(self.checkpoints, state["weights"]),
            os.path.join(target, state["weights"]),
        )
        for name in ("config.json", "history.csv"):
            files.copy_file(self.file(name), os.path.join(folder, name))
        _write_states(target, state)
        kept = {state["weights"]} | ({previous["weights"]} if previous else set())
        for old in glob.glob(os.path.join(target, "*.weights.h5")):
            if os.path.basename(old) not in kept:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{old}.state.json")
                os.remove(old)

    def restore_checkpoint_copy(self, folder):
        """Makes this run directory resumable from the copy in `folder`, if the copy is further on.

        A run directory holding a trained run of another configuration than
        the copy is left as it is: nothing trained is lost.

        Returns:
            The copy's state when it was restored; None when `folder` holds no
            copy or this run directory's own checkpoint is at least as far.

        Raises:
            RunDirTaken: when this run directory holds a trained run of another
                configuration than the copy.
            ValueError: when the copy has no record, or when this run
                directory is behind it and none of the copy's weights are there.
        """
        source = os.path.join(folder, CHECKPOINT_COPY)
        own = self.state()
        newest = _read_state(os.path.join(source, "state.json"))
        if own and (newest is None or own["step"] >= newest["step"]):
            return None  # nothing to take from the copy, whole or not
        copied = _newest_whole_copy(source)
        if not copied or (own and own["step"] >= copied["step"]):
            return None
        copied_record = _read_if_present(os.path.join(folder, "config.json"))
        if copied_record is None:
            raise ValueError(f"The checkpoint kept in {folder!r} has no config.json beside it.")
        own_record = self.record()
        changed = own_record and config_changes(own_record, copied_record, RESUME_FIELDS)
        if self._trained() and (own_record is None or changed):
            raise RunDirTaken(
                f"{self.path!r} holds a trained run of another configuration "
                f"({changed or 'no config.json'}) than the checkpoint kept in {folder!r}, "
                "so that copy is not restored over it; choose another --output-dir to keep it."
            )
        files.copy_file(
            os.path.join(source, copied["weights"]),
            os.path.join(self.checkpoints, copied["weights"]),
        )
        files.copy_file(os.path.join(folder, "config.json"), self.file("config.json"))
        write_history(self.file("history.csv"), copied["history"])  # the pair's, not a newer one
        _write_states(self.checkpoints, copied)
        return copied

    # ------------------------------------------------------------ one writer

    def lock(self):
        """Takes the run directory's lock (`keras_resnet.runlock.RunLock`); returns it, held."""
        return RunLock(self.path).acquire()


def _state_file(directory, weights):
    return os.path.join(directory, f"{weights}.state.json")


def _write_states(directory, state):
    """A checkpoint's own state file, then `state.json`, which names it as the newest: last."""
    files.write_json(_state_file(directory, state["weights"]), state)
    files.write_json(os.path.join(directory, "state.json"), state)


def drop_checkpoint_copy(folder):
    """Deletes the checkpoint copy in a results folder, `state.json` first: a copy caught
    half-deleted is then no copy, never a state without its weights."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(folder, CHECKPOINT_COPY, "state.json"))
    shutil.rmtree(os.path.join(folder, CHECKPOINT_COPY), ignore_errors=True)


def _read_state(path):
    """A checkpoint state file's content; None when it is missing or cannot be read."""
    try:
        state = files.read_json(path)
        return state if all(key in state for key in ("epoch", "step", "weights")) else None
    except (OSError, ValueError, TypeError):
        return None


def _newest_whole_copy(source):
    """The newest state of a checkpoint copy whose weights are there; None without a copy.

    Raises:
        ValueError: when the copy's states all name weights that are missing.
    """
    paths = [os.path.join(source, "state.json")]
    paths += glob.glob(os.path.join(source, "*.weights.h5.state.json"))
    states = [state for state in map(_read_state, paths) if state]
    if not states:
        return None
    newest = max(states, key=lambda state: state["step"])
    for state in sorted(states, key=lambda state: state["step"], reverse=True):
        if os.path.isfile(os.path.join(source, state["weights"])):
            return state
    raise ValueError(
        f"The checkpoint kept in {source!r} names {newest['weights']}, which is not "
        "there, and no earlier weights are: check out a commit where the copy is whole, "
        "or delete that folder to train the net from the start."
    )


def _read_if_present(path):
    return files.read_json(path, expect=dict) if os.path.isfile(path) else None


def write_history(path, rows):
    """`history.csv`: a row per epoch, the columns of `HISTORY_FIELDS`."""
    files.write_csv(path, rows, HISTORY_FIELDS)


def config_changes(recorded, config, fields):
    """`"field: old -> new, ..."` for the `fields` where two records differ; "" if none.

    The training and test images count too: where both records have their
    data's fingerprint (`data.fingerprint`; runs recorded before it, and
    data read from files, have none) and the fingerprints differ, the data's
    sources are named: another dataset, or the same one re-encoded. A field
    a record lacks (written before the field existed) counts as its default.
    `weights` differ only where they name other weights
    (`keras_resnet.weights.same`): the same file spelled another way is no change.
    """
    defaults = {field.name: field.default for field in dataclasses.fields(config_lib.TrainConfig)}
    changes = []
    for k in fields:
        old, new = recorded.get(k, defaults.get(k)), config.get(k, defaults.get(k))
        if not (weights_lib.same(old, new) if k == "weights" else old == new):
            changes.append(f"{k}: {old!r} -> {new!r}")
    old, new = recorded.get("data") or {}, config.get("data") or {}
    if None not in (old.get("fingerprint"), new.get("fingerprint")) and (
        old["fingerprint"] != new["fingerprint"]
    ):
        changes.append(f"images: {old.get('source')!r} -> {new.get('source')!r} (other pixels)")
    return ", ".join(changes)
