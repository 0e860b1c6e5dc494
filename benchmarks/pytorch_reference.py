"""The degradation experiment's nets trained in PyTorch, as a reference.

Trains the CIFAR ResNets of train_throughput.py (or, with `--plain`, their
plain counterparts) in PyTorch with the recipe `python -m keras_resnet.analysis
degradation` gives train.py: SGD momentum 0.9, weight decay 1e-4 on every
parameter, batch 128, lr 0.1 divided by 10 at 50% and 75% of
`--schedule-steps` (default `--steps`); zero-pad 4 + random 32x32 crop + flip
of the raw pixels, then the per-pixel mean subtracted and /255. Same images
(keras_resnet's loader of the real CIFAR-10, all 50,000 training images), same
initialisation. Every `--steps-per-epoch` steps it reports the mean training
error and the mean loss of those steps, the loss counted as Keras counts it
(cross-entropy plus the decay term 0.5 * 1e-4 * sum(w**2)), the parameters'
sum of squares, and the test error: history.csv's columns, so that the two can
be read side by side: whether a deeper net's slow start is the recipe's or
this package's.

    python benchmarks/pytorch_reference.py --data-dir .data --depths 20 56 --steps 800 \\
        --steps-per-epoch 160 --output benchmarks/results.md
    # the first two epochs of the 20-epoch plain-56 run in docs/paper_evidence_20_epochs
    python benchmarks/pytorch_reference.py --data-dir .data --depths 56 --plain \\
        --schedule-steps 7020 --steps 702 --steps-per-epoch 351
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


WEIGHT_DECAY = 1e-4


def train(depth, data, steps, steps_per_epoch, batch_size, seed, plain=False, schedule_steps=None):
    """Every `steps_per_epoch` steps, yields the step and a dict of that epoch's figures.

    The dict holds the mean training error and loss (decay term included) of
    those steps, the parameters' sum of squares after them, and the test error.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = train_throughput.pytorch_resnet(depth, plain=plain)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=WEIGHT_DECAY)
    schedule_steps = schedule_steps or steps
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, [round(0.5 * schedule_steps), round(0.75 * schedule_steps)]
    )

    def sum_of_squares():
        with torch.no_grad():
            return float(sum((p.double() ** 2).sum() for p in model.parameters()))

    mean = data.mean.astype(np.float32)

    def tensor(images):
        x = (images.astype(np.float32) - mean) / 255.0
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    order, position = rng.permutation(data.train.num_examples), 0
    wrong = seen = loss_sum = 0
    for step in range(1, steps + 1):
        if position + batch_size > len(order):
            order, position = rng.permutation(data.train.num_examples), 0
        index = order[position : position + batch_size]
        position += batch_size
        model.train()
        squares_before = sum_of_squares()
        logits = model(tensor(augment(data.train.images[index], rng)))
        labels = torch.from_numpy(data.train.labels[index].astype(np.int64))
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        # Keras's logged loss adds the decay term of the weights the step started from.
        loss_sum += loss.item() + 0.5 * WEIGHT_DECAY * squares_before
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
            yield (
                step,
                {
                    "training error": wrong / seen,
                    "loss": loss_sum * batch_size / seen,
                    "sum of squares": sum_of_squares(),
                    "test error": test_wrong / data.test.num_examples,
                },
            )
            wrong = seen = loss_sum = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", required=True, help="local CIFAR-10 (class folders or batches)"
    )
    parser.add_argument("--depths", nargs="+", type=int, default=[20, 56])
    parser.add_argument("--steps", type=int, default=800, help="steps to train")
    parser.add_argument(
        "--schedule-steps",
        type=int,
        help="length the step schedule is scaled to (default --steps); a larger value "
        "trains the first --steps of a longer run",
    )
    parser.add_argument("--plain", action="store_true", help="train the plain nets (no shortcuts)")
    parser.add_argument("--steps-per-epoch", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args()

    if args.schedule_steps is not None and args.schedule_steps < args.steps:
        parser.error(
            f"--schedule-steps must be at least --steps ({args.steps}), got {args.schedule_steps}"
        )

    from keras_resnet import data as data_lib

    data = data_lib.load_data("cifar10", data_dir=args.data_dir)
    rows = [
        "| net | step | training error | loss (decay included) | sum of squares | test error "
        "| seconds so far |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    name = "plain" if args.plain else "ResNet"
    for depth in args.depths:
        start = time.perf_counter()
        for step, figures in train(
            depth,
            data,
            args.steps,
            args.steps_per_epoch,
            args.batch_size,
            args.seed,
            plain=args.plain,
            schedule_steps=args.schedule_steps,
        ):
            rows.append(
                f"| {name}-{depth} (PyTorch) | {step} | {100 * figures['training error']:.2f}% "
                f"| {figures['loss']:.3f} | {figures['sum of squares']:.0f} "
                f"| {100 * figures['test error']:.2f}% | {time.perf_counter() - start:.0f} |"
            )
            print(rows[-1], flush=True)
    command = (
        f"python benchmarks/pytorch_reference.py --data-dir {args.data_dir} --depths "
        f"{' '.join(map(str, args.depths))}{' --plain' if args.plain else ''} --steps "
        f"{args.steps}"
        + (f" --schedule-steps {args.schedule_steps}" if args.schedule_steps else "")
        + f" --steps-per-epoch {args.steps_per_epoch} --batch-size {args.batch_size} "
        f"--seed {args.seed}"
    )
    common.report(
        "PyTorch reference of the degradation experiment's "
        f"{'plain' if args.plain else 'residual'} nets",
        command,
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
