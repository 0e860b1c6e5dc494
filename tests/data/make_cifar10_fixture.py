"""Cuts the small real-CIFAR-10 fixture the default tests read, losslessly, from the original data.

    python tests/data/make_cifar10_fixture.py [--source ../shared/data/cifar-10-binary.tar.gz]

Input: the original CIFAR-10 binary version, the archive `cifar-10-binary.tar.gz`
that ../shared/data/README.md describes (`cifar-10-batches-bin/data_batch_1.bin`,
`test_batch.bin` and `batches.meta.txt` are read; the two batch files must have
the md5s published for the official archive, so every pixel is the original's).

Output: `cifar10-fixture.tar.gz` beside this script, class folders of PNG files
(lossless: each decodes to the original record's pixels exactly):

    train/<class>/0000.png ... 0049.png   the first 50 images of each class in data_batch_1.bin
    test/<class>/0000.png ... 0024.png    the first 25 images of each class in test_batch.bin

750 images, about 1.7 MB (the fixture must stay under 2 MB). The archive is
deterministic (sorted members, zero timestamps and owners, PNGs written by
Pillow with the same settings), so running this again gives the same file.
"""

import argparse
import gzip
import hashlib
import io
import pathlib
import sys
import tarfile

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "cifar-10-binary.tar.gz"
FIXTURE = HERE / "cifar10-fixture.tar.gz"
# split -> (batch file of the original archive, images taken of each class)
SPLITS = {"train": ("data_batch_1.bin", 50), "test": ("test_batch.bin", 25)}
# The md5s published for the official archive's files (../shared/data/README.md).
ORIGINAL_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
RECORD = 1 + 3 * 32 * 32  # a label byte, then 1,024 red, 1,024 green and 1,024 blue bytes


def read_members(source, names):
    """{name: bytes} of the members of `source` whose file names are in `names`."""
    found = {}
    with tarfile.open(source) as archive:
        for member in archive:
            name = pathlib.PurePosixPath(member.name).name
            if member.isfile() and name in names:
                found[name] = archive.extractfile(member).read()
    return found


def records(raw):
    """(labels, uint8 images NHWC) of a CIFAR-10 binary batch."""
    rows = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    return rows[:, 0], rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def select(members, class_names):
    """{'split/class/NNNN.png': PNG bytes}: the first images of each class of each split."""
    files = {}
    for split, (batch, per_class) in SPLITS.items():
        labels, images = records(members[batch])
        for label, name in enumerate(class_names):
            chosen = np.flatnonzero(labels == label)[:per_class]
            for number, index in enumerate(chosen):
                files[f"{split}/{name}/{number:04d}.png"] = png(images[index])
    return files


def write_fixture(files, path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            archive.addfile(info, io.BytesIO(files[name]))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source",
        type=pathlib.Path,
        default=DEFAULT_SOURCE,
        help=f"the original CIFAR-10 binary archive (default: {DEFAULT_SOURCE})",
    )
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(
            f"--source {args.source} does not exist: it is the archive "
            "cifar-10-binary.tar.gz of ../shared/data (see its README.md)."
        )
    members = read_members(args.source, {*ORIGINAL_MD5, "batches.meta.txt"})
    for name, md5 in ORIGINAL_MD5.items():
        if name not in members:
            parser.error(f"--source {args.source} has no {name}: is it cifar-10-binary.tar.gz?")
        if hashlib.md5(members[name]).hexdigest() != md5:
            parser.error(f"{name} in {args.source} is not the original file (md5 differs).")
    class_names = [n for n in members["batches.meta.txt"].decode().split() if n]
    if len(class_names) != 10:
        parser.error(f"batches.meta.txt in {args.source} names {len(class_names)} classes, not 10.")
    files = select(members, class_names)
    expected = 10 * sum(per_class for _, per_class in SPLITS.values())
    if len(files) != expected:
        parser.error(f"--source {args.source} gave {len(files)} images, expected {expected}.")
    write_fixture(files, FIXTURE)
    print(f"Wrote {FIXTURE} ({len(files)} images, {FIXTURE.stat().st_size:,} bytes).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
