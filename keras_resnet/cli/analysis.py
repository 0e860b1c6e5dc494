"""`keras-resnet-analysis`: Fig. 6, Fig. 7 and Table 6 of He et al. (2015), reproduced.

    keras-resnet-analysis degradation --depths 20 56 --dataset cifar10 --data-dir .data
    keras-resnet-analysis layer-responses --dataset cifar10 --data-dir .data \\
        --model runs/degradation/plain20 --model runs/degradation/resnet20
    keras-resnet-analysis depth-table --depths 20 32 44 56 110 --dataset cifar10
    keras-resnet-analysis redraw --results-dir docs/paper_table6

The same as `python -m keras_resnet_cli analysis` and `python -m
keras_resnet.analysis`. The sweeps (`degradation`, `depth-table`) take every
train flag but --depth, --plain and --output-dir; without --steps/--epochs
they run the paper's 64k iterations. The logic lives in `keras_resnet.analysis`.
"""

from keras_resnet import analysis, files
from keras_resnet import data as data_lib
from keras_resnet.cli import flags, run_command

RESULTS_DIR_HELP = (
    "what to commit: each net's config, history, summary and layer responses, and the "
    "figures drawn from them; a net whose results are here is not trained again; the running "
    "net's last checkpoint is kept here until it finishes, and a lost run directory goes on "
    "from it; one recipe per folder, whose tables show every net in it, so another --seed "
    "adds its runs' rows (default: --output-dir)"
)
# The sweeps' commands: (help, default depths, default output folder).
SWEEPS = {
    "degradation": (
        "Fig. 6: plain and residual nets, training and test error against iterations; "
        "then Fig. 7 from the same nets",
        analysis.DEGRADATION_DEPTHS,
        "runs/degradation",
    ),
    "depth-table": (
        "Table 6: residual nets of several depths, parameters and test error",
        analysis.TABLE_DEPTHS,
        "runs/depth-table",
    ),
}


def build_parser():
    parser = flags.ArgumentParser(
        description="Fig. 6, Fig. 7 and Table 6 of He et al. (2015), reproduced."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, depths, output_dir) in SWEEPS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--depths",
            type=int,
            nargs="+",
            default=list(depths),
            help=f"CIFAR depths 6n+2 (default: {' '.join(map(str, depths))})",
        )
        command.add_argument(
            "--output-dir",
            default=output_dir,
            help=f"one run directory per net, and the results (default: {output_dir})",
        )
        command.add_argument("--results-dir", help=RESULTS_DIR_HELP)
        flags.add_train_config_flags(command, skip=("depth", "plain", "output_dir"))
    command = commands.add_parser(
        "redraw",
        help="Fig. 6 and Fig. 7 (and Table 6) again from the files of --results-dir, in seconds",
        description="Redraws a results folder's tables and figures without training anything.",
    )
    command.add_argument("--results-dir", required=True, help="folder with the results")
    command = commands.add_parser(
        "layer-responses",
        help="Fig. 7: std of each 3x3 layer's response over the test set",
        description="Fig. 7: std of each 3x3 layer's response over the test set",
    )
    command.add_argument(
        "--model",
        action="append",
        required=True,
        help="run directory or .keras file; repeat for several models",
    )
    flags.add_evaluation_data_flags(command)
    command.add_argument(
        "--output-dir",
        default="runs/layer-responses",
        help="where the CSV and PNG go (default: runs/layer-responses)",
    )
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input or a failed run)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        if args.command == "redraw":
            analysis.redraw(args.results_dir)
        elif args.command == "layer-responses":
            if args.batch_size < 1:
                raise ValueError(f"--batch-size must be positive, received {args.batch_size}.")
            files.check_writable(args.output_dir, "--output-dir")  # before the work
            # The models before the data, which may be a download of minutes.
            models = analysis.load_models(args.model)
            data = data_lib.load_test_data(
                args.dataset, args.data_dir, args.tfds_data_dir, args.image_size
            )
            analysis.layer_response_analysis(models, data, args.output_dir, args.batch_size)
        else:
            if len(set(args.depths)) != len(args.depths):
                raise ValueError(f"--depths has repeated values: {args.depths}.")
            sweep = analysis.degradation if args.command == "degradation" else analysis.depth_table
            sweep(flags.train_config(args), args.depths, args.output_dir, args.results_dir)

    return run_command(f"{parser.prog} {args.command}", run)
