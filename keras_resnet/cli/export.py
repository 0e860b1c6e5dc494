"""`keras-resnet-export`: export a trained model for TF Serving (and TFLite).

    keras-resnet-export --model runs/cifar10-resnet20 --export-base /models/resnet20 \\
        --tflite resnet20.tflite

Writes the next free version folder under `--export-base` (what TF Serving
polls), and with `--tflite` a TFLite file checked against the Keras model. The
same as `python -m keras_resnet_cli export`. The logic, and what the
SavedModel's signatures take and return, is in `keras_resnet.export`.
"""

import contextlib
import os

import numpy as np

from keras_resnet import export, files
from keras_resnet.cli import flags, run_command


def build_parser():
    parser = flags.ArgumentParser(description="Export a trained model for TF Serving.")
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--export-base", required=True, help="TF Serving model base path")
    parser.add_argument("--name", help="model name for TF Serving (default: the model's name)")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument(
        "--tflite", help="also write a TFLite file here, checked against the export"
    )
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        # Before the model loads and converts:
        files.check_writable(args.export_base, "--export-base")
        export.version_folder(args.export_base, args.version)
        if args.tflite:
            export.check_tflite_path(args.tflite)
            files.check_output_file(args.tflite, "--tflite")
        model, class_names, preprocessing = export.load_for_export(args.model)
        export.check_fixed_input(model)  # before the TFLite check draws images of its size
        with contextlib.ExitStack() as stack:
            if args.tflite:  # first, as its check may fail; put in place with the SavedModel
                staging = stack.enter_context(files.atomic_path(args.tflite))
                check = np.random.RandomState(0).uniform(0, 255, (4, *model.input_shape[1:]))
                difference = export.export_tflite(model, staging, check.astype(np.float32))
            path = export.export_saved_model(
                model, args.export_base, args.version, class_names, preprocessing
            )
        if args.tflite:
            print(
                f"TFLite model {args.tflite} agrees with the Keras model "
                f"(max difference {difference:.1e})."
            )
        name = args.name or model.name
        base = os.path.abspath(args.export_base)
        print(f"Exported {name} version {os.path.basename(path)} to {path}")
        print(
            f"Serve it: docker run -p 8501:8501 -v {base}:/models/{name} -e MODEL_NAME={name} "
            "tensorflow/serving"
        )

    return run_command(parser.prog, run)
