import importlib
import io
import os
import pathlib
import socket
import subprocess
import sys
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# In-process tests run the library as the commands do (keras_resnet_cli), with TensorFlow's
# oneDNN kernels on unless the environment says otherwise; TensorFlow reads this once, as it loads.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Cut losslessly from the original CIFAR-10 batches by tests/data/make_cifar10_fixture.py:
# PNG class folders of the first 50 training and 25 test images of each class.
CIFAR10_FIXTURE = REPO / "tests" / "data" / "cifar10-fixture.tar.gz"
# The original CIFAR-10 binary version, byte for byte (../shared/data/README.md).
CIFAR10_FULL = REPO.parent / "shared" / "data" / "cifar-10-binary.tar.gz"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with fresh layer names, the default dtype policy and data format."""
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.backend.clear_session(free_memory=False)  # a gc.collect() per test slows the suite


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test's call instead of reaching a network."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def extract_cifar10(archive_path, destination):
    """Extracts an archive of CIFAR-10 into `destination` (files only, no links)."""
    with tarfile.open(archive_path) as archive:
        members = [member for member in archive if member.isfile() or member.isdir()]
        archive.extractall(destination, members=members, filter="data")
    return destination


def write_class_folders(batches_dir, destination, classes=None):
    """PNG class folders `train/<class>/NNNNN.png`, `test/<class>/...` of CIFAR-10 binary
    batches (lossless: the PNGs decode to the batches' pixels), for `classes` (None: all)."""
    from keras_resnet import data

    cifar = data.load_data("cifar10", str(batches_dir))
    for split, part in (("train", cifar.train), ("test", cifar.test)):
        for label, name in enumerate(cifar.class_names):
            if classes is not None and name not in classes:
                continue
            folder = pathlib.Path(destination) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for number, image in enumerate(part.images[part.labels == label]):
                (folder / f"{number:05d}.png").write_bytes(_png(image))
    return destination


def gray_copy(source, destination, splits=("train", "test"), classes=None):
    """A copy of the class folders `source` whose images are all gray PNGs (PIL's luma)."""
    from PIL import Image

    for split in splits:
        for folder in sorted((pathlib.Path(source) / split).iterdir()):
            if classes is not None and folder.name not in classes:
                continue
            target = pathlib.Path(destination) / split / folder.name
            target.mkdir(parents=True)
            for path in sorted(folder.iterdir()):
                with Image.open(path) as image:
                    image.convert("L").save(target / f"{path.stem}.png")
    return pathlib.Path(destination)


def _png(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """500 training and 250 test images of the original CIFAR-10 as PNG class folders (the
    committed fixture)."""
    return extract_cifar10(CIFAR10_FIXTURE, tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def full_cifar_dir(tmp_path_factory):
    """The original CIFAR-10's binary batches, all 50,000 training and 10,000 test images
    (`cifar-10-batches-bin`; tests marked real_data)."""
    if not CIFAR10_FULL.is_file():
        pytest.skip(
            f"needs the original CIFAR-10 at {CIFAR10_FULL}: put the archive "
            "cifar-10-binary.tar.gz there (the official binary version, "
            "cifar-10-batches-bin/data_batch_1.bin ... test_batch.bin; "
            "../shared/data/README.md); the default tests use the fixture in tests/data instead."
        )
    root = extract_cifar10(CIFAR10_FULL, tmp_path_factory.mktemp("cifar10_full"))
    return root / "cifar-10-batches-bin"


def run_command(command, args, timeout=300, env=None, cwd=REPO):
    """Runs `python -m keras_resnet_cli <command>` (what the console scripts run) as a user
    does; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "keras_resnet_cli", command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def run_train(args, timeout=300, env=None):
    """Runs the training command as a user does; returns the completed process."""
    return run_command("train", args, timeout, env)


@pytest.fixture(scope="session")
def cifar_run(cifar_dir, tmp_path_factory):
    """A ResNet-8 trained by the training command for 6 epochs (60 steps) on 500 real CIFAR-10
    images."""
    run_dir = tmp_path_factory.mktemp("cifar_run") / "run"
    result = run_train(
        [
            "--dataset",
            "cifar10",
            "--data-dir",
            str(cifar_dir),
            "--depth",
            "8",
            "--batch-size",
            "50",
            "--epochs",
            "6",
            "--output-dir",
            str(run_dir),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_main(capsys):
    """Runs a command's `main(argv)` in this process, as `python -m keras_resnet_cli <command>`
    would, and returns a `CompletedProcess` with its exit status and output."""

    def run(command, *args):
        module = importlib.import_module(f"keras_resnet.cli.{command}")
        argv = [str(arg) for arg in args]
        try:
            status = module.main(argv)
        except SystemExit as exit:  # argparse's usage errors
            status = exit.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, status, out, err)

    return run
