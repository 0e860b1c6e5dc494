"""akamaster's CIFAR-10 checkpoints, converted, against PyTorch; and what ships as "cifar10".

For each of ResNet-20/32/44/56: top-1 error on the 10,000 images of the original
CIFAR-10 test batch (`test_batch.bin` of ../shared/data/cifar-10-binary.tar.gz) of
- keras_resnet with `weights=<akamaster's checkpoint>` (the evaluate command's numbers);
- the PyTorch checkpoint on the same pixels (a functional forward of akamaster's
  layout written here with torch ops), and the largest logit difference between the two;
- beside them, the published figures: akamaster's README table, and 100 - `best_prec1`
  stored in the checkpoint (its best epoch's test accuracy);
- the packaged `weights="cifar10"` and whose they are (`packaged.CIFAR10_NETS`: akamaster's
  checkpoint, the same figure, or this package's own run where that scores at least as well).

`--jpeg-dir` (the extracted ../shared/data/cifar10-jpeg.tar.gz) adds the same networks
on the 10,000 test JPEGs of that re-encoded copy: keras_resnet (TensorFlow's JPEG
decoder) and PyTorch on PIL-decoded pixels, as ../shared/data/README.md measured it.
Those figures are not comparable with any published one (the JPEG copy costs about
10 points); they are labelled as such.

    mkdir -p .data && tar -xzf ../shared/data/cifar-10-binary.tar.gz -C .data
    python benchmarks/pretrained_accuracy.py --data-dir .data/cifar-10-batches-bin \\
        [--jpeg-dir DIR] [--checkpoints ../shared/data/pretrained] [--output FILE.md]

(`--jpeg-dir DIR`: a folder holding the JPEG copy's `test/`, e.g. after
`tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C DIR`.)
"""

import argparse
import os
import pathlib
import sys

import common
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def akamaster_logits(state, pixels, batch=500):
    """akamaster's CIFAR ResNet (option A, zero channels on both sides) on uint8 NHWC pixels."""
    import torch
    from torch.nn import functional as F

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def conv_bn(x, name, stride=1):
        x = F.conv2d(x, state[f"{name[0]}.weight"], stride=stride, padding=1)
        bn = name[1]
        return F.batch_norm(
            x, state[f"{bn}.running_mean"], state[f"{bn}.running_var"],
            state[f"{bn}.weight"], state[f"{bn}.bias"], eps=1e-5,
        )  # fmt: skip

    outputs = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            x = torch.from_numpy(pixels[start : start + batch]).permute(0, 3, 1, 2).float()
            x = torch.relu(conv_bn((x / 255.0 - mean) / std, ("conv1", "bn1")))
            for stage in (1, 2, 3):
                index = 0
                while f"layer{stage}.{index}.conv1.weight" in state:
                    prefix = f"layer{stage}.{index}"
                    stride = 2 if stage > 1 and index == 0 else 1
                    y = torch.relu(conv_bn(x, (f"{prefix}.conv1", f"{prefix}.bn1"), stride))
                    y = conv_bn(y, (f"{prefix}.conv2", f"{prefix}.bn2"))
                    shortcut = x
                    if y.shape[1] != x.shape[1]:
                        pad = (y.shape[1] - x.shape[1]) // 2
                        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))
                    x = torch.relu(y + shortcut)
                    index += 1
            x = x.mean((2, 3))
            outputs.append((x @ state["linear.weight"].T + state["linear.bias"]).numpy())
    return np.concatenate(outputs)


def pil_test_images(data_dir, class_names):
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(class_names):
        for path in sorted((pathlib.Path(data_dir) / "test" / name).glob("*.jpg")):
            images.append(np.asarray(Image.open(path).convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels)


DEPTHS = (20, 32, 44, 56)
# akamaster/pytorch_resnet_cifar10's README table: test error (%) of these checkpoints.
AKAMASTER_README_ERRORS = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        required=True,
        help="the original CIFAR-10 binary batches (cifar-10-batches-bin, or a folder holding it)",
    )
    parser.add_argument(
        "--jpeg-dir", help="also measure on the CIFAR-10 JPEG copy's test/ folders, labelled"
    )
    parser.add_argument(
        "--checkpoints",
        default=os.path.join(os.path.dirname(common.REPO), "shared", "data", "pretrained"),
    )
    parser.add_argument("--output", help="append the results to this Markdown file")
    args = parser.parse_args()
    import torch

    import keras_resnet
    from keras_resnet import data as data_lib
    from keras_resnet import evaluation
    from keras_resnet.weights import packaged

    data = data_lib.load_test_data("cifar10", args.data_dir)
    if not data.source.startswith("cifar batches"):
        parser.error(f"--data-dir {args.data_dir} is not CIFAR-10 binary batches ({data.source})")
    pixels, labels = data.test.images, data.test.labels
    header = (
        "| network | keras_resnet, akamaster's checkpoint converted | PyTorch, same pixels "
        "| largest logit difference | published: akamaster's README | published: 100 - best_prec1 "
        '| packaged `weights="cifar10"` (trained by) |'
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if args.jpeg_dir:
        jpeg = data_lib.load_test_data("cifar10", args.jpeg_dir)
        pil_pixels, pil_labels = pil_test_images(args.jpeg_dir, jpeg.class_names)
        header += " JPEG copy: keras_resnet | JPEG copy: PyTorch, PIL decoding |"
        rule += "---:|---:|"
    lines = [header, rule]
    for depth in DEPTHS:
        (checkpoint,) = sorted(pathlib.Path(args.checkpoints).glob(f"resnet{depth}-*.th"))
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in saved["state_dict"].items()}
        model = keras_resnet.build_model(f"resnet{depth}", weights=str(checkpoint))
        classifier = evaluation.classifier_from_model(model, data.class_names)
        ours = evaluation.evaluate(classifier, data, 500)
        logits = keras_resnet.build_model(
            f"resnet{depth}", weights=str(checkpoint), classifier_activation=None
        ).predict(pixels.astype("float32"), batch_size=500, verbose=0)
        shipped = packaged.CIFAR10_NETS[depth]
        if shipped.trained_by == packaged.AKAMASTER:
            packaged_error = ours["top1_error"]  # the same weights (tests/test_weights.py)
        else:
            packaged_model = keras_resnet.build_model(f"resnet{depth}", weights="cifar10")
            packaged_error = evaluation.evaluate(
                evaluation.classifier_from_model(packaged_model, data.class_names), data, 500
            )["top1_error"]
        theirs = akamaster_logits(state, pixels)
        line = (
            f"| ResNet-{depth} | {100 * ours['top1_error']:.2f}% "
            f"| {100 * np.mean(theirs.argmax(1) != labels):.2f}% "
            f"| {np.abs(logits - theirs).max():.1e} "
            f"| {AKAMASTER_README_ERRORS[depth]:.2f}% "
            f"| {100 - float(saved['best_prec1']):.2f}% "
            f"| {100 * packaged_error:.2f}% ({shipped.trained_by}) |"
        )
        if args.jpeg_dir:
            on_jpeg = evaluation.evaluate(classifier, jpeg, 500)
            pil = akamaster_logits(state, pil_pixels)
            line += (
                f" {100 * on_jpeg['top1_error']:.2f}% "
                f"| {100 * np.mean(pil.argmax(1) != pil_labels):.2f}% |"
            )
        lines.append(line)
        print(line, flush=True)
    common.report(
        "akamaster's CIFAR-10 checkpoints converted, against PyTorch, and the packaged "
        'weights="cifar10"; top-1 error on the '
        "10,000 images of the original CIFAR-10 test batch"
        + (" (and, labelled, on the JPEG copy's 10,000 test JPEGs)" if args.jpeg_dir else ""),
        " ".join(["python benchmarks/pretrained_accuracy.py", *sys.argv[1:]]),
        lines,
        args.output,
    )


if __name__ == "__main__":
    main()
