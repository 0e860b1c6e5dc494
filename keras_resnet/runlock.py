"""One writer per run directory: `RunLock`, an exclusive lock on its `lock` file."""

import contextlib
import fcntl
import os
import socket
import time


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
