"""The commands: one module a command, each with `main(argv=None)`.

`train`, `evaluate`, `tune`, `export`, `analysis`, `lr_find` and `predict` are the
console scripts `keras-resnet-<command>` (through `keras_resnet_cli`, which
sets TensorFlow's oneDNN default before TensorFlow loads). `flags` turns flags
into a `TrainConfig`, the one way all of them do it.

Every command's `main` runs its work through `run_command`, so that a bad
input, a failed run or a file that cannot be read or written ends the same
way in all of them: one line on stderr that names the problem, and exit
status 1, never a traceback.
"""

import sys

# What a command expects and reports: bad inputs and failed runs (ValueError and
# RuntimeError: DataError, TrainingDiverged, RunDirError, Preempted among them) and
# files that cannot be read or written (OSError: a full disk, a missing file, a
# read-only folder).
EXPECTED_ERRORS = (ValueError, RuntimeError, OSError)


def run_command(prog, body):
    """Runs `body()`; returns its exit status, or 1 after reporting an expected error.

    Args:
        prog: the command's name, the prefix of its error line.
        body: function of no arguments that does the command's work; it
            may return an exit status (None means 0).

    Returns:
        `body`'s exit status; 1 for an expected error, 130 on Ctrl-C.
    """
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
