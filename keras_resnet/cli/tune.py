"""`keras-resnet-tune`: search hyperparameters of the paper's recipe with keras-tuner.

    keras-resnet-tune --dataset cifar10 --data-dir .data --depth 20 --epochs 10 --oracle genetic
    keras-resnet-tune --dataset digits --depth 8 --epochs 2 --oracle random --max-trials 8 \\
        --search learning_rate weight_decay --lr-range 0.01 0.5

Takes every flag of keras-resnet-train (the base of each trial) plus the search's
own. Trials run the training command's code path; results land in --output-dir
(default tuning/<dataset>-<oracle>): keras-tuner's trial folders (each a run
directory with TensorBoard logs and HParams), baseline/ (the same run at the
recipe's defaults, trained first), best_hyperparameters.json, results.md (every
trial ranked, and what the best one gains over the baseline) and comparison.png
(the best trials and the baseline, epoch by epoch). Run the same command again
to resume. The same as `python -m keras_resnet_cli tune` and, in a
checkout, `python tune.py`. The logic lives in `keras_resnet.tuning`.
"""

import contextlib
import dataclasses
import inspect
import os
import shutil

from keras_resnet import config as config_lib
from keras_resnet import files, planning, rundir, runtime, training, tuning
from keras_resnet.cli import flags, run_command


# What a search writes in its --output-dir, which --overwrite deletes.
EARLIER_SEARCH = (
    "search",
    "baseline",
    "results.md",
    "best_hyperparameters.json",
    "comparison.png",
)
# Where --overwrite keeps the earlier search while the new one is checked, + the process id.
SET_ASIDE_PREFIX = ".overwritten-"
# ... and where it goes to be deleted once the new search is set up.
DELETING_PREFIX = ".deleting-overwritten-"
# The flags that shape one searched hyperparameter each, and its name in --search.
SEARCH_FLAGS = {
    "lr_range": "learning_rate",
    "momentum_range": "momentum",
    "weight_decay_range": "weight_decay",
    "schedules": "schedule",
    "depths": "depth",
    "shortcuts": "shortcut",
}


def _search_help(flag):
    default = inspect.signature(tuning.search_space).parameters[flag].default
    return f"with --search {SEARCH_FLAGS[flag]} (default: {' '.join(map(str, default))})"


def build_parser():
    parser = flags.ArgumentParser(
        description="Search hyperparameters of the paper's recipe with keras-tuner."
    )
    flags.add_train_config_flags(parser)
    group = parser.add_argument_group("search")
    group.add_argument(
        "--oracle",
        choices=tuning.ORACLES,
        default="genetic",
        help="search algorithm (default: genetic)",
    )
    group.add_argument(
        "--max-trials",
        type=int,
        help="trials at most (genetic default: population + (generations-1) * population/2)",
    )
    group.add_argument(
        "--population", type=int, default=10, help="genetic: population size (default: 10)"
    )
    group.add_argument(
        "--generations", type=int, default=5, help="genetic: generations (default: 5)"
    )
    group.add_argument(
        "--search",
        nargs="+",
        default=["learning_rate", "momentum", "weight_decay"],
        choices=tuning.SEARCHABLE,
        metavar="NAME",
        help="what to search, all of it: any of "
        f"{' '.join(tuning.SEARCHABLE)} (default: learning_rate momentum weight_decay)",
    )
    range_flag = {"nargs": 2, "type": float, "metavar": ("LOW", "HIGH")}
    group.add_argument("--lr-range", help=_search_help("lr_range"), **range_flag)
    group.add_argument("--momentum-range", help=_search_help("momentum_range"), **range_flag)
    group.add_argument(
        "--weight-decay-range", help=_search_help("weight_decay_range"), **range_flag
    )
    group.add_argument(
        "--schedules", nargs="+", choices=config_lib.SCHEDULES, help=_search_help("schedules")
    )
    group.add_argument("--depths", nargs="+", type=int, help=_search_help("depths"))
    group.add_argument(
        "--shortcuts", nargs="+", choices=("A", "B", "C"), help=_search_help("shortcuts")
    )
    group.add_argument(
        "--max-epochs", type=int, help="hyperband: most epochs of a trial (default: --epochs or 9)"
    )
    group.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input or a failed search)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        config = search_base_config(args)
        # keras-tuner's distributed search: the chief serves the oracle while
        # the workers run the trials, then trains the baseline itself.
        distributed = "KERASTUNER_ORACLE_IP" in os.environ
        chief = os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief"
        if chief:
            _put_back_an_interrupted_overwrite(config.output_dir)
        with _earlier_search_set_aside(config.output_dir, args.overwrite and chief):
            tuner = make_tuner(args, config, check_baseline=chief)
        if not distributed:
            tuner.run_baseline()
        tuner.search()
        if not chief:
            return 0
        if distributed:
            tuner.run_baseline()
        report(tuner, config.output_dir)
        return 0

    return run_command(parser.prog, run)


def search_base_config(args):
    """The `TrainConfig` every trial starts from: held-out validation, the search's folder."""
    config = flags.train_config(args)
    if not config.validation_split:
        config.validation_split = 0.1  # never tune on the test split
    config.output_dir = config.output_dir or os.path.join(
        "tuning", f"{config.dataset}-{args.oracle}"
    )
    files.check_writable(config.output_dir)
    return config


@contextlib.contextmanager
def _earlier_search_set_aside(output_dir, overwrite):
    """With --overwrite, the earlier search and baseline are moved aside while the new search
    is checked and set up, then deleted; put back when that fails, so a bad flag loses nothing.

    Only the chief of a distributed search overwrites: a worker starting late
    must not delete the search under way.
    """
    earlier = [n for n in EARLIER_SEARCH if os.path.exists(os.path.join(output_dir, n))]
    if not (overwrite and earlier):
        yield
        return
    aside = os.path.join(output_dir, f"{SET_ASIDE_PREFIX}{os.getpid()}")
    os.makedirs(aside)
    try:
        for name in earlier:
            os.rename(os.path.join(output_dir, name), os.path.join(aside, name))
        yield
    except BaseException:
        _put_back(aside, output_dir)
        raise
    deleting = os.path.join(output_dir, f"{DELETING_PREFIX}{os.getpid()}")
    os.replace(aside, deleting)  # a kill while deleting leaves no half search to put back
    shutil.rmtree(deleting)


def _put_back(aside, output_dir):
    """Moves what `aside` holds back into `output_dir`, over what was begun anew (no trial
    has trained before the earlier search is deleted), and removes `aside`."""
    for name in os.listdir(aside):
        begun = os.path.join(output_dir, name)
        if os.path.isdir(begun):
            shutil.rmtree(begun)
        elif os.path.exists(begun):
            os.remove(begun)
        os.replace(os.path.join(aside, name), begun)
    os.rmdir(aside)


def _put_back_an_interrupted_overwrite(output_dir):
    """Puts back an earlier search that an --overwrite killed while setting up (SIGKILL,
    a lost machine) left set aside, so the same command resumes it as if never overwritten."""
    entries = os.listdir(output_dir) if os.path.isdir(output_dir) else []
    stopped = {}  # folder name -> the pid of the --overwrite that left it
    for entry in entries:
        pid = entry.rpartition("-")[2]
        if entry.startswith((SET_ASIDE_PREFIX, DELETING_PREFIX)) and pid.isdigit():
            if not _running(int(pid)):
                stopped[entry] = pid
    for entry in stopped:
        if entry.startswith(DELETING_PREFIX):  # what an --overwrite was deleting
            shutil.rmtree(os.path.join(output_dir, entry))
    asides = [entry for entry in stopped if entry.startswith(SET_ASIDE_PREFIX)]
    # The oldest last: it holds the search from before the first interrupted --overwrite.
    asides.sort(key=lambda entry: os.path.getmtime(os.path.join(output_dir, entry)), reverse=True)
    for entry in asides:
        pid = stopped[entry]
        _put_back(os.path.join(output_dir, entry), output_dir)
        print(
            f"Put back the earlier search in {output_dir}, which an --overwrite stopped "
            f"while setting up (process {pid}) had set aside."
        )


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def make_tuner(args, config, check_baseline=True):
    """The search space, oracle and `ResNetTuner` the flags describe, with its data loaded.

    Refuses a flag that shapes a hyperparameter --search leaves out, and
    checks each searched depth before the data loads; with `check_baseline`
    (where the baseline is trained: the chief), the baseline's plan too.
    """
    given = {flag: tuple(getattr(args, flag)) for flag in SEARCH_FLAGS if getattr(args, flag)}
    for flag in given:
        if SEARCH_FLAGS[flag] not in args.search:
            raise ValueError(
                f"--{flag.replace('_', '-')} shapes the search of {SEARCH_FLAGS[flag]}, "
                f"which --search leaves out (it searches {' '.join(args.search)}): add "
                f"{SEARCH_FLAGS[flag]} to --search, or drop --{flag.replace('_', '-')}."
            )
    hyperparameters = tuning.search_space(args.search, **given)
    searched = {hp.name: hp for hp in hyperparameters.space}
    for depth in searched["depth"].values if "depth" in searched else ():
        config_lib.check(dataclasses.replace(config, depth=depth))  # before a download of data
    strategy = runtime.setup_devices(config)
    data = planning.load_config_data(config)
    if check_baseline:  # before any trial: a bad flag stops the search here
        _check_baseline(config, data, strategy)
    oracle = tuning.make_oracle(
        args.oracle,
        hyperparameters,
        args.max_trials,
        args.population,
        args.generations,
        config.seed,
        args.max_epochs or config.epochs,
    )
    return tuning.ResNetTuner(
        oracle,
        config,
        data,
        strategy,
        directory=config.output_dir,
        project_name="search",
    )


def _check_baseline(config, data, strategy):
    """Plans the baseline the search will train, which a bad flag or an earlier search's
    baseline of another configuration refuses."""
    baseline = dataclasses.replace(config, output_dir=tuning.baseline_dir(config.output_dir))
    try:
        plan = planning.prepare(baseline, data, strategy)
        training.finished_before(plan, plan.run_dir.state())
    except rundir.RunDirTaken as error:  # by the earlier search's baseline
        raise ValueError(f"{error} Or start the search afresh with --overwrite.") from None


def report(tuner, output_dir):
    """Writes the search's results and prints the ranking and where the files are."""
    best, table = tuning.write_results(tuner, output_dir)
    print(table)
    print(f"Best: {best}; see {os.path.join(output_dir, 'best_hyperparameters.json')}")
    print(
        f"Curves of the best trials and the baseline: {os.path.join(output_dir, 'comparison.png')}"
    )
