import os
import pathlib
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_resnet  # noqa: F401  first: it turns on TensorFlow's oneDNN kernels, as in train.py
import keras
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CIFAR10_TARBALL = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with fresh layer names and the default dtype policy."""
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


def extract_cifar10(destination, train_per_class, test_per_class):
    """Extracts the first N real CIFAR-10 JPEGs of each class from the shared tarball."""
    if not CIFAR10_TARBALL.exists():
        raise FileNotFoundError(f"Real CIFAR-10 is expected at {CIFAR10_TARBALL} (../shared/data).")
    limits = {"train": train_per_class, "test": test_per_class}
    with tarfile.open(CIFAR10_TARBALL) as archive:
        members = []
        for member in archive:
            parts = pathlib.PurePosixPath(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-3] in limits:
                if int(pathlib.Path(parts[-1]).stem) < limits[parts[-3]]:
                    member.name = "/".join(parts[-3:])
                    members.append(member)
        archive.extractall(destination, members=members, filter="data")
    return destination


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """1,000 training and 500 test images of the real CIFAR-10, in class folders."""
    return extract_cifar10(tmp_path_factory.mktemp("cifar10"), 100, 50)


def run_train(args, timeout=300, env=None):
    """Runs train.py as a user does; returns the completed process."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


@pytest.fixture(scope="session")
def cifar_run(cifar_dir, tmp_path_factory):
    """A ResNet-8 trained by train.py for 3 epochs on 1,000 real CIFAR-10 images."""
    run_dir = tmp_path_factory.mktemp("cifar_run") / "run"
    result = run_train(["--dataset", "cifar10", "--data-dir", str(cifar_dir), "--depth", "8",
                        "--batch-size", "50", "--epochs", "3", "--output-dir", str(run_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir
