"""The packaged CIFAR-10 weights against the PyTorch checkpoints they come from.

For each of ResNet-20/32/44/56: top-1 error on the 10,000 real CIFAR-10 test
JPEGs of ../shared/data of
- keras_resnet with `weights="cifar10"` (the evaluate command's numbers:
  TensorFlow's JPEG decoder, the model's own normalization);
- the PyTorch checkpoint on the same decoded pixels (a functional forward of
  akamaster's layout written here with torch ops), and the largest logit
  difference between the two;
- the PyTorch checkpoint on PIL-decoded pixels, as ../shared/data/README.md
  measured it.

    python benchmarks/pretrained_accuracy.py --data-dir .data \\
        [--checkpoints ../shared/data/pretrained] [--output benchmarks/results.md]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="the extracted CIFAR-10 JPEG folders")
    parser.add_argument(
        "--checkpoints",
        default=os.path.join(os.path.dirname(common.REPO), "shared", "data", "pretrained"),
    )
    parser.add_argument("--output", help="append the results to this Markdown file")
    args = parser.parse_args()
    import torch

    import keras_resnet
    from keras_resnet import data as data_lib
    from keras_resnet import evaluation, weights

    data = data_lib.load_data("cifar10", args.data_dir)
    pixels, labels = data.test.images, data.test.labels
    pil_pixels, pil_labels = pil_test_images(args.data_dir, data.class_names)
    lines = [
        '| network | keras_resnet `weights="cifar10"` | PyTorch, same pixels | largest logit '
        "difference | PyTorch, PIL decoding | published (original test batches) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for depth in weights.CIFAR10_DEPTHS:
        (checkpoint,) = sorted(pathlib.Path(args.checkpoints).glob(f"resnet{depth}-*.th"))
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in saved["state_dict"].items()}
        model = keras_resnet.build_model(f"resnet{depth}", weights="cifar10")
        ours = evaluation.evaluate(evaluation.classifier_from_model(model), data, 500)
        logits = keras_resnet.build_model(
            f"resnet{depth}", weights="cifar10", classifier_activation=None
        ).predict(pixels.astype("float32"), batch_size=500, verbose=0)
        theirs = akamaster_logits(state, pixels)
        pil = akamaster_logits(state, pil_pixels)
        lines.append(
            f"| ResNet-{depth} | {100 * ours['top1_error']:.2f}% "
            f"| {100 * np.mean(theirs.argmax(1) != labels):.2f}% "
            f"| {np.abs(logits - theirs).max():.1e} "
            f"| {100 * np.mean(pil.argmax(1) != pil_labels):.2f}% "
            f"| {100 - float(saved['best_prec1']):.2f}% |"
        )
        print(lines[-1], flush=True)
    common.report(
        "Packaged CIFAR-10 weights against their PyTorch checkpoints, top-1 error on the "
        "10,000 real CIFAR-10 test JPEGs",
        " ".join(["python benchmarks/pretrained_accuracy.py", *sys.argv[1:]]),
        lines,
        args.output,
    )


if __name__ == "__main__":
    main()
