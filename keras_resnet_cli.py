"""The commands of keras_resnet: the console scripts and `python -m keras_resnet_cli`.

    keras-resnet-train --dataset digits --depth 20 --epochs 1
    python -m keras_resnet_cli train --dataset digits --depth 20 --epochs 1   # the same

Each runs `keras_resnet.cli.<command>.main`. This module sits outside the
`keras_resnet` package on purpose: importing anything from the package loads
TensorFlow, which reads TF_ENABLE_ONEDNN_OPTS once, as it loads. The commands
set it first, as a default: TensorFlow leaves its oneDNN CPU kernels off on
some CPUs, where they train much faster (benchmarks/README.md);
TF_ENABLE_ONEDNN_OPTS=0 in the environment still turns them off.
"""

import importlib
import os
import sys

COMMANDS = ("train", "evaluate", "tune", "export", "analysis", "lr_find", "predict")


def run(command, argv=None):
    """Runs `keras_resnet.cli.<command>.main(argv)`; returns its exit status."""
    if command not in COMMANDS:
        raise ValueError(f"Unknown command {command!r}. Allowed: {', '.join(COMMANDS)}.")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return importlib.import_module(f"keras_resnet.cli.{command}").main(argv)


def run_module(command):
    """`python -m keras_resnet.<command>`: `run(command)`, TensorFlow already loaded.

    Python imports the `keras_resnet` package, and with it TensorFlow, before
    the module runs: too late for `run` to set the oneDNN default. Where
    oneDNN is off and the variable unset, the same command line
    (`sys.orig_argv`: interpreter flags, module and arguments) starts again
    with the variable set, so that the new Python's TensorFlow reads it. A
    TensorFlow built without oneDNN starts again once, for nothing. Run some
    other way (`runpy` from a script, IPython's `%run -m`), the command line
    is another program's: the command runs as it is, with oneDNN as it is.
    """
    if "TF_ENABLE_ONEDNN_OPTS" not in os.environ and _started_as(f"keras_resnet.{command}"):
        from keras_resnet import _compat

        if _compat.onednn_enabled() is False:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # set: the new Python does not restart
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    sys.argv[0] = f"python -m keras_resnet.{command}"  # argparse's name, not "__main__.py"
    return run(command)


def _started_as(module):
    """Whether this Python's own command line is `python [options] -m <module> ...`.

    Reads the interpreter's options as CPython does (`-Im mod`, `-W error`,
    `-mmod`), up to the first that is not one: `python -m pdb -m <module>`
    and `python host.py -m <module>` run another program.
    """
    args = sys.orig_argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--check-hash-based-pycs":  # the one long option with a value
            i += 2
            continue
        if not arg.startswith("-") or arg == "-" or arg.startswith("--"):
            return False  # a script, stdin, or a long option that ends the options
        for at, letter in enumerate(arg[1:], start=2):
            if letter in "cm":  # the rest of this argument, or the next, is the program
                program = arg[at:] or (args[i + 1] if i + 1 < len(args) else "")
                return letter == "m" and program == module
            if letter in "WX":  # its value: the rest of this argument, or the next
                i += 0 if arg[at:] else 1
                break
        i += 1
    return False


def train():
    sys.exit(run("train"))


def evaluate():
    sys.exit(run("evaluate"))


def tune():
    sys.exit(run("tune"))


def export():
    sys.exit(run("export"))


def analysis():
    sys.exit(run("analysis"))


def lr_find():
    sys.exit(run("lr_find"))


def predict():
    sys.exit(run("predict"))


def main(argv=None):
    """`python -m keras_resnet_cli COMMAND [flags]`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        given = repr(argv[0]) if argv else "none"
        print(
            f"usage: python -m keras_resnet_cli {{{','.join(COMMANDS)}}} [flags]\n"
            f"keras_resnet_cli: error: a command is needed (received {given}); "
            f"allowed: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    sys.argv[0] = f"keras_resnet_cli {argv[0]}"
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
