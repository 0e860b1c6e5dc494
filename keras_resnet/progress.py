"""Progress of long work outside `fit`: a bar on a terminal, a line now and then in a log.

Decoding image folders, reading CIFAR batches and TFDS splits, evaluation and
10-crop testing count their work with `Progress`. On a terminal it draws
Keras's progress bar (the one `fit` draws); in a log (output not a terminal)
it writes a line such as `Decoding train images: 12288/45000 images (27%),
31 s` every `interval` seconds and a last one when the work is done, so
that work shorter than `interval` writes nothing.
"""

import sys
import time

import keras

LOG_INTERVAL_SECONDS = 30.0


class Progress:
    """Counts units of work done towards a total, and shows it.

    Use it as a context manager, calling `add` as work gets done:

    ```python
    with Progress("Evaluating", total=10000, unit="images") as progress:
        for batch in batches:
            ...
            progress.add(len(batch))
    ```

    Args:
        what: what is being done, e.g. `"Decoding train images"`.
        total: int, units in all, or None when not known.
        unit: str, what is counted. Default `"images"`.
        interval: float, seconds between log lines. Default None:
            `LOG_INTERVAL_SECONDS` (30).
        terminal: bool or None, draw the bar (True) or write lines (False).
            Default None: the bar when standard output is a terminal.
        stream: where log lines go. Default None: standard error.
    """

    def __init__(self, what, total, unit="images", interval=None, terminal=None, stream=None):
        self.what = what
        self.total = None if total is None else int(total)
        self.unit = unit
        self.interval = LOG_INTERVAL_SECONDS if interval is None else interval
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self.stream = stream
        self.done = 0
        self.started = time.perf_counter()
        self._last_line = self.started
        self._lines = 0
        self._bar = None
        if self.terminal:
            print(f"{what}:", flush=True)
            self._bar = keras.utils.Progbar(self.total, unit_name=unit.rstrip("s") or "step")

    def add(self, count):
        """Records `count` more units done."""
        self.done += int(count)
        if self._bar is not None:
            self._bar.update(self.done if self.total is None else min(self.done, self.total))
            return
        now = time.perf_counter()
        if now - self._last_line >= self.interval:
            self._write(now)

    def close(self):
        """Ends the bar, or writes the last line of work that wrote any (or took `interval`)."""
        if self._bar is not None:
            if self.total is None or self.done < self.total:
                print(flush=True)  # the bar stopped short: end its line
            return
        now = time.perf_counter()
        if self._lines or now - self.started >= self.interval:
            self._write(now)

    def _write(self, now):
        self._lines += 1
        self._last_line = now
        count = f"{self.done}" if self.total is None else f"{self.done}/{self.total}"
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        print(
            f"{self.what}: {count} {self.unit}{share}, {now - self.started:.0f} s",
            file=self.stream or sys.stderr,
            flush=True,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.close()
