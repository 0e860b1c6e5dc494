"""Files written whole or not at all: JSON, CSV, text and copies.

Every file the package writes goes through `atomic_path`: it is written under
a temporary name beside its target, flushed to disk and renamed over it, and
the rename flushed too, so that a kill, a full disk or a lost machine at any
moment leaves the old content or the new one, never half a file under its
final name.
"""

import contextlib
import csv
import io
import json
import os
import shutil


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write; renames it over `path` on success.

    The temporary name keeps the extension (matplotlib and exporters read it).
    Whatever wrote it (Keras, NumPy, matplotlib), the file (or folder tree) is
    flushed to disk before the rename and the folder after it. On an error the temporary file
    is removed and `path` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    root, extension = os.path.splitext(path)
    temporary = f"{root}.tmp-{os.getpid()}{extension}"
    try:
        yield temporary
        if os.path.isdir(temporary):
            sync_tree(temporary)
        else:
            sync_file(temporary)
        os.replace(temporary, path)
        sync_folder(folder)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def sync_file(path):
    """Flushes a written file to disk (opened for writing: Windows flushes no read handle)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def sync_folder(folder):
    """Flushes `folder`'s entries to disk, so that a rename in it survives a lost machine.

    Best effort, after the rename has happened: POSIX only (elsewhere a folder
    cannot be opened), and a file system that cannot flush a folder (some
    network and FUSE ones) is left to keep it as it does.
    """
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def sync_tree(folder):
    """Flushes every file and folder under `folder` to disk (a SavedModel before its rename)."""
    for root, _, names in os.walk(folder):
        for name in names:
            sync_file(os.path.join(root, name))
        sync_folder(root)


def write_atomic(path, text):
    """Writes `text` to `path` whole or not at all, flushed to disk."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as f:
            f.write(text)


def write_json(path, value):
    """Writes `value` as indented JSON, whole or not at all."""
    write_atomic(path, json.dumps(value, indent=1))


def read_json(path, expect=None):
    """The content of the JSON file `path`.

    Args:
        path: the file.
        expect: None, or the type the content must have (`dict` for a JSON object).

    Raises:
        ValueError: naming the file, when it is not UTF-8 JSON or not an `expect`.
        OSError: when it cannot be opened.
    """
    with open(path, encoding="utf-8") as f:
        try:
            content = json.load(f)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"{path!r} is not a JSON file: {error}.") from None
    if expect is not None and not isinstance(content, expect):
        wanted = "a JSON object" if expect is dict else expect.__name__
        raise ValueError(f"{path!r} holds {type(content).__name__}, not {wanted}.")
    return content


def copy_file(source, target):
    """Copies `source` to `target` whole or not at all, flushed to disk."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


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


def check_writable(folder, flag="output_dir"):
    """Fails if `folder` could not be created or written, naming `flag`; creates nothing.

    Raises:
        ValueError: naming `flag`, the folder, and the existing path that is
            read-only or not a directory.
    """
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(
            f"{flag} {folder!r} is not writable: {path!r} is "
            f"{'not a directory' if not os.path.isdir(path) else 'read-only'}."
        )


def check_output_file(path, flag):
    """Fails if the file `path` could not be written, naming `flag`; creates nothing.

    Raises:
        ValueError: when `path` is a folder, or its folder cannot be written.
    """
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a folder; give the path of a file to write.")
    check_writable(os.path.dirname(os.path.abspath(path)), flag)
