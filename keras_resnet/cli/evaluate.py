"""`keras-resnet-evaluate`: top-1/top-5 error, loss, per-class accuracy, confusion matrix.

    keras-resnet-evaluate --model runs/cifar10-resnet20 --dataset cifar10 --data-dir .data
    keras-resnet-evaluate --model runs/cifar10-resnet20/saved_model/1 --dataset cifar10 \\
        --data-dir .data --output-json eval.json
    keras-resnet-evaluate --weights cifar10 --depth 56 --dataset cifar10 --data-dir .data

--model takes a run directory, a .keras file, a SavedModel folder or a TF Serving
base folder; --weights evaluates pretrained weights (`keras_resnet.weights`): a name
with --depth, or a file whose network it names itself. The same as
`python -m keras_resnet_cli evaluate` and, in a checkout, `python evaluate.py`.
The metrics are `keras_resnet.evaluation`'s.
"""

import os

from keras_resnet import data as data_lib
from keras_resnet import evaluation, files, models, plotting
from keras_resnet.cli import flags, run_command


def build_parser():
    parser = flags.ArgumentParser(
        description="Evaluate a trained model: top-1/top-5 error, loss, per-class accuracy, "
        "confusion matrix."
    )
    flags.add_model_source_flags(parser)
    flags.add_evaluation_data_flags(parser)
    parser.add_argument(
        "--ten-crop", action="store_true", help="the paper's 10-crop testing (large images)"
    )
    parser.add_argument("--output-json", help="write the report here")
    parser.add_argument(
        "--confusion-png",
        help="confusion-matrix PNG (default: beside --output-json, else confusion_matrix.png)",
    )
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        _check_flags(args)
        # The model before the data, which may be a download of minutes.
        # The data in the channels the model takes: a gray set tests an RGB model, say.
        if args.model:
            classifier, label = evaluation.load_classifier(args.model), args.model
            data = data_lib.with_channels(load_data(args), classifier.input_shape[-1])
        else:
            source, _ = models.weights_network(
                args.weights, args.depth, bottleneck_stride=args.bottleneck_stride
            )
            data = load_data(args)
            data = data_lib.with_channels(data, source.channels or data.image_shape[-1])
            model = models.from_weights(
                source,
                args.depth,
                bottleneck_stride=args.bottleneck_stride,
                input_shape=data.image_shape,
            )
            classifier = evaluation.classifier_from_model(
                model, model.class_names, path=args.weights
            )
            label = f"{model.name} weights={args.weights}"
        report = evaluate(classifier, label, data, args)
        write_report(report, data.class_names, args)

    return run_command(parser.prog, run)


def _check_flags(args):
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, received {args.batch_size}.")
    flags.check_model_source_flags(args)
    if args.output_json:  # before the work, not after it
        files.check_output_file(args.output_json, "--output-json")
    png_flag = "--confusion-png" if args.confusion_png else "the confusion-matrix PNG"
    files.check_output_file(confusion_png(args), png_flag)


def confusion_png(args):
    """Where the confusion matrix is drawn: --confusion-png, or beside --output-json."""
    if args.confusion_png:
        return args.confusion_png
    if args.output_json:
        return os.path.splitext(args.output_json)[0] + "_confusion.png"
    return "confusion_matrix.png"


def load_data(args):
    """The test split of the data the flags name."""
    return data_lib.load_test_data(args.dataset, args.data_dir, args.tfds_data_dir, args.image_size)


def evaluate(classifier, label, data, args):
    """The report: what was evaluated on what, and `evaluation.evaluate`'s metrics."""
    metrics = evaluation.evaluate(classifier, data, args.batch_size, args.ten_crop)
    return {
        "model": label,
        "format": classifier.kind,
        "dataset": args.dataset,
        "ten_crop": args.ten_crop,
        **metrics,
    }


def write_report(report, class_names, args):
    """Draws the confusion matrix, writes --output-json, prints per-class and overall results."""
    label = report["model"]
    png = confusion_png(args)
    plotting.plot_confusion(report, class_names, png, title=os.path.basename(label.rstrip("/")))
    if args.output_json:
        files.write_json(args.output_json, report)
    width = max(len(name) for name in class_names)
    for name, accuracy in report["per_class_accuracy"].items():
        print(f"  {name:<{width}}  accuracy {100 * accuracy:6.2f}%")
    print(
        f"{label} ({report['format']}) on {report['dataset']}: top-1 error "
        f"{100 * report['top1_error']:.2f}%, top-5 error {100 * report['top5_error']:.2f}%, "
        f"loss {report['loss']:.4f}, {report['num_examples']} examples; "
        f"confusion matrix in {png}"
    )
