"""Search hyperparameters of the paper's recipe with keras-tuner.

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

import os
import sys

from keras_resnet.cli import run_command
from keras_resnet import config as config_lib
from keras_resnet import rundir, runtime, training, tuning

TUNING_ARGS = (
    "oracle",
    "max_trials",
    "population",
    "generations",
    "search",
    "lr_range",
    "momentum_range",
    "weight_decay_range",
    "schedules",
    "depths",
    "shortcuts",
    "max_epochs",
    "overwrite",
)


def build_parser():
    parser = config_lib.build_parser(
        "Search hyperparameters of the paper's recipe with keras-tuner."
    )
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
        help="what to search: learning_rate momentum weight_decay schedule depth shortcut",
    )
    range_flag = {"nargs": 2, "type": float, "metavar": ("LOW", "HIGH")}
    group.add_argument("--lr-range", default=(1e-3, 1.0), **range_flag)
    group.add_argument("--momentum-range", default=(0.8, 0.99), **range_flag)
    group.add_argument("--weight-decay-range", default=(1e-5, 1e-3), **range_flag)
    group.add_argument(
        "--schedules", nargs="+", choices=config_lib.SCHEDULES, default=list(config_lib.SCHEDULES)
    )
    group.add_argument("--depths", nargs="+", type=int, default=[20, 32, 44, 56])
    group.add_argument("--shortcuts", nargs="+", choices=("A", "B", "C"), default=["A", "B", "C"])
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
        search = {name: getattr(args, name) for name in TUNING_ARGS}
        for name in TUNING_ARGS:
            delattr(args, name)
        config = config_lib.config_from_namespace(parser, args)
        hyperparameters = tuning.search_space(
            search["search"],
            tuple(search["lr_range"]),
            tuple(search["momentum_range"]),
            tuple(search["weight_decay_range"]),
            search["schedules"],
            search["depths"],
            search["shortcuts"],
        )
        if not config.validation_split:
            config.validation_split = 0.1  # never tune on the test split
        config.output_dir = config.output_dir or os.path.join(
            "tuning", f"{config.dataset}-{search['oracle']}"
        )
        rundir.check_writable(config.output_dir)
        strategy = runtime.setup_devices(config)
        data = training.load_config_data(config)
        oracle = tuning.make_oracle(
            search["oracle"],
            hyperparameters,
            search["max_trials"],
            search["population"],
            search["generations"],
            config.seed,
            search["max_epochs"] or config.epochs,
        )
        tuner = tuning.ResNetTuner(
            oracle,
            config,
            data,
            strategy,
            directory=config.output_dir,
            project_name="search",
            overwrite=search["overwrite"],
        )
        # keras-tuner's distributed search: the chief serves the oracle while
        # the workers run the trials, then trains the baseline itself.
        distributed = "KERASTUNER_ORACLE_IP" in os.environ
        chief = os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief"
        if not distributed:
            tuner.run_baseline()
        tuner.search()
        if not chief:
            return 0
        if distributed:
            tuner.run_baseline()
        best, table = tuning.write_results(tuner, config.output_dir)
        print(table)
        out = config.output_dir
        print(f"Best: {best}; see {os.path.join(out, 'best_hyperparameters.json')}")
        print(f"Curves of the best trials and the baseline: {os.path.join(out, 'comparison.png')}")
        return 0

    return run_command(parser.prog, run)


if __name__ == "__main__":
    sys.exit(main())
