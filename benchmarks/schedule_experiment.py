"""A student's workflow at this machine's scale: range test, step vs one cycle, genetic search.

ResNet-20 on the real CIFAR-10 (the paper's 45k/5k split: nothing is chosen on
the test images), every step a command of this package run in a subprocess:

1. `lr_find`, the learning-rate range test (300 steps);
2. `train` with the paper's step schedule (rate 0.1, divided by 10 at 50% and
   75% of the length), `--epochs` epochs;
3. `train` with one cycle peaking at the range test's suggestion (three
   significant digits, as the range test prints it), the same epochs, and
   again at a tenth of it (fast.ai's finder's rule, which this package used
   before: the evidence for the rule);
4. `tune`: a short genetic search (population 4, 2 generations, `--search-epochs`
   epochs a trial) with its baseline at the recipe's defaults.

Each step resumes or is skipped when its work directory holds it (a stopped
experiment continues where it was). Then the small results (config, history,
summary of each run; the range test's CSV/JSON; the search's results.md) are
copied into benchmarks/schedule_experiment/, the curves are drawn into docs/,
and the table is written to benchmarks/schedule_experiment/results.md.

    python benchmarks/schedule_experiment.py --data-dir .data [--work-dir .data/experiments]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import common

sys.path.insert(0, common.REPO)

from keras_resnet import files, plotting  # noqa: E402

RESULTS = os.path.join(common.REPO, "benchmarks", "schedule_experiment")
FIGURE = os.path.join(common.REPO, "docs", "schedules_cifar10_resnet20.png")
SEARCH_FIGURE = os.path.join(common.REPO, "docs", "genetic_search_cifar10_resnet20.png")
RUN_FILES = ("config.json", "history.csv", "summary.json")


def command(name, *flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [sys.executable, "-m", "keras_resnet_cli", name, *map(str, flags)]
    print("$", " ".join(argv[1:]), flush=True)
    subprocess.run(argv, cwd=common.REPO, env=env, check=True)


def run_experiment(args):
    data = ("--dataset", "cifar10", "--data-dir", args.data_dir, "--depth", 20)
    split = ("--validation-split", 5000, "--seed", 0)
    work = args.work_dir
    lr_find_dir = os.path.join(work, "lr_find")
    if not os.path.exists(os.path.join(lr_find_dir, "lr_find.json")):
        command("lr_find", *data, "--steps", 300, "--output-dir", lr_find_dir)
    length = ("--epochs", args.epochs)
    command("train", *data, *split, *length, "--output-dir", os.path.join(work, "resnet20-step"))
    for peak in one_cycle_peaks(work):
        command(
            "train",
            *data,
            *split,
            *length,
            *("--schedule", "onecycle", "--lr", peak),
            *("--output-dir", os.path.join(work, one_cycle_run(peak))),
        )
    command(
        "tune",
        *data,
        *split,
        *("--epochs", args.search_epochs, "--oracle", "genetic"),
        *("--population", 4, "--generations", 2),
        *("--output-dir", os.path.join(work, "resnet20-genetic")),
    )


def one_cycle_peaks(work):
    """The range test's suggestion and a tenth of it, to three significant digits."""
    with open(os.path.join(work, "lr_find", "lr_find.json")) as f:
        suggested = json.load(f)["suggested_lr"]
    return [float(f"{suggested:.3g}"), float(f"{suggested / 10:.3g}")]


def one_cycle_run(peak):
    return f"resnet20-onecycle-lr{peak:g}"


def collect(work):
    """Copies the small results of every run into RESULTS; returns {name: copied folder}."""
    search = os.path.join(work, "resnet20-genetic")
    suggested, tenth = one_cycle_peaks(work)
    runs = {
        "step": ("resnet20-step", "resnet20-step"),
        "one cycle": (one_cycle_run(suggested), one_cycle_run(suggested)),
        "one cycle, a tenth": (one_cycle_run(tenth), one_cycle_run(tenth)),
        "search baseline": ("resnet20-genetic/baseline", "resnet20-genetic/baseline"),
    }
    for trial in sorted(os.listdir(os.path.join(search, "search"))):
        if trial.startswith("trial_"):
            source = os.path.join("resnet20-genetic", "search", trial, "run")
            runs[f"search {trial}"] = (source, f"resnet20-genetic/{trial}")
    copied = {}
    for name, (source, target) in runs.items():
        target = os.path.join(RESULTS, target)
        os.makedirs(target, exist_ok=True)
        for file_name in RUN_FILES:
            shutil.copy(os.path.join(work, source, file_name), target)
        copied[name] = target
    os.makedirs(os.path.join(RESULTS, "lr_find"), exist_ok=True)
    for file_name in ("lr_find.csv", "lr_find.json"):
        shutil.copy(os.path.join(work, "lr_find", file_name), os.path.join(RESULTS, "lr_find"))
    for file_name in ("results.md", "best_hyperparameters.json"):
        shutil.copy(os.path.join(search, file_name), os.path.join(RESULTS, "resnet20-genetic"))
    shutil.copy(os.path.join(search, "comparison.png"), SEARCH_FIGURE)
    return copied


def read_run(folder):
    """A copied run's (config, history rows, summary)."""
    history = [
        {k: None if v == "" else int(v) if k == "epoch" else float(v) for k, v in row.items()}
        for row in files.read_csv(os.path.join(folder, "history.csv"))
    ]
    config, summary = (
        files.read_json(os.path.join(folder, name)) for name in ("config.json", "summary.json")
    )
    return config, history, summary


def test_images(data_dir):
    """How the table names the test images of `data_dir`: figures on the JPEG copy are labelled."""
    from keras_resnet import data as data_lib

    source = data_lib.load_test_data("cifar10", data_dir).source
    if source.startswith("cifar batches"):
        return "original test batch"
    if any(glob.iglob(os.path.join(data_dir, "**", "*.jpg"), recursive=True)):
        return "JPEG copy"
    return source


def table(copied, images):
    rows = [
        "| run | schedule | rate (one cycle: peak) | momentum | weight decay | epochs "
        f"| validation error | test error ({images}) | wall time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with open(os.path.join(RESULTS, "resnet20-genetic", "best_hyperparameters.json")) as f:
        best_trial = f"search trial_{json.load(f)['trial_id']}"
    search_seconds = 0.0
    for name, folder in copied.items():
        config, history, summary = read_run(folder)
        seconds = sum(row["seconds"] for row in history)
        if name.startswith("search"):
            search_seconds += seconds
            if name not in ("search baseline", best_trial):
                continue
            name = "search: best trial" if name == best_trial else name
        rows.append(
            f"| {name} | {config['schedule']} | {config['lr']:.3g} | {config['momentum']:.3g} "
            f"| {config['weight_decay']:.2g} | {summary['epochs']} "
            f"| {100 * summary['final_val_top1_error']:.2f}% "
            f"| {100 * summary['test_top1_error']:.2f}% | {seconds / 60:.1f} min |"
        )
    trials = sum(1 for name in copied if name.startswith("search trial"))
    rows += [
        "",
        f"The search: {trials} trials and the baseline, {search_seconds / 60:.1f} min in all "
        "(wall time is the sum of the epochs, validation included; start-up and the test "
        "evaluation are not counted).",
    ]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", required=True, help="CIFAR-10: the original binary batches, or class folders"
    )
    parser.add_argument("--work-dir", default=".data/experiments", help="where the runs live")
    parser.add_argument(
        "--epochs", type=int, default=20, help="epochs of each step and one-cycle run"
    )
    parser.add_argument("--search-epochs", type=int, default=2, help="epochs of a search trial")
    args = parser.parse_args(argv)
    run_experiment(args)
    copied = collect(args.work_dir)
    curves = [
        (f"{name} ({config['schedule']}, peak {config['lr']:.3g})", history)
        for name, (config, history, _) in (
            (name, read_run(copied[name])) for name in ("step", "one cycle", "one cycle, a tenth")
        )
    ]
    plotting.plot_comparison(curves, FIGURE)
    results = os.path.join(RESULTS, "results.md")
    if os.path.exists(results):
        os.remove(results)
    images = test_images(args.data_dir)
    common.report(
        f"ResNet-20 on CIFAR-10 ({images}): step schedule, one cycle, genetic search",
        " ".join(["python benchmarks/schedule_experiment.py", *(argv or sys.argv[1:])]),
        table(copied, images),
        output=results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
