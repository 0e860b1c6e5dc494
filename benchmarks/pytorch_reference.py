"""The degradation experiment's residual nets trained in PyTorch, as a reference.

Trains the CIFAR ResNets of train_throughput.py in PyTorch with the recipe
`python -m keras_resnet.analysis degradation` gives train.py: SGD momentum
0.9, weight decay 1e-4 on every parameter, batch 128, lr 0.1 divided by 10 at
50% and 75% of `--steps`; zero-pad 4 + random 32x32 crop + flip of the raw
pixels, then the per-pixel mean subtracted and /255. Same images (keras_resnet's
loader of the real CIFAR-10), same initialisation. Every `--steps-per-epoch`
steps it reports the mean training error of those steps and the test error,
as degradation.csv does, so the two can be read side by side: whether a
deeper net's slow start is the recipe's or this package's.

    python benchmarks/pytorch_reference.py --data-dir .data --depths 20 56 --steps 800 \\
        --steps-per-epoch 160 --output benchmarks/results.md
"""

import argparse
import os
import sys
import time

import common
import numpy as np
import train_throughput

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def augment(images, rng):
    """Zero pad 4, random 32x32 crop and random horizontal flip of uint8 NHWC images."""
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    rows, cols = rng.integers(0, 9, len(images)), rng.integers(0, 9, len(images))
    crops = np.stack(
        [padded[i, r : r + 32, c : c + 32] for i, (r, c) in enumerate(zip(rows, cols))]
    )
    flip = rng.random(len(images)) < 0.5
    crops[flip] = crops[flip, :, ::-1]
    return crops


def train(depth, data, steps, steps_per_epoch, batch_size, seed):
    """Yields (step, training error, test error) every `steps_per_epoch` steps."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = train_throughput.pytorch_resnet(depth)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, [round(0.5 * steps), round(0.75 * steps)]
    )
    mean = data.mean.astype(np.float32)

    def tensor(images):
        x = (images.astype(np.float32) - mean) / 255.0
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    order, position, wrong, seen = rng.permutation(data.train.num_examples), 0, 0, 0
    for step in range(1, steps + 1):
        if position + batch_size > len(order):
            order, position = rng.permutation(data.train.num_examples), 0
        index = order[position : position + batch_size]
        position += batch_size
        model.train()
        logits = model(tensor(augment(data.train.images[index], rng)))
        labels = torch.from_numpy(data.train.labels[index].astype(np.int64))
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        wrong += int((logits.argmax(1) != labels).sum())
        seen += batch_size
        if step % steps_per_epoch == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                test_wrong = sum(
                    int(
                        (
                            model(tensor(data.test.images[i : i + 1000])).argmax(1)
                            != torch.from_numpy(data.test.labels[i : i + 1000].astype(np.int64))
                        ).sum()
                    )
                    for i in range(0, data.test.num_examples, 1000)
                )
            yield step, wrong / seen, test_wrong / data.test.num_examples
            wrong = seen = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", required=True, help="local CIFAR-10 (class folders or batches)"
    )
    parser.add_argument("--depths", nargs="+", type=int, default=[20, 56])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--steps-per-epoch", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args()

    from keras_resnet import data as data_lib

    data = data_lib.load_data("cifar10", data_dir=args.data_dir)
    rows = [
        "| net | step | training error | test error | seconds so far |",
        "|---|---:|---:|---:|---:|",
    ]
    for depth in args.depths:
        start = time.perf_counter()
        for step, train_error, test_error in train(
            depth, data, args.steps, args.steps_per_epoch, args.batch_size, args.seed
        ):
            rows.append(
                f"| ResNet-{depth} (PyTorch) | {step} | {100 * train_error:.2f}% | "
                f"{100 * test_error:.2f}% | {time.perf_counter() - start:.0f} |"
            )
            print(rows[-1], flush=True)
    common.report(
        "PyTorch reference of the degradation experiment's residual nets",
        f"python benchmarks/pytorch_reference.py --data-dir {args.data_dir} --depths "
        f"{' '.join(map(str, args.depths))} --steps {args.steps} --steps-per-epoch "
        f"{args.steps_per_epoch} --batch-size {args.batch_size} --seed {args.seed}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
