import csv
import json
import math
import os
import random
import socket
import subprocess
import sys
import time

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet import tuning

from conftest import REPO


def space():
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-3, 1.0, sampling="log")
    hp.Float("momentum", 0.8, 0.99)
    hp.Choice("schedule", ["piecewise", "onecycle"])
    with hp.conditional_scope("schedule", ["onecycle"]):
        hp.Int("cycle_steps", 10, 100, step=10)
    return hp


def fitness(values):
    """A known landscape: best at learning_rate 0.1 and momentum 0.9."""
    return -abs(math.log10(values["learning_rate"]) + 1) - abs(values["momentum"] - 0.9)


class LandscapeTuner(kt.Tuner):
    """A keras-tuner Tuner whose trials score a known function (no training)."""

    def run_trial(self, trial, *args, **kwargs):
        return {"val_accuracy": fitness(trial.hyperparameters.values)}


def search(tmp_path, name="search", overwrite=True, **oracle_kwargs):
    oracle = tuning.GeneticOracle(
        objective=tuning.OBJECTIVE,
        hyperparameters=space(),
        **{"population_size": 6, "generations": 4, "seed": 3, **oracle_kwargs},
    )
    tuner = LandscapeTuner(
        oracle=oracle, directory=str(tmp_path), project_name=name, overwrite=overwrite
    )
    tuner.search(verbose=0)
    return tuner


def trial_values(tuner):
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    return [t.hyperparameters.values for t in trials]


def test_generations_keep_the_fitter_half_and_improve(tmp_path):
    tuner = search(tmp_path)
    oracle = tuner.oracle
    # Generations 0..3: six random trials, then three children in each of three generations.
    assert len(oracle.trials) == 6 + 3 * 3 and oracle.generation == 3 and len(oracle.offspring) == 3
    scores = [t.score for t in sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))]
    # Each population is the best half of the previous one plus its children.
    best_initial, best_final = max(scores[:6]), max(scores)
    assert best_final >= best_initial
    assert np.mean(sorted(scores[-3:])) > np.mean(scores[:6])  # children beat random draws
    # Generation 2's population: generation 1's best three and its three children.
    assert len(oracle.population) == 6
    previous = [t for t in oracle.trials if t not in oracle.population + oracle.offspring]
    worst_kept = min(oracle.trials[t].score for t in oracle.population[:3])
    assert all(oracle.trials[t].score <= worst_kept for t in previous if t not in oracle.population)


def test_crossover_is_single_point():
    oracle = tuning.GeneticOracle(objective=tuning.OBJECTIVE, hyperparameters=space(), seed=0)
    first = {"learning_rate": 0.01, "momentum": 0.81, "schedule": "onecycle", "cycle_steps": 20}
    second = {"learning_rate": 0.5, "momentum": 0.95, "schedule": "piecewise", "cycle_steps": 90}
    names = ["learning_rate", "momentum", "schedule", "cycle_steps"]
    for seed in range(20):
        child = oracle.crossover(first, second, random.Random(seed))
        sources = [0 if child[n] == first[n] else 1 for n in names]
        assert sources == sorted(sources) and 0 < sum(sources) < 4  # one cut, both parents used


def test_mutation_respects_ranges_steps_sampling_and_conditions():
    oracle = tuning.GeneticOracle(
        objective=tuning.OBJECTIVE,
        hyperparameters=space(),
        seed=0,
        mutation_rate=1.0,
        mutation_scale=0.5,
    )
    parent = {"learning_rate": 0.9, "momentum": 0.98, "schedule": "piecewise"}
    rates = []
    for seed in range(300):
        child = oracle.mutate(parent, random.Random(seed))
        assert 1e-3 <= child["learning_rate"] <= 1.0 and 0.8 <= child["momentum"] <= 0.99
        if child["schedule"] == "onecycle":
            assert child["cycle_steps"] in range(10, 101, 10)  # newly active: drawn in range
        else:
            assert "cycle_steps" not in child  # inactive values are dropped
        rates.append(child["learning_rate"])
    # Log sampling: mutation steps are even in log space, so small rates appear often.
    assert np.mean(np.array(rates) < 0.1) > 0.2


def test_seeded_searches_repeat_and_seeds_differ(tmp_path):
    first = trial_values(search(tmp_path, "a"))
    again = trial_values(search(tmp_path, "b"))
    other = trial_values(search(tmp_path, "c", seed=4))
    assert first == again and first != other


def test_resume_continues_the_same_search(tmp_path):
    uninterrupted = trial_values(search(tmp_path, "whole"))
    search(tmp_path, "resumed", max_trials=7)  # stops part-way through generation 1
    resumed = search(tmp_path, "resumed", overwrite=False)
    assert trial_values(resumed) == uninterrupted


def test_works_with_keras_tuners_own_fit_based_tuner(tmp_path):
    x = np.random.RandomState(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def build(hp):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(
            keras.optimizers.SGD(hp.Float("learning_rate", 1e-3, 1.0, sampling="log")),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    oracle = tuning.GeneticOracle(
        objective="val_accuracy", population_size=2, generations=2, seed=0
    )
    tuner = kt.Tuner(oracle=oracle, hypermodel=build, directory=str(tmp_path), project_name="fit")
    tuner.search(x, y, validation_split=0.25, epochs=1, verbose=0)
    assert len(oracle.trials) == 3 and tuner.get_best_models(1)[0] is not None


def test_every_trial_starts_from_the_same_initial_weights(tmp_path, monkeypatch):
    import keras_resnet
    from keras_resnet import config as config_lib
    from keras_resnet import data, training

    kernels = []

    def first_kernel(plan, strategy, **kwargs):  # stands in for a training run
        model = keras_resnet.ResNet(8, stem="cifar", input_shape=(8, 8, 1))
        kernels.append(model.get_layer("conv1_conv").kernel.numpy())
        keras.random.uniform((3,))  # trials consume random numbers, as training does
        return training.TrainedRun({"final_val_top1_error": 0.5}, plan.run_dir)

    monkeypatch.setattr(training, "train", first_kernel)
    hp = tuning.search_space(["learning_rate"])
    oracle = tuning.make_oracle("random", hp, max_trials=3, seed=0)
    config = config_lib.TrainConfig(dataset="digits", seed=11)
    tuner = tuning.ResNetTuner(
        oracle,
        config,
        data.load_data("digits"),
        tf.distribute.get_strategy(),
        directory=str(tmp_path),
        project_name="seeds",
    )
    tuner.search()
    assert len(kernels) == 3
    assert all(np.array_equal(kernel, kernels[0]) for kernel in kernels[1:])


def test_search_space_narrowing_and_errors():
    hp = tuning.search_space(["learning_rate", "depth"], lr_range=(0.01, 0.2), depths=(8, 14))
    assert [p.name for p in hp.space] == ["learning_rate", "depth"]
    assert hp.space[0].min_value == 0.01 and hp.space[1].values == [8, 14]
    with pytest.raises(ValueError, match="Cannot search \\['dropout'\\]"):
        tuning.search_space(["dropout"])
    with pytest.raises(ValueError, match="lr_range must be 0 < low < high"):
        tuning.search_space(lr_range=(0.5, 0.1))
    with pytest.raises(ValueError, match="population_size must be at least 2"):
        tuning.GeneticOracle(objective=tuning.OBJECTIVE, population_size=1)


def _small_search(run_main, out):
    """Two random trials and the baseline of a ResNet-8 on digits, 2 epochs each."""
    result = run_main(
        "tune",
        *("--dataset", "digits", "--depth", "8", "--batch-size", "64", "--epochs", "2"),
        *("--oracle", "random", "--max-trials", "2", "--lr-range", "0.01", "0.05"),
        *("--output-dir", out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_search_reports_its_gain_over_the_baseline(tmp_path, run_main):
    """Two random trials and the baseline on digits: results.md, comparison.png, top-3."""
    out = tmp_path / "tuning"
    result = _small_search(run_main, out)
    assert result.stdout.index("Baseline: validation accuracy") < result.stdout.index("Trial 1")
    for n in (1, 2):
        assert f"Trial {n} of 2 (trial_{n - 1}): learning_rate " in result.stdout
    assert result.stdout.count("; best so far ") == 2
    baseline = json.loads((out / "baseline" / "summary.json").read_text())
    config = json.loads((out / "baseline" / "config.json").read_text())
    assert (config["lr"], config["momentum"], config["weight_decay"]) == (0.1, 0.9, 1e-4)
    lines = (out / "results.md").read_text().splitlines()
    trial_rows = [line for line in lines if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(trial_rows) == 2
    baseline_row = next(line for line in lines if "| baseline |" in line)
    cells = [cell.strip() for cell in baseline_row.split("|")[1:-1]]
    assert float(cells[2]) == pytest.approx(1 - baseline["final_val_top1_error"], abs=1e-4)
    assert cells[3:] == ["0.1", "0.9", "0.0001"]  # learning_rate, momentum, weight_decay
    best = json.loads((out / "best_hyperparameters.json").read_text())
    best_summary = json.loads(
        (out / "search" / f"trial_{best['trial_id']}" / "run" / "summary.json").read_text()
    )
    gain = next(line for line in lines if line.startswith("Best trial"))
    val_points = 100 * (best["val_accuracy"] - 1 + baseline["final_val_top1_error"])
    test_points = 100 * (baseline["test_top1_error"] - best_summary["test_top1_error"])
    for points in (val_points, test_points):
        assert f"{abs(points):.2f} points {'better' if points >= 0 else 'worse'}" in gain
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "baseline" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(
        0
        <= float(row["val_top1_error"])
        >= float(row["val_top3_error"])
        >= float(row["val_top5_error"])
        for row in rows
    )
    # Run again: everything finished, so nothing trains and the report is the same.
    again = run_main("tune", *result.args)
    assert again.returncode == 0 and (out / "results.md").read_text().splitlines() == lines


def test_an_overwrite_puts_back_what_it_set_aside_unless_it_finishes(tmp_path, capsys):
    from keras_resnet.cli import tune as tune_cli

    def search(folder, content):
        (folder / "search").mkdir(parents=True)
        (folder / "search" / "oracle.json").write_text(content)
        (folder / "results.md").write_text(content)

    def held(folder):
        return [(folder / name).read_text() for name in ("search/oracle.json", "results.md")]

    # A bad flag (any error while setting up) puts the earlier search back over the new one.
    search(tmp_path, "earlier")
    with pytest.raises(ValueError, match="bad flag"):
        with tune_cli._earlier_search_set_aside(str(tmp_path), overwrite=True):
            assert sorted(os.listdir(tmp_path)) == [f".overwritten-{os.getpid()}"]
            (tmp_path / "search").mkdir()
            raise ValueError("bad flag")
    assert held(tmp_path) == ["earlier", "earlier"]
    assert sorted(os.listdir(tmp_path)) == ["results.md", "search"]
    with tune_cli._earlier_search_set_aside(str(tmp_path), overwrite=True):
        search(tmp_path, "new")
    assert held(tmp_path) == ["new", "new"]
    assert sorted(os.listdir(tmp_path)) == ["results.md", "search"]

    # Two --overwrites killed while setting up: the oldest set-aside search comes back; what
    # one was deleting goes; a running process's folder is left to it.
    dead = []
    for _ in range(2):
        process = subprocess.Popen(["true"])
        process.wait()
        dead.append(process.pid)
    search(tmp_path / f".overwritten-{dead[0]}", "before both")
    os.utime(tmp_path / f".overwritten-{dead[0]}", (1, 1))
    search(tmp_path / f".overwritten-{dead[1]}", "begun by the first")
    (tmp_path / f".deleting-overwritten-{dead[0]}").mkdir()
    (tmp_path / f".overwritten-{os.getpid()}").mkdir()
    tune_cli._put_back_an_interrupted_overwrite(str(tmp_path))
    assert held(tmp_path) == ["before both", "before both"]
    assert sorted(os.listdir(tmp_path)) == [f".overwritten-{os.getpid()}", "results.md", "search"]
    put_back = [line for line in capsys.readouterr().out.splitlines() if "Put back" in line]
    assert [line.split("(process ")[1] for line in put_back] == [
        f"{dead[1]}) had set aside.",
        f"{dead[0]}) had set aside.",
    ]


@pytest.mark.slow
def test_overwrite_loses_nothing_it_should_keep(tmp_path, run_main):
    """A killed --overwrite is put back, a refused one deletes nothing, a good one starts afresh."""
    out = tmp_path / "tuning"
    result = _small_search(run_main, out)
    lines = (out / "results.md").read_text().splitlines()
    # An --overwrite killed while setting up (its process gone) left the earlier search set
    # aside and a new one begun: the next command puts the earlier one back and goes on.
    gone = subprocess.Popen(["true"])
    gone.wait()
    searched = sorted(os.listdir(out / "search"))
    aside = out / f".overwritten-{gone.pid}"
    aside.mkdir()
    for name in ("search", "baseline", "results.md"):
        (out / name).rename(aside / name)
    (out / "search").mkdir()
    (out / "search" / "oracle.json").write_text("{}")
    again = run_main("tune", *result.args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Put back the earlier search in {out}" in again.stdout
    assert sorted(os.listdir(out / "search")) == searched and not aside.exists()
    assert (out / "results.md").read_text().splitlines() == lines

    # --overwrite with a bad flag loses nothing: it is refused before the earlier search goes.
    trials = sorted(os.listdir(out / "search"))
    missing = tmp_path / "missing.weights.h5"
    bad = run_main("tune", *result.args, "--overwrite", "--weights", missing)
    assert bad.returncode == 1 and "missing.weights.h5" in bad.stderr, bad.stderr[-3000:]
    assert sorted(os.listdir(out / "search")) == trials
    assert (out / "results.md").read_text().splitlines() == lines
    assert not [name for name in os.listdir(out) if name.startswith(".")]
    # Without --overwrite, a baseline of another configuration is refused before any trial.
    changed = run_main("tune", *result.args, "--batch-size", "32")
    assert changed.returncode == 1 and "batch_size: 64 -> 32" in changed.stderr
    assert "Or start the search afresh with --overwrite." in changed.stderr
    # ... and a finished baseline of another recipe too, rather than reported as this one's.
    other_lr = run_main("tune", *result.args, "--lr", "0.05")
    assert other_lr.returncode == 1 and "finished run of another recipe (lr: " in other_lr.stderr
    assert "Trial" not in changed.stdout + other_lr.stdout
    # --overwrite with good flags starts afresh: the earlier trials and baseline are gone.
    fresh = run_main("tune", *result.args, "--overwrite", "--max-trials", "1", "--epochs", "1")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert [n for n in os.listdir(out / "search") if n.startswith("trial_")] == ["trial_0"]
    assert len((out / "baseline" / "history.csv").read_text().splitlines()) == 2
    assert not [name for name in os.listdir(out) if name.startswith(".")]
    rows = (out / "results.md").read_text().splitlines()
    assert [line for line in rows if line.startswith("| 1 |")] and not [
        line for line in rows if line.startswith("| 2 |")
    ]


@pytest.mark.slow
def test_tune_command_on_real_cifar10(cifar_dir, tmp_path):
    out = tmp_path / "tuning"
    result = subprocess.run(
        [
            sys.executable,
            "tune.py",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(cifar_dir),
            "--depth",
            "8",
            "--batch-size",
            "50",
            "--epochs",
            "1",
            "--oracle",
            "genetic",
            "--population",
            "2",
            "--generations",
            "3",
            "--output-dir",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert {"learning_rate", "momentum", "weight_decay", "val_accuracy"} <= set(best)
    rows = [r for r in (out / "results.md").read_text().splitlines()[2:] if r.startswith("| ")]
    assert len(rows) == 5 and "| baseline |" in rows.pop()  # four trials, best first
    scores = [float(r.split("|")[3]) for r in rows]
    assert scores == sorted(scores, reverse=True) and best["val_accuracy"] == pytest.approx(
        scores[0], abs=1e-4
    )
    # Each trial is a train.py run directory with its own config and HParams record.
    trial = out / "search" / f"trial_{best['trial_id']}" / "run"
    config = json.loads((trial / "config.json").read_text())
    assert (
        config["lr"] == pytest.approx(best["learning_rate"])
        and config["data"]["num_validation"] == 50  # 10% of the fixture's 500 training images
    )
    plugins = {
        value.metadata.plugin_data.plugin_name
        for path in (trial / "logs").glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }
    assert "hparams" in plugins and not (trial / "logs" / "hparams").exists()


DISTRIBUTED_TUNER = r"""
import math, os, sys, time
import keras_tuner as kt
from keras_resnet import tuning

def started(tuner_id):
    return os.path.join(sys.argv[1], "started_" + tuner_id)

class LandscapeTuner(kt.Tuner):
    def run_trial(self, trial, *args, **kwargs):
        # The chief exits once no registered worker has work left, and a worker
        # registers with its first request: wait until both workers have started,
        # or a slow starter would find the chief gone.
        deadline = time.time() + 120
        while time.time() < deadline and not all(
            os.path.exists(started(t)) for t in ("tuner0", "tuner1")
        ):
            time.sleep(0.1)
        values = trial.hyperparameters.values
        with open(os.path.join(sys.argv[1], "ran_by.txt"), "a") as f:
            f.write(os.environ["KERASTUNER_TUNER_ID"] + "\n")
        time.sleep(0.3)
        return {"val_accuracy": -abs(math.log10(values["learning_rate"]) + 1)}

oracle = tuning.GeneticOracle(objective=tuning.OBJECTIVE, population_size=4, generations=3, seed=1,
                              hyperparameters=tuning.search_space(["learning_rate", "momentum"]))
tuner = LandscapeTuner(oracle=oracle, directory=sys.argv[1], project_name="dist")
open(started(os.environ["KERASTUNER_TUNER_ID"]), "w").close()
tuner.search(verbose=0)
"""


@pytest.mark.slow
def test_distributed_tuning_with_a_chief_and_two_workers(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO),
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(port),
    }
    command = [sys.executable, "-c", DISTRIBUTED_TUNER, str(tmp_path)]
    chief = subprocess.Popen(
        command,
        env={**env, "KERASTUNER_TUNER_ID": "chief"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(5)  # the chief's oracle server starts first
    workers = [
        subprocess.Popen(
            command,
            env={**env, "KERASTUNER_TUNER_ID": f"tuner{i}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for process in workers + [chief]:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    state = json.loads((tmp_path / "dist" / "oracle.json").read_text())
    trials = [
        json.loads((tmp_path / "dist" / d / "trial.json").read_text())
        for d in os.listdir(tmp_path / "dist")
        if d.startswith("trial_")
    ]
    assert len(trials) == 4 + 2 + 2 and {t["status"] for t in trials} == {"COMPLETED"}
    ran_by = (tmp_path / "ran_by.txt").read_text().split()
    assert len(ran_by) == 8 and set(ran_by) == {"tuner0", "tuner1"}  # the chief only serves
    assert (
        state["generation"] == 2 and len(state["population"]) == 4 and len(state["offspring"]) == 2
    )


@pytest.mark.slow
def test_distributed_tune_command_trains_the_baseline_on_the_chief(tmp_path):
    """tune.py as keras-tuner's distributed search runs it: the chief serves the oracle,
    a worker runs every trial, then the chief trains the baseline and writes the report."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "tuning"
    flags = ["--dataset", "digits", "--depth", "8", "--batch-size", "64", "--epochs", "1"]
    flags += ["--oracle", "random", "--max-trials", "2", "--output-dir", str(out)]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(port),
    }

    def start(tuner_id):
        return subprocess.Popen(
            [sys.executable, "-m", "keras_resnet_cli", "tune", *flags],
            cwd=REPO,
            env={**env, "KERASTUNER_TUNER_ID": tuner_id},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    chief = start("chief")
    time.sleep(5)  # the chief's oracle server starts first
    worker = start("tuner0")
    worker_out, worker_err = worker.communicate(timeout=600)
    chief_out, chief_err = chief.communicate(timeout=600)
    assert worker.returncode == 0, worker_err[-3000:]
    assert chief.returncode == 0, chief_err[-3000:]
    # The worker ran the trials and wrote no report; the chief trained only the baseline.
    assert "Trial 1 of 2" in worker_out and "Baseline" not in worker_out
    assert "Trial 1 of 2" not in chief_out and "Baseline: validation accuracy" in chief_out
    trials = sorted(p.name for p in (out / "search").iterdir() if p.name.startswith("trial_"))
    assert len(trials) == 2
    for trial in trials:
        assert (out / "search" / trial / "run" / "summary.json").is_file()
    baseline = json.loads((out / "baseline" / "config.json").read_text())
    assert (baseline["lr"], baseline["momentum"], baseline["weight_decay"]) == (0.1, 0.9, 1e-4)
    lines = (out / "results.md").read_text().splitlines()
    assert sum(line.startswith(("| 1 |", "| 2 |")) for line in lines) == 2
    assert any("| baseline |" in line for line in lines)
    assert any(line.startswith("Best trial") for line in lines)
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
