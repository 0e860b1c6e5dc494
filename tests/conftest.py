import os
import pathlib
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
