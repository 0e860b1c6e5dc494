"""The reports: every table (CSV and Markdown) and figure of the paper's evidence and a search.

Each CSV has one row layout (`Layout`: its file name and columns, each with
how it is read back), from which it is written and read: a sweep's figures
are drawn from the rows just written, and `draw_from_csvs` draws the same
figures from the same rows read back. Tables and figures of a sweep are made
from its nets' results (`NetResults`); which nets a results folder holds and
when one counts as finished is the sweeps' business
(`keras_resnet.analysis.sweeps`).

- Fig. 6 (`write_figures`): `degradation.csv`, a row per epoch of each net
  (`DEGRADATION`); `degradation.md`, the final errors; `degradation.png`.
- Fig. 7: `layer_responses.csv`, a row per 3x3 layer of each net
  (`RESPONSES`); `layer_responses.png`.
- Table 6 (`write_depth_table`): `depth_table.csv` (`DEPTH_TABLE`) and
  `depth_table.md`, ours beside the paper's and akamaster's test errors.
- A hyperparameter search's `results.md` (`search_markdown`).

Every file is written whole or not at all.
"""

import dataclasses
import os
import re
import typing

from keras_resnet import config, files, models, planning, plotting, specs

# Table 6 of the paper: CIFAR-10 test error (%) and parameters of the residual
# nets. 110 layers: best of 5 runs, whose mean (PAPER_MEAN_OF_RUNS) is 6.61 +- 0.16.
PAPER_TABLE6 = {
    20: (0.27e6, 8.75),
    32: (0.46e6, 7.51),
    44: (0.66e6, 7.17),
    56: (0.85e6, 6.97),
    110: (1.7e6, 6.43),
    1202: (19.4e6, 7.93),
}
# akamaster/pytorch_resnet_cifar10's published test error (%) of the same nets, option A,
# the paper's recipe: the best epoch on the test set, where the paper reports the last.
AKAMASTER_ERRORS = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18}
# The depths whose paper figure is the best of several runs: (runs, their mean error in %).
PAPER_MEAN_OF_RUNS = {110: (5, 6.61)}


def _boolean(cell):
    return cell == "True"


# The seed of a run whose name has none (`run_name`): the training command's default.
DEFAULT_SEED = config.TrainConfig.seed


@dataclasses.dataclass(frozen=True)
class Layout:
    """The row layout of one CSV file: its name and its columns, each with its type.

    Rows are written in it (a missing or None value as an empty cell, other
    keys left out) and read back in it, each cell turned back into its
    column's type and an empty or missing one into None.

    Args:
        file_name: str, the file's name in the folder it is written to.
        columns: tuple of (column name, function from a cell's text to its
            value), in the file's order.
    """

    file_name: str
    columns: tuple

    def write(self, folder, rows):
        """Writes `rows` (dicts) to `folder/<file_name>`; returns its path."""
        path = os.path.join(folder, self.file_name)
        files.write_csv(path, rows, [name for name, _ in self.columns])
        return path

    def read(self, folder):
        """The rows of `folder/<file_name>`, as they were written."""
        return [
            {name: parse(row[name]) if row.get(name) else None for name, parse in self.columns}
            for row in files.read_csv(os.path.join(folder, self.file_name))
        ]


# Fig. 6: a row per epoch of each net; `heldout_top1_error` measured on `evaluated_on`.
DEGRADATION = Layout(
    "degradation.csv",
    (
        ("model", str),
        ("depth", int),
        ("plain", _boolean),
        ("seed", int),
        ("step", int),
        ("train_top1_error", float),
        ("heldout_top1_error", float),
        ("evaluated_on", str),
    ),
)
# Fig. 7: a row per 3x3 layer of each net; `rank` 1 is the layer of the largest std.
RESPONSES = Layout(
    "layer_responses.csv",
    (("model", str), ("layer_index", int), ("layer", str), ("std", float), ("rank", int)),
)
# Table 6: a row per net; the results of a net still training are empty, but its
# parameters, steps, latest test error and hours.
DEPTH_TABLE = Layout(
    "depth_table.csv",
    (
        ("model", str),
        ("layers", int),
        ("seed", int),
        ("parameters", int),
        ("paper_parameters", float),
        ("steps", int),
        ("total_steps", int),
        ("finished", _boolean),
        ("test_top1_error", float),
        ("latest_test_top1_error", float),
        ("paper_test_error", float),
        ("akamaster_test_error", float),
        ("hours", float),
    ),
)


@dataclasses.dataclass(frozen=True)
class NetResults:
    """What a sweep keeps of one net: the files of its results folder, read.

    Attributes:
        name: its run name (`plain20`, `resnet56`, `resnet56-seed1`; `run_name`).
        record: its `config.json`.
        history: the rows of its `history.csv` (strings), a row per epoch.
        summary: its `summary.json`; None while it trains.
        responses: its Fig. 7 rows (`RESPONSES`); None while it trains.
    """

    name: str
    record: dict
    history: list
    summary: dict = None
    responses: list = None

    @property
    def finished(self):
        return self.summary is not None


class RunName(typing.NamedTuple):
    """What a sweep's run name says: the CIFAR net (`depth`, `plain`) and its `seed`."""

    depth: int
    plain: bool
    seed: int


def run_name(depth, plain, seed=DEFAULT_SEED):
    """A sweep's name of a net's run: `resnet56`, `plain20`; `resnet56-seed1` for another seed.

    The default seed's run is named as its model, so a results folder holds
    one run of each net per seed, and results committed before seeds were
    named keep their names.
    """
    name = specs.model_name(depth, plain)
    return name if seed == DEFAULT_SEED else f"{name}-seed{seed}"


def parse_run_name(name):
    """`resnet56-seed1` -> RunName(56, False, 1), `plain20` -> (20, True, 0); None for others."""
    match = re.fullmatch(r"(plain|resnet)(\d+)(?:-seed(\d+))?", name)
    if match is None:
        return None
    parsed = RunName(int(match[2]), match[1] == "plain", int(match[3] or DEFAULT_SEED))
    return parsed if run_name(*parsed) == name else None  # not `resnet056`, `resnet56-seed0`


def display_name(name):
    """`plain20` -> `plain-20`, `resnet56-seed1` -> `ResNet-56, seed 1`; others unchanged."""
    parsed = parse_run_name(name)
    if parsed is None:
        return name
    label = f"{'plain' if parsed.plain else 'ResNet'}-{parsed.depth}"
    return label if parsed.seed == DEFAULT_SEED else f"{label}, seed {parsed.seed}"


def percent(value):
    """`8.75%` for 0.0875; "" for None."""
    return "" if value is None else f"{100 * value:.2f}%"


# ---------------------------------------------------------------- figures
def draw_degradation(rows, path):
    """Fig. 6 from `DEGRADATION` rows."""
    plotting.plot_degradation(rows, path, rows[0]["evaluated_on"] or "test")


def draw_layer_responses(rows, path):
    """Fig. 7 from `RESPONSES` rows: a curve per model, in the order the rows name them."""
    responses = {}
    for row in sorted(rows, key=lambda row: row["layer_index"]):
        responses.setdefault(row["model"], []).append((row["layer"], row["std"]))
    plotting.plot_layer_responses(responses, path)


def draw_from_csvs(results_dir):
    """Fig. 6 from `degradation.csv` and Fig. 7 from `layer_responses.csv`, whichever exist.

    Returns:
        The PNG paths written.

    Raises:
        ValueError: when `results_dir` holds neither CSV.
    """
    written = []
    for layout, draw, png in (
        (DEGRADATION, draw_degradation, "degradation.png"),
        (RESPONSES, draw_layer_responses, "layer_responses.png"),
    ):
        if os.path.exists(os.path.join(results_dir, layout.file_name)):
            written.append(os.path.join(results_dir, png))
            draw(layout.read(results_dir), written[-1])
    if not written:
        raise ValueError(
            f"{results_dir!r} has neither the results of a sweep's nets nor degradation.csv "
            "or layer_responses.csv to draw from."
        )
    return written


# ---------------------------------------------------------------- Fig. 6 and Fig. 7
def write_figures(results_dir, nets):
    """Fig. 6's and Fig. 7's tables and figures from the finished ones of `nets`.

    Writes `degradation.csv` (`DEGRADATION`), `degradation.md` (final errors
    and wall time per net, `degradation_markdown`), `layer_responses.csv`
    (every net's `RESPONSES` rows) and both PNGs, drawn from those rows.

    Args:
        results_dir: the folder to write to.
        nets: `NetResults`, in the order to table and draw them; those still
            training are left out.

    Returns:
        dict with `final` ({net: its final errors and minutes}) and the paths
        `csv`, `markdown`, `png`, `layer_responses_csv` and
        `layer_responses_png`; empty when no net has finished.
    """
    done = [net for net in nets if net.finished]
    if not done:
        return {}
    evaluated_on = "validation" if done[0].record["data"]["num_validation"] else "test"
    rows, final, responses = [], {}, []
    for net in done:
        rows += degradation_rows(net, evaluated_on)
        final[display_name(net.name)] = {
            "steps": net.summary["steps"],
            "train_top1_error": net.summary["final_train_top1_error"],
            **(
                {"validation_top1_error": float(net.history[-1]["val_top1_error"])}
                if evaluated_on == "validation"
                else {}
            ),
            "test_top1_error": net.summary["test_top1_error"],
            "minutes": sum(float(entry["seconds"]) for entry in net.history) / 60,
        }
        responses += net.responses
    written = {
        "final": final,
        "csv": DEGRADATION.write(results_dir, rows),
        "markdown": os.path.join(results_dir, "degradation.md"),
        "layer_responses_csv": RESPONSES.write(results_dir, responses),
        "png": os.path.join(results_dir, "degradation.png"),
        "layer_responses_png": os.path.join(results_dir, "layer_responses.png"),
    }
    files.write_atomic(written["markdown"], degradation_markdown(final, evaluated_on))
    draw_degradation(rows, written["png"])
    draw_layer_responses(responses, written["layer_responses_png"])
    return written


def degradation_rows(net, evaluated_on):
    """A net's `DEGRADATION` rows, one per epoch of its history."""
    parsed = parse_run_name(net.name)
    return [
        {
            "model": display_name(net.name),
            "depth": parsed.depth,
            "plain": parsed.plain,
            "seed": parsed.seed,
            "step": int(entry["step"]),
            "train_top1_error": float(entry["top1_error"]),
            "heldout_top1_error": float(entry["val_top1_error"]),
            "evaluated_on": evaluated_on,
        }
        for entry in net.history
    ]


def degradation_markdown(final, evaluated_on):
    """The final errors and wall time of each net of a Fig. 6 sweep, as a Markdown table."""
    columns = ["training error"] + (["validation error"] if evaluated_on == "validation" else [])
    lines = [
        "| network | iterations | " + " | ".join(columns) + " | test error | wall time |",
        "|---|---:|" + "---:|" * (len(columns) + 2),
    ]
    for name, errors in final.items():
        cells = [errors["train_top1_error"]]
        if evaluated_on == "validation":
            cells.append(errors["validation_top1_error"])
        cells.append(errors["test_top1_error"])
        lines.append(
            f"| {name} | {errors['steps']:,} | "
            + " | ".join(percent(value) for value in cells)
            + f" | {errors['minutes']:.0f} min |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Table 6
def write_depth_table(results_dir, nets):
    """Table 6, Fig. 6's residual panel and Fig. 7 from `nets`.

    Writes `depth_table.csv` (`DEPTH_TABLE`) and `depth_table.md` (a row per
    net: parameters, the paper's and akamaster's test error, ours after the
    last iteration, wall time; a net still training shows how far it is and
    its latest test error), and through `write_figures` the curves and
    responses of the finished nets.

    Args:
        results_dir: the folder to write to.
        nets: `NetResults` of residual nets, in the table's order.

    Returns:
        `write_figures`'s dict with `rows`, `depth_table_csv` and `markdown`
        (the table's path).
    """
    rows = [depth_table_row(net) for net in nets]
    written = write_figures(results_dir, nets)
    written.update(
        rows=rows,
        depth_table_csv=DEPTH_TABLE.write(results_dir, rows),
        markdown=os.path.join(results_dir, "depth_table.md"),
    )
    files.write_atomic(written["markdown"], depth_table_markdown(rows))
    return written


def depth_table_row(net):
    """A net's `DEPTH_TABLE` row."""
    depth, _, seed = parse_run_name(net.name)
    summary, history = net.summary or {}, net.history
    paper_params, paper_error = PAPER_TABLE6.get(depth, (None, None))
    return {
        "model": display_name(net.name),
        "layers": depth,
        "seed": seed,
        "parameters": summary.get("trainable_parameters") or _trainable_parameters(net.record),
        "paper_parameters": paper_params,
        "steps": int(history[-1]["step"]) if history else 0,
        "total_steps": net.record["total_steps"],
        "finished": net.finished,
        "test_top1_error": summary.get("test_top1_error"),
        # The error measured after each epoch is the test error only without a held-out split.
        "latest_test_top1_error": (
            float(history[-1]["val_top1_error"])
            if history and not net.record["data"].get("num_validation")
            else None
        ),
        "paper_test_error": None if paper_error is None else paper_error / 100,
        "akamaster_test_error": (
            AKAMASTER_ERRORS[depth] / 100 if depth in AKAMASTER_ERRORS else None
        ),
        "hours": sum(float(entry["seconds"]) for entry in history) / 3600,
    }


def _trainable_parameters(record):
    """A net's trainable parameters, counted on the network its `config.json` describes."""
    network = planning.network(
        config.config_of_record(record),
        record["data"]["image_shape"],
        len(record["data"]["class_names"]),
    )
    return models.trainable_parameters(network)


def depth_table_markdown(rows):
    """Table 6's columns from `DEPTH_TABLE` rows: ours beside the paper's and akamaster's."""
    lines = [
        "| network | layers | params (paper) | iterations | test error: ours, last iteration "
        "| paper | akamaster, best epoch | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["finished"]:
            iterations = f"{row['steps']:,}"
            ours = percent(row["test_top1_error"])
            hours = f"{row['hours']:.1f} h"
        else:
            iterations = f"{row['steps']:,} of {row['total_steps']:,}"
            ours = "still training"
            if row["latest_test_top1_error"] is not None:
                ours = f"{percent(row['latest_test_top1_error'])} so far, {ours}"
            hours = f"{row['hours']:.1f} h so far"
        params = f"{row['parameters'] / 1e6:.2f}M"
        if row["paper_parameters"]:
            params += f" ({row['paper_parameters'] / 1e6:g}M)"
        paper = percent(row["paper_test_error"])
        if row["layers"] in PAPER_MEAN_OF_RUNS:
            runs, mean = PAPER_MEAN_OF_RUNS[row["layers"]]
            paper += f" (best of {runs}; mean {mean:.2f}%)"
        lines.append(
            f"| {row['model']} | {row['layers']} | {params} | {iterations} | {ours} | {paper} "
            f"| {percent(row['akamaster_test_error'])} | {hours} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- a hyperparameter search
def search_markdown(trials, baseline=None):
    """`results.md` of a hyperparameter search: the trials ranked, the baseline beneath.

    Args:
        trials: list of dicts, best first, each with `trial` (its id),
            `val_accuracy`, `values` ({hyperparameter: value}; the first
            trial's names are the columns) and `test_top1_error` (the best
            trial's is compared with the baseline's; None where unknown).
        baseline: None, or a dict of the same keys (but `trial`) for the run
            of the recipe's defaults; then a sentence says by how much the
            best trial beats it, on validation and on the test split.

    Returns:
        The Markdown text, without a final newline.
    """
    names = list(trials[0]["values"])
    lines = [
        "| rank | trial | val accuracy | " + " | ".join(names) + " |",
        "|---:|---|---:|" + "---|" * len(names),
    ]
    rows = [(str(rank), trial) for rank, trial in enumerate(trials, start=1)]
    if baseline:
        rows.append(("-", {**baseline, "trial": "baseline"}))
    for rank, trial in rows:
        cells = [format_value(trial["values"].get(name)) for name in names]
        lines.append(
            f"| {rank} | {trial['trial']} | {trial['val_accuracy']:.4f} | "
            + " | ".join(cells)
            + " |"
        )
    if baseline:
        lines += ["", _gain(trials[0], baseline)]
    return "\n".join(lines)


def _gain(best, baseline):
    """The sentence of a search's `results.md` that compares the best trial with the baseline."""
    text = (
        f"Best trial {best['trial']} against the baseline (the recipe's defaults): "
        f"validation accuracy {best['val_accuracy']:.4f} vs {baseline['val_accuracy']:.4f}, "
        f"{_points(best['val_accuracy'] - baseline['val_accuracy'])}"
    )
    ours, theirs = best["test_top1_error"], baseline["test_top1_error"]
    if ours is not None and theirs is not None:
        text += (
            f"; test top-1 error {percent(ours)} vs {percent(theirs)}, "
            f"{_points(theirs - ours)} (the test split chose nothing)"
        )
    return text + "."


def _points(gain):
    """`1.39 points better` for a gain of 0.0139 (`worse` when negative)."""
    return f"{100 * abs(gain):.2f} points {'better' if gain >= 0 else 'worse'}"


def format_value(value):
    """A hyperparameter's value as a table shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
