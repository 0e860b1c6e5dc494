"""The run directory: atomic writes, resume checks, and loading a model from any format."""

import json
import os

import keras
import numpy as np
import pytest

import keras_resnet
from keras_resnet import data, export, files, model_files, rundir
from keras_resnet.rundir import RunDir


def test_an_interrupted_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "summary.json"
    files.write_json(str(path), {"epochs": 1})
    with pytest.raises(RuntimeError, match="killed"):
        with files.atomic_path(str(path)) as temporary:
            with open(temporary, "w") as f:
                f.write('{"epo')
            raise RuntimeError("killed halfway")
    assert json.loads(path.read_text()) == {"epochs": 1}
    assert os.listdir(tmp_path) == ["summary.json"]


def test_atomic_path_keeps_the_extension_and_creates_the_folder(tmp_path):
    path = tmp_path / "new" / "figure.png"
    with files.atomic_path(str(path)) as temporary:
        assert temporary.endswith(".png") and temporary != str(path)
        open(temporary, "w").close()
    assert os.listdir(tmp_path / "new") == ["figure.png"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads fsync's files in /proc")
def test_a_file_another_library_wrote_is_on_disk_before_its_rename_and_the_rename_after(
    tmp_path, monkeypatch
):
    flushed = []  # (path, whether the target had its new name) per fsync
    real_fsync = os.fsync

    def fsync(descriptor):
        flushed.append((os.readlink(f"/proc/self/fd/{descriptor}"), path.exists()))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "run" / "weights.npz"
    with files.atomic_path(str(path)) as temporary:
        np.savez(temporary, x=np.arange(3))  # NumPy flushes nothing to disk itself
    assert flushed == [(temporary, False), (str(tmp_path / "run"), True)]
    flushed.clear()
    saved = tmp_path / "export" / "staging"  # a SavedModel's tree, every file and folder
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "variables.index").write_bytes(b"index")
    files.sync_tree(str(saved))
    assert {name for name, _ in flushed} == {
        str(saved),
        str(saved / "saved_model.pb"),
        str(saved / "variables"),
        str(saved / "variables" / "variables.index"),
    }


def test_resuming_another_configuration_is_refused(tmp_path):
    config = {field: None for field in rundir.RESUME_FIELDS}
    files.write_json(str(tmp_path / "config.json"), {**config, "depth": 20})
    RunDir(tmp_path).check_same_run({**config, "depth": 56})  # no checkpoint: nothing to keep
    os.makedirs(tmp_path / "checkpoints")
    files.write_json(
        str(tmp_path / "checkpoints" / "state.json"),
        {"epoch": 1, "step": 10, "weights": "epoch-0001.weights.h5", "history": []},
    )
    RunDir(tmp_path).check_same_run({**config, "depth": 20})
    with pytest.raises(ValueError, match="depth: 20 -> 56"):
        RunDir(tmp_path).check_same_run({**config, "depth": 56})


@pytest.mark.parametrize(
    "kept, unfinished",
    [
        ("summary.json", None),  # a finished run whose checkpoints were deleted: found finished
        ("model.keras", "holds model.keras, so its run can be neither resumed nor found"),
        ("checkpoints/state.json", r"holds checkpoint state files that cannot be read \(1\)"),
    ],
)
def test_a_trained_run_without_a_readable_checkpoint_is_never_trained_over(
    tmp_path, kept, unfinished
):
    """Only the recorded run may go on there, and a trained run with no record is refused."""
    config = {field: None for field in rundir.RESUME_FIELDS}
    os.makedirs(tmp_path / "checkpoints")
    (tmp_path / kept).write_text("{damaged")
    with pytest.raises(ValueError, match=r"holds a trained run \(.*\) but no config.json"):
        RunDir(tmp_path).check_same_run({**config, "depth": 20})
    files.write_json(str(tmp_path / "config.json"), {**config, "depth": 20})
    with pytest.raises(ValueError, match="another configuration .depth: 20 -> 56"):
        RunDir(tmp_path).check_same_run({**config, "depth": 56})
    if unfinished:
        with pytest.raises(ValueError, match=unfinished):
            RunDir(tmp_path).check_same_run({**config, "depth": 20})
    else:
        RunDir(tmp_path).check_same_run({**config, "depth": 20})
    assert (tmp_path / kept).read_text() == "{damaged"


def test_a_resume_takes_the_same_weights_file_however_its_path_is_spelled(tmp_path, monkeypatch):
    """`--weights w.npz`, `./w.npz`, its absolute path or a link: one file, one run, even
    once the file is gone (a resume reads the run's record, not the file)."""
    monkeypatch.chdir(tmp_path)
    config = {field: None for field in rundir.RESUME_FIELDS}
    run = RunDir(tmp_path / "run")
    os.makedirs(run.checkpoints)
    files.write_json(run.file("config.json"), {**config, "weights": "w.npz"})
    state = {"epoch": 1, "step": 10, "weights": "epoch-0001.weights.h5", "history": []}
    files.write_json(os.path.join(run.checkpoints, "state.json"), state)
    (tmp_path / "w.npz").write_bytes(b"weights")
    os.symlink(tmp_path / "w.npz", tmp_path / "link.npz")
    for spelled in ("w.npz", "./w.npz", str(tmp_path / "w.npz"), "sub/../w.npz", "link.npz"):
        run.check_same_run({**config, "weights": spelled})
    os.remove(tmp_path / "w.npz")
    run.check_same_run({**config, "weights": str(tmp_path / "w.npz")})
    for other, shown in (("v.npz", "'v.npz'"), ("cifar10", "'cifar10'"), (None, "None")):
        with pytest.raises(
            ValueError, match=rf"another configuration \(weights: 'w.npz' -> {shown}"
        ):
            run.check_same_run({**config, "weights": other})
    # A named set is not a file of that name in the working directory.
    files.write_json(run.file("config.json"), {**config, "weights": "cifar10"})
    with pytest.raises(ValueError, match=r"weights: 'cifar10' -> './cifar10'"):
        run.check_same_run({**config, "weights": "./cifar10"})
    run.check_same_run({**config, "weights": "cifar10"})


def test_weights_a_writer_left_without_their_state_are_no_checkpoint(tmp_path):
    """Killed between a checkpoint's weights and its state file, on the first: the same
    command starts the run again (the weights are deleted with the next checkpoint)."""
    config = {field: None for field in rundir.RESUME_FIELDS}
    os.makedirs(tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / "epoch-0001.weights.h5").write_bytes(b"weights")
    files.write_json(str(tmp_path / "config.json"), {**config, "depth": 20})
    RunDir(tmp_path).check_same_run({**config, "depth": 20})


def test_a_checkpoint_copy_is_never_restored_over_a_run_of_another_configuration(tmp_path):
    """A run directory behind its results folder's copy goes on from the copy, unless it
    holds a trained run of another configuration: that is left as it is, and named."""
    config = {field: None for field in rundir.RESUME_FIELDS}
    folder = tmp_path / "results" / "resnet20"
    os.makedirs(folder / rundir.CHECKPOINT_COPY)
    files.write_json(str(folder / "config.json"), {**config, "depth": 20})
    (folder / "history.csv").write_text("epoch,step\n1,10\n2,20\n")
    (folder / rundir.CHECKPOINT_COPY / "epoch-0002.weights.h5").write_bytes(b"weights")
    history = [{"epoch": 1, "step": 10}, {"epoch": 2, "step": 20}]
    copied = {"epoch": 2, "step": 20, "weights": "epoch-0002.weights.h5", "history": history}
    files.write_json(str(folder / rundir.CHECKPOINT_COPY / "state.json"), copied)
    run = RunDir(tmp_path / "runs" / "resnet20")
    os.makedirs(run.checkpoints)
    files.write_json(run.file("config.json"), {**config, "depth": 56})
    own = {"epoch": 1, "step": 10, "weights": "epoch-0001.weights.h5", "history": []}
    files.write_json(os.path.join(run.checkpoints, "state.json"), own)
    with pytest.raises(ValueError, match=r"another configuration \(depth: 56 -> 20\) than the"):
        run.restore_checkpoint_copy(str(folder))
    assert run.state() == own and run.record()["depth"] == 56
    files.write_json(run.file("config.json"), {**config, "depth": 20})  # the same run, behind
    assert run.restore_checkpoint_copy(str(folder)) == copied
    assert run.state() == copied
    assert [row["step"] for row in run.history()] == ["10", "20"]
    lost = RunDir(tmp_path / "lost")  # a lost run directory goes on from the copy too
    assert lost.restore_checkpoint_copy(str(folder)) == copied and lost.record()["depth"] == 20


def _checkpoint_at(run, epoch):
    """A run directory's checkpoint of `epoch` (10 steps an epoch), as the trainer leaves it."""
    weights = f"epoch-{epoch:04d}.weights.h5"
    os.makedirs(run.checkpoints, exist_ok=True)
    with open(os.path.join(run.checkpoints, weights), "wb") as f:
        f.write(f"weights of epoch {epoch}".encode())
    history = [{"epoch": e, "step": 10 * e} for e in range(1, epoch + 1)]
    state = {"epoch": epoch, "step": 10 * epoch, "weights": weights, "history": history}
    files.write_json(os.path.join(run.checkpoints, "state.json"), state)
    rundir.write_history(run.file("history.csv"), history)
    return state


def test_a_checkpoint_copy_caught_half_written_restores_the_checkpoint_before(tmp_path):
    """The copy keeps the previous checkpoint until the next copy, so a snapshot of it taken
    while a copy is written (a git add beside the training) still restores, one epoch back."""
    config = {field: None for field in rundir.RESUME_FIELDS}
    run, folder = RunDir(tmp_path / "run"), tmp_path / "results" / "resnet20"
    copy = folder / rundir.CHECKPOINT_COPY
    os.makedirs(run.path)
    files.write_json(run.file("config.json"), {**config, "depth": 20})
    states = {}
    for epoch in (1, 2, 3):
        states[epoch] = _checkpoint_at(run, epoch)
        if epoch == 3:
            (copy / "epoch-0003.weights.tmp-99.h5").write_bytes(b"a killed copy's")
        run.copy_checkpoint(str(folder))
    assert sorted(os.listdir(copy)) == [
        "epoch-0002.weights.h5",
        "epoch-0002.weights.h5.state.json",
        "epoch-0003.weights.h5",
        "epoch-0003.weights.h5.state.json",
        "state.json",
    ]
    # The snapshot: the new state, without the new weights.
    os.remove(copy / "epoch-0003.weights.h5")
    lost = RunDir(tmp_path / "lost")
    assert lost.restore_checkpoint_copy(str(folder)) == states[2]
    assert lost.state() == states[2]
    assert [row["epoch"] for row in lost.history()] == ["1", "2"]  # the pair's history
    with open(os.path.join(lost.checkpoints, "epoch-0002.weights.h5"), "rb") as f:
        assert f.read() == b"weights of epoch 2"
    # A run directory at least as far needs nothing from a torn copy.
    assert run.restore_checkpoint_copy(str(folder)) is None
    # Neither weights: an error naming what is missing, not a FileNotFoundError.
    os.remove(copy / "epoch-0002.weights.h5")
    with pytest.raises(ValueError, match="names epoch-0003.weights.h5, which is not there"):
        RunDir(tmp_path / "lost again").restore_checkpoint_copy(str(folder))


def test_a_field_a_record_lacks_counts_as_its_default():
    """Records written before a field existed resume: e.g. freeze_backbone (default False)."""
    fields = ("depth", "freeze_backbone", "unfreeze_from")
    record = {"depth": 20, "freeze_backbone": False, "unfreeze_from": None}
    assert rundir.config_changes({"depth": 20}, record, fields) == ""
    changed = rundir.config_changes({"depth": 20}, {**record, "freeze_backbone": True}, fields)
    assert changed == "freeze_backbone: False -> True"


def test_a_run_on_other_images_is_another_run_where_both_records_know_their_images(tmp_path):
    """Data fingerprints differ: refused, naming both sources; a record without one (runs
    recorded before fingerprints, images read from files) is not judged on its images."""
    config = {field: None for field in rundir.RESUME_FIELDS}

    def data(source, fingerprint):
        return {"source": source, "fingerprint": fingerprint}

    original = {**config, "data": data("cifar batches /a/cifar-10-batches-bin", "6471")}
    files.write_json(str(tmp_path / "config.json"), original)
    os.makedirs(tmp_path / "checkpoints")
    files.write_json(
        str(tmp_path / "checkpoints" / "state.json"),
        {"epoch": 1, "step": 10, "weights": "epoch-0001.weights.h5", "history": []},
    )
    same = {**config, "data": data("folder /b/png", "6471")}  # the same pixels as PNGs
    RunDir(tmp_path).check_same_run(same)
    jpeg = {**config, "data": data("folder /b/jpeg", "92a5")}
    with pytest.raises(ValueError) as error:
        RunDir(tmp_path).check_same_run(jpeg)
    assert (
        "(images: 'cifar batches /a/cifar-10-batches-bin' -> 'folder /b/jpeg' (other pixels))"
        in (str(error.value))
    )
    for unknown in ({**config}, {**config, "data": data("folder /b/big", None)}):
        RunDir(tmp_path).check_same_run(unknown)
        assert rundir.config_changes(unknown, original, rundir.RESUME_FIELDS) == ""


def test_load_model_finds_every_format_and_names_what_it_cannot(tmp_path):
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(8, 8, 3), classes=3)
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    model.save(run_dir / "model.keras")
    described = {"class_names": ["a", "b", "c"], "preprocessing": {"kind": "cifar"}}
    files.write_json(str(run_dir / "config.json"), {"data": described})
    loaded = model_files.load_model(str(run_dir))
    assert (loaded.kind, loaded.data, loaded.path) == (
        "keras",
        described,
        str(run_dir / "model.keras"),
    )
    assert isinstance(loaded.model, keras.Model)
    export.export_saved_model(model, str(tmp_path / "serving"), class_names=["a", "b", "c"])
    for path in (tmp_path / "serving", tmp_path / "serving" / "1"):
        loaded = model_files.load_model(str(path))
        assert loaded.kind == "saved_model" and loaded.data == {
            "class_names": ["a", "b", "c"],
            "preprocessing": {"kind": "cifar", "flip": True, "image_size": None},
        }
    with pytest.raises(ValueError, match="neither a run directory with model.keras nor a .keras"):
        model_files.load_model(str(tmp_path / "serving"), saved_model=False)
    with pytest.raises(ValueError, match="does not exist"):
        model_files.load_model(str(tmp_path / "missing"))
    (tmp_path / "broken.keras").write_text("not a zip file")
    with pytest.raises(ValueError, match="Cannot load"):
        model_files.load_model(str(tmp_path / "broken.keras"))


def test_preprocessing_of_runs_written_before_it_was_recorded():
    old_imagenet = {"augmentation": "scale", "flip": True, "image_shape": [160, 160, 3]}
    assert data.Preprocessing.from_description(old_imagenet) == data.Preprocessing(
        "imagenet", True, 160
    )
    old_digits = {"augmentation": "pad_crop", "flip": False, "image_shape": [8, 8, 1]}
    assert data.Preprocessing.from_description(old_digits) == data.Preprocessing("cifar", False)
    assert data.Preprocessing.from_description({}) is None
    new = data.Preprocessing("imagenet", False, 224)
    assert data.Preprocessing.from_description({"preprocessing": new.describe()}) == new
    with pytest.raises(ValueError, match="Unknown preprocessing 'tiny'"):
        data.Preprocessing("tiny")
    with pytest.raises(ValueError, match="needs a positive image_size"):
        data.Preprocessing("imagenet")


def test_one_writer_a_second_is_refused_naming_the_first_and_a_dead_ones_lock_is_free(tmp_path):
    import signal
    import socket
    import subprocess
    import sys

    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    # Another process takes the lock and holds it, as a training run does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({os.path.join(run_dir, 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, f'process {os.getpid()} on host {sys.argv[1]} (since now)'.encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            socket.gethostname(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(rundir.RunDirError) as refused:
            RunDir(run_dir).lock()
        message = str(refused.value)
        assert f"process {holder.pid} on host {socket.gethostname()}" in message
        assert "is in use" in message and "--output-dir" in message
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without releasing anything
        holder.wait()
    lock = RunDir(run_dir).lock()  # the kernel dropped the dead process's lock
    with open(os.path.join(run_dir, "lock")) as f:
        assert f.read().startswith(f"process {os.getpid()} on host ")
    with pytest.raises(rundir.RunDirError):
        RunDir(run_dir).lock()  # one writer, even within a process
    lock.release()
    RunDir(run_dir).lock().release()
