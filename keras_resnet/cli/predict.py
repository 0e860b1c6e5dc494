"""`keras-resnet-predict`: the top classes of image files, by name, with their probabilities.

    keras-resnet-predict photos/ cat.jpg --weights imagenet --depth 50
    keras-resnet-predict 'cifar/test/*/*.png' --weights cifar10 --depth 56 --output-json out.json
    keras-resnet-predict my_images/ --model runs/cifar10-resnet110 --top 3

Takes image files, folders (their images, recursively) and glob patterns; the
model is a run directory, a `.keras` file, a SavedModel or TF Serving base
folder (--model), or pretrained weights (--weights with --depth for a name).
Each image is prepared as the model expects (`keras_resnet.predict`), the
results printed as a table and, with --output-json, written as JSON. The same
as `python -m keras_resnet_cli predict` and `python -m keras_resnet.predict`.
"""

from keras_resnet import files
from keras_resnet import predict as predict_lib
from keras_resnet.cli import flags, run_command


def build_parser():
    parser = flags.ArgumentParser(
        description="Classify image files: the top classes of each, by name, with their "
        "probabilities."
    )
    parser.add_argument(
        "images",
        nargs="+",
        help="image files (JPEG, PNG, BMP, GIF, WebP), folders of them (searched recursively) or "
        "glob patterns (quoted: 'photos/*.jpg')",
    )
    flags.add_model_source_flags(parser)
    parser.add_argument(
        "--top", type=int, help="classes shown per image (default: 5, or all of fewer)"
    )
    parser.add_argument(
        "--labels",
        help="class names, one a line in label order, instead of the model's own",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--output-json", help="also write the results here as JSON")
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        flags.check_model_source_flags(args)
        if args.output_json:  # before the work, not after it
            files.check_output_file(args.output_json, "--output-json")
        result = predict_lib.classify(
            args.images,
            top=args.top,
            batch_size=args.batch_size,
            model=args.model,
            weights=args.weights,
            depth=args.depth,
            bottleneck_stride=args.bottleneck_stride,
            labels=args.labels,
        )
        print(predict_lib.format_table(result["images"]))
        if args.output_json:
            files.write_json(args.output_json, result)
        print(
            f"{result['num_images']} images classified by {result['model']} "
            f"({result['format']}) in {result['seconds']:.1f} s"
            + (f"; results in {args.output_json}" if args.output_json else "")
        )

    return run_command(parser.prog, run)
