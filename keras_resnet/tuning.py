"""Hyperparameter search with keras-tuner over the paper's recipe.

- `GeneticOracle`: a keras-tuner `Oracle` running a genetic algorithm, as one
  published study of ResNet-50 on CIFAR-10 did: a random initial population,
  then each generation keeps the fitter half and replaces the rest with
  children of single-point crossover and mutation; fitness is the objective
  (validation accuracy). It works with keras-tuner's `Tuner` classes, their
  resume (`overwrite=False`) and distributed tuning, because it only decides
  values in `populate_space` and keeps its state through `get_state`.
- `search_space`: the `HyperParameters` searched (learning rate, momentum,
  weight decay; optionally schedule, depth, shortcut), narrowed by arguments.
- `ResNetTuner`: a `keras_tuner.Tuner` whose trials run `training.train`, the
  code path of train.py, each in its trial directory.
"""

import dataclasses
import os
import random
import time

import keras
import keras_tuner as kt
import numpy as np

from keras_resnet import config as config_lib
from keras_resnet import callbacks, files, planning, plotting, training
from keras_resnet.rundir import RunDir, RunDirError
from keras_resnet.analysis import reports

ORACLES = ("random", "bayesian", "hyperband", "genetic")
OBJECTIVE = kt.Objective("val_accuracy", direction="max")
FINISHED = (
    kt.engine.trial.TrialStatus.COMPLETED,
    kt.engine.trial.TrialStatus.FAILED,
    kt.engine.trial.TrialStatus.INVALID,
    kt.engine.trial.TrialStatus.STOPPED,
)


class GeneticOracle(kt.Oracle):
    """Genetic-algorithm search: selection, single-point crossover, mutation.

    Generation 0 is `population_size` random trials. Each later generation
    keeps the best `population_size // 2` members (not retrained) and adds
    children until the population is full again: each child takes two
    parents from the kept half, joins their values at a random cut of the
    ordered hyperparameter list, then moves each value with probability
    `mutation_rate` by a normal step of `mutation_scale` in the
    hyperparameter's probability space (which respects its range, step and
    log sampling). Conditional hyperparameters that become active are drawn
    at random. The search ends after `generations` generations.

    Args:
        objective: what to maximise or minimise (e.g. `"val_accuracy"`).
        population_size: int, members of each generation (10 in the study).
        generations: int, generations in all, the random one included (5).
        mutation_rate: float, probability that a child's value mutates.
        mutation_scale: float, standard deviation of a mutation step in
            probability space ([0, 1] across the range).
        seed: int, makes the search repeat exactly.
        **kwargs: other `keras_tuner.Oracle` arguments (`hyperparameters`, ...).
    """

    def __init__(
        self,
        objective=None,
        population_size=10,
        generations=5,
        mutation_rate=0.2,
        mutation_scale=0.1,
        seed=None,
        **kwargs,
    ):
        if population_size < 2:
            raise ValueError(f"population_size must be at least 2, received {population_size}.")
        if generations < 1:
            raise ValueError(f"generations must be at least 1, received {generations}.")
        if not 0 <= mutation_rate <= 1:
            raise ValueError(f"mutation_rate must be in [0, 1], received {mutation_rate}.")
        self.population_size = population_size
        self.generations = generations
        self.mutation_rate = mutation_rate
        self.mutation_scale = mutation_scale
        self.elite_size = population_size // 2
        kwargs.setdefault(
            "max_trials", population_size + (generations - 1) * (population_size - self.elite_size)
        )
        super().__init__(objective=objective, seed=seed, **kwargs)
        self.generation = 0
        self.population = []  # trial ids of the current population
        self.offspring = []  # trial ids of children made for the next generation

    # -- the algorithm ------------------------------------------------------

    def populate_space(self, trial_id):
        while True:
            if self.generation == 0 and len(self.population) < self.population_size:
                values = self._random_values()
                group = self.population
            elif (
                self.generation == 0
                or len(self.offspring) >= self.population_size - self.elite_size
            ):
                if self._pending(self.population + self.offspring):
                    return {"status": kt.engine.trial.TrialStatus.IDLE, "values": None}
                self._next_generation()
                if self.generation >= self.generations:
                    return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
                continue
            else:
                values = self._child(len(self.trials))
                group = self.offspring
            if values is None:
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            group.append(trial_id)
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}

    def _pending(self, trial_ids):
        return any(t not in self.trials or self.trials[t].status not in FINISHED for t in trial_ids)

    def _next_generation(self):
        """The fitter half of population and offspring becomes the new population's core."""
        if self.generation > 0:
            self.population = self.ranked(self.population)[: self.elite_size] + self.offspring
        self.offspring = []
        self.generation += 1

    def ranked(self, trial_ids):
        """Trial ids best first; failed trials (no score) last."""

        def key(trial_id):
            score = self.trials[trial_id].score
            if score is None:
                return (1, 0.0)
            return (0, -score if self.objective.direction == "max" else score)

        return sorted(trial_ids, key=key)

    def _child(self, index):
        rng = random.Random(f"{self.seed}-{index}")
        elite = self.ranked(self.population)[: self.elite_size]
        for _ in range(self._max_collisions):
            parents = rng.sample(elite, 2) if len(elite) > 1 else elite * 2
            first, second = (self.trials[t].hyperparameters.values for t in parents)
            values = self.crossover(first, second, rng)
            values = self.mutate(values, rng)
            if not self._duplicate(values):
                return values
        return self._random_values()

    def crossover(self, first, second, rng):
        """Single-point crossover over the ordered search space."""
        names = [hp.name for hp in self.hyperparameters.space]
        cut = rng.randint(1, max(1, len(names) - 1)) if len(names) > 1 else 1
        return {name: (first if i < cut else second).get(name) for i, name in enumerate(names)}

    def mutate(self, values, rng):
        """Gaussian steps in probability space; fills newly active conditional values."""
        hps = kt.HyperParameters()
        result = {}
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            value = values.get(hp.name)
            if value is None:
                value = hp.random_sample(rng.randrange(2**31))
            elif (
                not isinstance(hp, kt.engine.hyperparameters.Fixed)
                and rng.random() < self.mutation_rate
            ):
                prob = hp.value_to_prob(value) + rng.gauss(0.0, self.mutation_scale)
                value = hp.prob_to_value(float(np.clip(prob, 0.0, 1.0 - 1e-9)))
            hps.values[hp.name] = value
            result[hp.name] = value
        return result

    # -- state, for resume ---------------------------------------------------

    def get_state(self):
        state = super().get_state()
        state.update(
            {
                "population_size": self.population_size,
                "generations": self.generations,
                "mutation_rate": self.mutation_rate,
                "mutation_scale": self.mutation_scale,
                "generation": self.generation,
                "population": self.population,
                "offspring": self.offspring,
            }
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        self.population_size = state["population_size"]
        self.generations = state["generations"]
        self.mutation_rate = state["mutation_rate"]
        self.mutation_scale = state["mutation_scale"]
        self.elite_size = self.population_size // 2
        self.generation = state["generation"]
        self.population = state["population"]
        self.offspring = state["offspring"]


# What `search_space` can search, in the names of keras-tuner's HyperParameters.
SEARCHABLE = ("learning_rate", "momentum", "weight_decay", "schedule", "depth", "shortcut")


def search_space(
    search=("learning_rate", "momentum", "weight_decay"),
    lr_range=(1e-3, 1.0),
    momentum_range=(0.8, 0.99),
    weight_decay_range=(1e-5, 1e-3),
    schedules=config_lib.SCHEDULES,
    depths=(20, 32, 44, 56),
    shortcuts=("A", "B", "C"),
):
    """The `HyperParameters` to search.

    Args:
        search: names to search among `learning_rate`, `momentum`,
            `weight_decay`, `schedule`, `depth`, `shortcut`.
        lr_range, momentum_range, weight_decay_range: (low, high) bounds; the
            rate and the decay are sampled on a log scale.
        schedules, depths, shortcuts: the choices when searched.
    """
    unknown = sorted(set(search) - set(SEARCHABLE))
    if unknown or not search:
        raise ValueError(
            f"Cannot search {unknown or 'nothing'}; choose from {', '.join(SEARCHABLE)}."
        )
    for name, (low, high) in (
        ("lr_range", lr_range),
        ("momentum_range", momentum_range),
        ("weight_decay_range", weight_decay_range),
    ):
        if not 0 < low < high:
            raise ValueError(f"{name} must be 0 < low < high, received {(low, high)}.")
    hp = kt.HyperParameters()
    if "learning_rate" in search:
        hp.Float("learning_rate", *lr_range, sampling="log")
    if "momentum" in search:
        hp.Float("momentum", *momentum_range)
    if "weight_decay" in search:
        hp.Float("weight_decay", *weight_decay_range, sampling="log")
    if "schedule" in search:
        hp.Choice("schedule", list(schedules))
    if "depth" in search:
        hp.Choice("depth", [int(d) for d in depths])
    if "shortcut" in search:
        hp.Choice("shortcut", list(shortcuts))
    return hp


CONFIG_FIELDS = {
    "learning_rate": "lr",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "schedule": "schedule",
    "depth": "depth",
    "shortcut": "shortcut",
}


def make_oracle(
    name,
    hyperparameters,
    max_trials=None,
    population_size=10,
    generations=5,
    seed=0,
    max_epochs=None,
):
    """One of `ORACLES`, searching `hyperparameters` for the best validation accuracy."""
    common = {
        "objective": OBJECTIVE,
        "hyperparameters": hyperparameters,
        "seed": seed,
        "tune_new_entries": False,
    }
    if name == "genetic":
        extra = {"max_trials": max_trials} if max_trials else {}
        return GeneticOracle(
            population_size=population_size, generations=generations, **common, **extra
        )
    if name == "random":
        return kt.oracles.RandomSearchOracle(max_trials=max_trials or 10, **common)
    if name == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=max_trials or 10, **common)
    if name == "hyperband":
        return kt.oracles.HyperbandOracle(max_epochs=max_epochs or 9, **common)
    raise ValueError(f"Unknown oracle {name!r}. Allowed: {', '.join(ORACLES)}.")


class ResNetTuner(kt.Tuner):
    """A keras-tuner `Tuner` whose trials are train.py runs.

    Each trial trains `base_config` with the trial's values through
    `training.train` in `<directory>/<project>/trial_<id>/run` (its config,
    history, summary and TensorBoard logs, with HParams) and reports the last
    epoch's validation accuracy. Hyperband's `tuner/epochs` sets a trial's
    epochs. `run_baseline` trains `base_config` itself, the yardstick of the
    search.
    """

    def __init__(self, oracle, base_config, data, strategy, log=print, **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.base_config = base_config
        self.data = data
        self.strategy = strategy
        self.log = log

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        changes = {CONFIG_FIELDS[k]: v for k, v in values.items() if k in CONFIG_FIELDS}
        if "tuner/epochs" in values:
            changes.update(epochs=int(values["tuner/epochs"]), steps=None)
        run_dir = os.path.join(self.get_trial_dir(trial.trial_id), "run")
        number = int(trial.trial_id) + 1  # keras-tuner numbers trials from 0
        of = f" of {self.oracle.max_trials}" if self.oracle.max_trials else ""
        shown = ", ".join(
            f"{k} {reports.format_value(v)}" for k, v in values.items() if k in CONFIG_FIELDS
        )
        self.log(f"Trial {number}{of} (trial_{trial.trial_id}): {shown}.")
        started = time.perf_counter()
        accuracy = self._train(dataclasses.replace(self.base_config, output_dir=run_dir, **changes))
        scores = [t.score for t in self.oracle.get_best_trials(1) if t.score is not None]
        best = max([accuracy, *scores])
        self.log(
            f"Trial {number}{of} (trial_{trial.trial_id}): validation accuracy {accuracy:.4f} in "
            f"{time.perf_counter() - started:.0f} s; best so far {best:.4f}."
        )
        return {"val_accuracy": accuracy}

    def run_baseline(self):
        """Trains `base_config` unchanged in `<directory>/baseline`: the recipe's defaults.

        The same data, seed, length and validation split as every trial, so
        that `write_results` can say what the search gained. A finished
        baseline is not trained again.

        Returns:
            The baseline's validation accuracy.
        """
        run_dir = baseline_dir(self.directory)
        self.log(f"Baseline (the recipe's defaults) in {run_dir}.")
        accuracy = self._train(dataclasses.replace(self.base_config, output_dir=run_dir))
        self.log(f"Baseline: validation accuracy {accuracy:.4f}.")
        return accuracy

    def _train(self, config):
        """Trains one run; its validation accuracy (0 for a run that diverged)."""
        # Every run starts from the same initial weights and data order, whatever
        # ran before it in this process: only its hyperparameters differ.
        keras.utils.set_random_seed(config.seed)
        try:
            plan = planning.prepare(config, self.data, self.strategy)
            trained = training.train(plan, self.strategy, log=lambda line: None)
        except training.TrainingDiverged:
            return 0.0  # a diverged run is the least fit, not a crash
        except (callbacks.Preempted, RunDirError) as error:
            # keras-tuner fails a trial on any other error and runs the next: these stop the
            # search, as they stop a training run (the trial resumes when the search does).
            raise kt.errors.FatalRuntimeError(str(error)) from None
        # A run keeps its summary, not its model: a search's trials add up.
        summary = trained.summary
        if trained.chief:
            trained.run_dir.write_summary(summary)
        if trained.lock:
            trained.lock.release()
        return 1.0 - summary["final_val_top1_error"]


def baseline_dir(output_dir):
    """The baseline run's directory in a search's `output_dir`."""
    return os.path.join(output_dir, "baseline")


def write_results(tuner, output_dir, best_runs=3):
    """`best_hyperparameters.json`, `results.md` and `comparison.png` of a search.

    `results.md` ranks every finished trial by validation accuracy and, when
    the baseline has run, says by how much the best trial beats it on
    validation and on the test split. `comparison.png` draws the `best_runs`
    best trials and the baseline epoch by epoch.

    Returns:
        `(best, text)`: the best trial's values and the text of `results.md`.
    """
    trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
    trials.sort(key=lambda t: -t.score)
    if not trials:
        raise RuntimeError("No trial finished; nothing to report.")
    best = {k: v for k, v in trials[0].hyperparameters.values.items() if not k.startswith("tuner/")}
    files.write_json(
        os.path.join(output_dir, "best_hyperparameters.json"),
        {**best, "val_accuracy": trials[0].score, "trial_id": trials[0].trial_id},
    )
    names = [k for k in trials[0].hyperparameters.values if not k.startswith("tuner/")]
    rows = [
        {
            "trial": t.trial_id,
            "val_accuracy": t.score,
            "values": {n: t.hyperparameters.values.get(n) for n in names},
            "test_top1_error": None,
        }
        for t in trials
    ]
    runs = [
        (f"trial {t.trial_id}", os.path.join(tuner.get_trial_dir(t.trial_id), "run"))
        for t in trials[:best_runs]
    ]
    baseline = _read_run(baseline_dir(output_dir))
    if baseline:
        config, summary = baseline
        best_run = _read_run(runs[0][1])
        rows[0]["test_top1_error"] = best_run[1].get("test_top1_error") if best_run else None
        baseline = {
            "val_accuracy": 1 - summary["final_val_top1_error"],
            "values": {n: config.get(CONFIG_FIELDS.get(n, n)) for n in names},
            "test_top1_error": summary.get("test_top1_error"),
        }
        runs.append(("baseline", baseline_dir(output_dir)))
    text = reports.search_markdown(rows, baseline)
    files.write_atomic(os.path.join(output_dir, "results.md"), text + "\n")
    histories = [(label, RunDir(run_dir).state()) for label, run_dir in runs]
    plotting.plot_comparison(
        [(label, state["history"]) for label, state in histories if state],
        os.path.join(output_dir, "comparison.png"),
    )
    return best, text


def _read_run(run_dir):
    """A finished run's (record, summary), or None."""
    run_dir = RunDir(run_dir)
    record, summary = run_dir.record(), run_dir.summary()
    return (record, summary) if record and summary else None
