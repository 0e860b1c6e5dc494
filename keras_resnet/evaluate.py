"""Evaluate a trained model: top-1/top-5 error, loss, per-class accuracy, confusion matrix.

    keras-resnet-evaluate --model runs/cifar10-resnet20 --dataset cifar10 --data-dir .data
    keras-resnet-evaluate --model runs/cifar10-resnet20/saved_model/1 --dataset cifar10 \\
        --data-dir .data --output-json eval.json
    keras-resnet-evaluate --weights cifar10 --depth 56 --dataset cifar10 --data-dir .data

--model takes a run directory, a .keras file, a SavedModel folder or a TF Serving
base folder; --weights evaluates pretrained weights (`keras_resnet.weights`): a name
with --depth, or a file whose network it names itself. The same as
`python -m keras_resnet_cli evaluate` and, in a checkout, `python evaluate.py`.
The logic lives in `keras_resnet.evaluation`.
"""

import argparse
import os
import sys

from keras_resnet.cli import run_command
from keras_resnet import data as data_lib
from keras_resnet import evaluation, models, plotting, rundir, specs
from keras_resnet import weights as weights_lib


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", help="run directory, .keras file, SavedModel folder or TF Serving base folder"
    )
    source.add_argument(
        "--weights",
        help="pretrained weights: 'cifar10', 'imagenet' or a file (.h5, .pth, .safetensors, .npz)",
    )
    parser.add_argument(
        "--depth", type=int, help="with --weights: the network's depth (default: the file's)"
    )
    parser.add_argument(
        "--bottleneck-stride",
        choices=specs.BOTTLENECK_STRIDES,
        help="with --weights: where bottleneck blocks stride (default: the weights')",
    )
    data_lib.add_evaluation_data_flags(parser)
    parser.add_argument(
        "--ten-crop", action="store_true", help="the paper's 10-crop testing (large images)"
    )
    parser.add_argument("--output-json", help="write the report here")
    parser.add_argument(
        "--confusion-png",
        help="confusion-matrix PNG (default: beside --output-json, else confusion_matrix.png)",
    )
    args = parser.parse_args(argv)

    def run():
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be positive, received {args.batch_size}.")
        if args.model and (args.depth or args.bottleneck_stride):
            raise ValueError("--depth and --bottleneck-stride go with --weights, not --model.")
        data = data_lib.load_test_data(
            args.dataset, args.data_dir, args.tfds_data_dir, args.image_size
        )
        if args.model:
            classifier, label = evaluation.load_classifier(args.model), args.model
        else:
            model = _pretrained_model(args, data)
            classifier = evaluation.classifier_from_model(model, path=args.weights)
            label = f"{model.name} weights={args.weights}"
        report = evaluation.evaluate(classifier, data, args.batch_size, args.ten_crop)

        report = {
            "model": label,
            "format": classifier.kind,
            "dataset": args.dataset,
            "ten_crop": args.ten_crop,
            **report,
        }
        png = args.confusion_png or (
            os.path.splitext(args.output_json)[0] + "_confusion.png"
            if args.output_json
            else "confusion_matrix.png"
        )
        plotting.plot_confusion(
            report, data.class_names, png, title=os.path.basename(label.rstrip("/"))
        )
        if args.output_json:
            rundir.write_json(args.output_json, report)

        width = max(len(name) for name in data.class_names)
        for name, accuracy in report["per_class_accuracy"].items():
            print(f"  {name:<{width}}  accuracy {100 * accuracy:6.2f}%")
        print(
            f"{label} ({classifier.kind}) on {args.dataset}: top-1 error "
            f"{100 * report['top1_error']:.2f}%, top-5 error {100 * report['top5_error']:.2f}%, "
            f"loss {report['loss']:.4f}, {report['num_examples']} examples; "
            f"confusion matrix in {png}"
        )
        return 0

    return run_command(parser.prog, run)


def _pretrained_model(args, data):
    """The network `--weights` fit, built for the data's images."""
    weights = weights_lib.prepare(args.weights)
    architecture = weights_lib.implied_architecture(weights)
    depth = args.depth or architecture.get("depth")
    if depth is None:
        raise ValueError(f"--weights {args.weights} needs --depth (the network to load them into).")
    return models.ResNet(
        depth,
        stem=architecture["stem"],
        shortcut=architecture.get("shortcut"),
        bottleneck_stride=args.bottleneck_stride or architecture.get("bottleneck_stride"),
        weights=weights,
        input_shape=data.image_shape,
    )


if __name__ == "__main__":
    sys.exit(main())
