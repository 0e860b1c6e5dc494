"""Training throughput of CIFAR ResNets: train.py's own code path against PyTorch.

Our side is `python train.py --dataset synthetic --depth D` and the
`examples_per_second` it writes to summary.json (measured after warm-up, input
pipeline with augmentation running alongside). The PyTorch side is the same
architecture (v1 CIFAR ResNet, option A, BN eps 1e-5 / momentum 0.1, no conv
bias, SGD momentum 0.9 with coupled weight decay 1e-4) in eager mode with
channels_last tensors, on pre-made random batches (no input pipeline at all).
With `--mixed-precision`, train.py runs with `--mixed-precision` (bfloat16 on
the CPU) and PyTorch under `torch.autocast("cpu", dtype=torch.bfloat16)`.

Each depth runs `--rounds` times, the two sides alternating so that a slow
spell of the machine falls on both; the table gives each side's median and the
range of the per-round ratios.

    python benchmarks/train_throughput.py --depths 20 56 110 --rounds 3 \\
        --output benchmarks/results.md
    python benchmarks/train_throughput.py --mixed-precision --output benchmarks/results.md

Needs PyTorch (`pip install torch`, CPU build). Appends a Markdown section with
the machine, versions, command and numbers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import common


def ours(depth, steps, batch_size, mixed_precision=False, repo=common.REPO):
    """`examples_per_second` of `python train.py` in the checkout `repo`."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable,
            "train.py",
            "--dataset",
            "synthetic",
            "--depth",
            str(depth),
            "--steps",
            str(steps),
            "--batch-size",
            str(batch_size),
            "--output-dir",
            run_dir,
            "--log-every",
            "1000",
            "--mixed-precision" if mixed_precision else "--no-mixed-precision",
        ]
        result = subprocess.run(
            command, cwd=repo, capture_output=True, text=True, env=common.snippet_env()
        )
        if result.returncode:
            raise RuntimeError(result.stderr[-3000:])
        with open(os.path.join(run_dir, "summary.json")) as f:
            return json.load(f)["examples_per_second"]


def pytorch_resnet(depth, classes=10, plain=False):
    """The v1 CIFAR ResNet (option A) of `depth` layers in PyTorch, channels_last.

    `plain=True` gives the paper's plain counterpart: the same layers without
    the shortcuts.

    Initialised as keras_resnet's: He normal (fan-out) convolutions, Glorot
    uniform classifier with zero bias, BN weight 1 and bias 0.
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if plain:
                return torch.relu(y)
            shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
            if self.extra:  # option A: zero channels
                shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
            return torch.relu(y + shortcut)

    n = (depth - 2) // 6
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for stage, width in enumerate((16, 32, 64)):
        for index in range(n):
            layers.append(Block(cin, width, 2 if stage and not index else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model.to(memory_format=torch.channels_last)


def pytorch(depth, steps, batch_size, mixed_precision=False, warmup=10):
    """Training images/s of PyTorch eager on one pre-made batch, after `warmup` steps."""
    import torch
    from torch import nn

    model = pytorch_resnet(depth)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed_precision):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", nargs="+", type=int, default=[20, 56, 110])
    parser.add_argument("--steps", type=int, default=60, help="train.py steps (20 are warm-up)")
    parser.add_argument(
        "--torch-steps", type=int, default=30, help="timed PyTorch steps after 10 warm-up"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating runs of each side per depth"
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="bfloat16 mixed precision on both sides (train.py --mixed-precision, torch.autocast)",
    )
    parser.add_argument("--output", help="append the Markdown results here")
    args = parser.parse_args()

    rows = [
        "| network | keras_resnet (train.py) images/s, median "
        "| PyTorch eager channels_last images/s, median "
        "| ratio of medians | per-round ratios |",
        "|---|---:|---:|---:|---|",
    ]
    for depth in args.depths:
        ours_rates, torch_rates = [], []
        for _ in range(args.rounds):
            ours_rates.append(ours(depth, args.steps, args.batch_size, args.mixed_precision))
            torch_rates.append(
                pytorch(depth, args.torch_steps, args.batch_size, args.mixed_precision)
            )
            print(f"ResNet-{depth}: {ours_rates[-1]:.1f} against {torch_rates[-1]:.1f}", flush=True)
        ours_rate, torch_rate = statistics.median(ours_rates), statistics.median(torch_rates)
        ratios = ", ".join(f"{a / b:.2f}x" for a, b in zip(ours_rates, torch_rates))
        rows.append(
            f"| ResNet-{depth} | {ours_rate:.1f} | {torch_rate:.1f} "
            f"| {ours_rate / torch_rate:.2f}x | {ratios} |"
        )
        print(rows[-1], flush=True)
    command = (
        f"python benchmarks/train_throughput.py --depths {' '.join(map(str, args.depths))} "
        f"--rounds {args.rounds} --steps {args.steps} --torch-steps {args.torch_steps} "
        f"--batch-size {args.batch_size}" + (" --mixed-precision" if args.mixed_precision else "")
    )
    precision = ", bfloat16 mixed precision" if args.mixed_precision else ""
    common.report(
        f"Training throughput, batch {args.batch_size}{precision}", command, rows, args.output
    )


if __name__ == "__main__":
    main()
