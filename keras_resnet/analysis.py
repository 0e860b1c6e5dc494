"""The paper's evidence, reproducible: Fig. 6, Fig. 7 and Table 6 of He et al. (2015).

    keras-resnet-analysis degradation --depths 20 56 --dataset cifar10 --data-dir .data
    keras-resnet-analysis layer-responses --dataset cifar10 --data-dir .data \\
        --model runs/degradation/plain20 --model runs/degradation/resnet20
    keras-resnet-analysis depth-table --depths 20 32 44 56 110 --dataset cifar10

- `degradation` (Fig. 6) trains the plain and the residual (option A) CIFAR
  net of each depth with one recipe and plots training error (dashed: the
  running error of the epoch's augmented batches, as the paper's thin curves)
  and test error (bold) against iterations.
- `layer-responses` (Fig. 7): the standard deviation of the response of every
  3x3 convolution, after its batch normalization and before the addition and
  the ReLU, over the test set; per channel, then averaged over the channels
  of the layer. Plotted in layer order and sorted by magnitude.
- `depth-table` (Table 6): the residual nets of each depth, their parameters
  and test error, with the paper's figures beside them.

Training commands take every train.py flag but --depth, --plain and
--output-dir; without --steps/--epochs they run the paper's 64k iterations.
Each net is an ordinary run directory `<output-dir>/<plain|resnet><depth>`, so
a killed sweep resumes where it stopped and finished runs are collected, not
retrained. `degradation` also keeps each finished net's small results (history,
summary, Fig. 7 responses) in `--results-dir`: a net found there is not trained
again even where its run directory is gone, so a sweep longer than one machine's
session goes on from the committed results. Outputs (CSV, PNG, Markdown) are
written whole or not at all.
"""

import argparse
import dataclasses
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_resnet.cli import run_command
from keras_resnet import data as data_lib
from keras_resnet import callbacks, evaluation, plotting, rundir, runtime, specs, training
from keras_resnet import config as config_lib

# Table 6 of the paper: CIFAR-10 test error (%) and parameters of the residual
# nets. 110 layers: best of 5 runs (their mean is 6.61 +- 0.16).
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
DEGRADATION_DEPTHS = (20, 32, 44, 56)  # Fig. 6
# A degradation sweep's results, a folder per net, written as the net finishes (summary.json
# last): small files to commit, from which both figures are drawn without the weights.
RESULT_FILES = ("layer_responses.csv", "config.json", "history.csv", "summary.json")
# What a net's results must share with the sweep to be taken for its run.
RECIPE_FIELDS = rundir.RESUME_FIELDS + (
    "validation_split",
    "train_subset",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_lr",
    "seed",
    "mixed_precision",
    "total_steps",
    "lr_boundaries_steps",
    "warmup_steps",
)
TABLE_DEPTHS = (20, 32, 44, 56, 110)


run_name = specs.model_name  # a sweep's run directories are named as their models


def parse_run_name(name):
    """`plain20` -> (20, True), `resnet56` -> (56, False); None for other names."""
    match = re.fullmatch(r"(plain|resnet)(\d+)", name)
    return (int(match[2]), match[1] == "plain") if match else None


def display_name(name):
    """`plain20` -> `plain-20`, `resnet56` -> `ResNet-56`; other names unchanged."""
    parsed = parse_run_name(name)
    if parsed is None:
        return name
    return f"{'plain' if parsed[1] else 'ResNet'}-{parsed[0]}"


def train_sweep(config, nets, output_dir, log=print, results_dir=None, on_result=None):
    """Trains (or resumes, or collects) one run per net with one recipe.

    Args:
        config: `TrainConfig` of the shared recipe and data; its depth, plain
            and output_dir are set per net.
        nets: list of (depth, plain) pairs.
        output_dir: folder holding one run directory per net.
        log: function taking one line of progress text.
        results_dir: optional folder of the sweep's results, a folder per net.
            As each net finishes, its `RESULT_FILES` are written there
            (`keep_results`); a net whose results are complete there is not
            trained again, even when its run directory is gone. While a net
            trains, its last checkpoint, config and history are copied there
            after every epoch (`rundir.copy_checkpoint`), and a run directory
            that is lost, or behind that copy, goes on from it.
        on_result: optional function called with no arguments after each net's
            results are written (a sweep redraws its figures).

    Returns:
        ({run name: summary dict}, the `Data` trained on).

    Raises:
        ValueError: for an invalid depth or config, or results of another
            recipe in `results_dir`, before any training.
    """
    strategy = runtime.setup_devices(config)
    data = training.load_config_data(config)
    configs, summaries = {}, {}
    for depth, plain in nets:
        name = run_name(depth, plain)
        net = dataclasses.replace(
            config, depth=depth, plain=plain, output_dir=os.path.join(output_dir, name)
        )
        resolved = config_lib.resolve(net, data)  # validates the recipe for this net
        specs.make_spec(depth, resolved.config.stem, plain=plain)
        folder = results_dir and os.path.join(results_dir, name)
        if folder and finished_results(folder, resolved):
            summaries[name] = rundir.read_json(os.path.join(folder, "summary.json"))
        else:
            configs[name] = net
    for name in summaries:
        log(f"--- {display_name(name)}: finished, its results are in {results_dir}/{name}")
    for name, net in configs.items():
        log(f"--- {display_name(name)}: {net.output_dir}")
        folder = results_dir and os.path.join(results_dir, name)
        copies = []
        if folder and os.path.abspath(folder) != os.path.abspath(net.output_dir):
            restored = rundir.restore_checkpoint_copy(folder, net.output_dir)
            if restored:
                log(
                    f"Restored {net.output_dir} from the checkpoint kept in {folder} (epoch "
                    f"{restored['epoch']}, step {restored['step']}); TensorBoard logs before it "
                    "stay with the lost run directory."
                )
            copies = [callbacks.CopyCheckpoint(net.output_dir, folder)]
        keras.utils.set_random_seed(net.seed)  # every net starts from the same seed
        trained = training.train(net, log, data=data, strategy=strategy, extra_callbacks=copies)
        summaries[name] = training.finish(trained)
        if folder:
            keep_results(net.output_dir, folder, data)
            if on_result:
                on_result()
    return {run_name(*net): summaries[run_name(*net)] for net in nets}, data


def keep_results(run_dir, folder, data):
    """Writes a finished net's `RESULT_FILES` to its results folder; drops its checkpoint copy.

    Its Fig. 7 responses are measured now, on the test images (they choose
    nothing); `summary.json` is written last, as it marks the results complete.
    """
    model = rundir.load_model(run_dir, saved_model=False).model
    responses = layer_responses(model, data_lib.eval_dataset(data, data.test, 256))
    rundir.write_csv(
        os.path.join(folder, "layer_responses.csv"),
        response_rows(display_name(os.path.basename(run_dir)), responses),
    )
    if os.path.abspath(folder) != os.path.abspath(run_dir):
        for file_name in RESULT_FILES[1:]:
            rundir.copy_file(os.path.join(run_dir, file_name), os.path.join(folder, file_name))
        rundir.remove_checkpoint_copy(folder)


def finished_results(folder, resolved):
    """Whether `folder` holds every file of `RESULT_FILES` for the recipe of `resolved`.

    Args:
        folder: a net's results folder.
        resolved: the `ResolvedRun` the sweep would train for that net.

    Raises:
        ValueError: when the files are there but record another recipe
            (`RECIPE_FIELDS`): a sweep never draws two recipes as one.
    """
    if not all(os.path.exists(os.path.join(folder, name)) for name in RESULT_FILES):
        return False
    recorded = rundir.read_json(os.path.join(folder, "config.json"))
    changed = rundir.config_changes(recorded, resolved.record(), RECIPE_FIELDS)
    if changed:
        raise ValueError(
            f"{folder!r} holds the results of another recipe ({changed}); choose another "
            "--results-dir, or remove that folder to train the net again."
        )
    return True


# ---------------------------------------------------------------- Fig. 6
def degradation(
    config, depths=DEGRADATION_DEPTHS, output_dir="runs/degradation", results_dir=None, log=print
):
    """Fig. 6 and Fig. 7: trains plain and residual nets of `depths`, draws both.

    As each net finishes, its Fig. 7 responses are measured on the test
    images (they choose nothing) and its small files are written to
    `<results_dir>/<run name>/` (`RESULT_FILES`, `summary.json` last); then
    both figures are redrawn from the results folder alone (`write_figures`).
    So a sweep stopped part way leaves its finished nets tabled and drawn, and
    a net whose results are in the folder is not trained again, even where
    its run directory (the weights) is gone: committed results carry a long
    sweep across machines.

    Args:
        config: `TrainConfig` of the shared recipe and data.
        depths: CIFAR depths 6n+2.
        output_dir: one run directory per net (weights and all).
        results_dir: the folder of what is worth committing: each net's
            results and the figures drawn from them. Default: `output_dir`.
        log: function taking one line of progress text.

    Returns:
        `write_figures`'s dict.
    """
    results_dir = results_dir or output_dir
    rundir.check_writable(results_dir, "results_dir")  # before hours of training, not after
    nets = [(depth, plain) for plain in (True, False) for depth in depths]
    names = [run_name(depth, plain) for depth, plain in nets]
    train_sweep(
        config,
        nets,
        output_dir,
        log,
        results_dir=results_dir,
        on_result=lambda: write_figures(results_dir, names, log),
    )
    written = write_figures(results_dir, names, log)
    with open(written["markdown"]) as f:
        log(f.read().rstrip())
    return written


def write_figures(results_dir, names, log=print):
    """Fig. 6's and Fig. 7's tables and figures from the nets' results in `results_dir`.

    Nets whose results are not complete yet are left out. Writes
    `degradation.csv` (a row per epoch of each net: its step, training and
    held-out error), `degradation.md` (final errors and wall time per net),
    `layer_responses.csv` (every net's), and both PNGs (`draw_from_csvs`).

    Args:
        results_dir: the sweep's results folder.
        names: run names, in the order to table and draw them.

    Returns:
        dict with `final` ({net: its final errors and minutes}) and the paths
        `csv`, `markdown`, `png`, `layer_responses_csv` and
        `layer_responses_png`; empty when no net has finished.
    """
    done = [
        name
        for name in names
        if all(os.path.exists(os.path.join(results_dir, name, f)) for f in RESULT_FILES)
    ]
    if not done:
        return {}
    first = rundir.read_json(os.path.join(results_dir, done[0], "config.json"))
    evaluated_on = "validation" if first["data"]["num_validation"] else "test"
    rows, final, responses = [], {}, []
    for name in done:
        folder = os.path.join(results_dir, name)
        depth, plain = parse_run_name(name)
        history = rundir.read_csv(os.path.join(folder, "history.csv"))
        summary = rundir.read_json(os.path.join(folder, "summary.json"))
        for entry in history:
            rows.append(
                {
                    "model": display_name(name),
                    "depth": depth,
                    "plain": plain,
                    "step": int(entry["step"]),
                    "train_top1_error": float(entry["top1_error"]),
                    "heldout_top1_error": float(entry["val_top1_error"]),
                    "evaluated_on": evaluated_on,
                }
            )
        final[display_name(name)] = {
            "steps": summary["steps"],
            "train_top1_error": summary["final_train_top1_error"],
            f"{evaluated_on}_top1_error": float(history[-1]["val_top1_error"]),
            "test_top1_error": summary["test_top1_error"],
            "minutes": sum(float(entry["seconds"]) for entry in history) / 60,
        }
        responses += rundir.read_csv(os.path.join(folder, "layer_responses.csv"))
    written = {
        "final": final,
        "csv": os.path.join(results_dir, "degradation.csv"),
        "markdown": os.path.join(results_dir, "degradation.md"),
        "layer_responses_csv": os.path.join(results_dir, "layer_responses.csv"),
    }
    rundir.write_csv(written["csv"], rows)
    rundir.write_atomic(written["markdown"], degradation_markdown(final, evaluated_on))
    rundir.write_csv(written["layer_responses_csv"], responses)
    written["png"], written["layer_responses_png"] = draw_from_csvs(results_dir)
    log(f"Wrote Fig. 6 and Fig. 7 of {len(done)} of {len(names)} nets in {results_dir}")
    return written


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
            + " | ".join(f"{100 * value:.2f}%" for value in cells)
            + f" | {errors['minutes']:.0f} min |"
        )
    return "\n".join(lines) + "\n"


def sweep_names(results_dir):
    """The nets of a sweep's results folder (`plain20`, `resnet56`, ...): plain first, by depth.

    A net counts once its folder has a `history.csv` (a running net's, copied
    after every epoch, or a finished one's).
    """
    names = [
        name
        for name in (os.listdir(results_dir) if os.path.isdir(results_dir) else [])
        if parse_run_name(name) and os.path.exists(os.path.join(results_dir, name, "history.csv"))
    ]
    return sorted(names, key=lambda name: (not parse_run_name(name)[1], parse_run_name(name)[0]))


def redraw(results_dir, log=print):
    """Redraws a results folder's tables and figures without training anything.

    A sweep's folder (a subfolder per net) is redrawn from the nets' own
    files: Table 6's `depth_table.md` where it holds residual nets only, and
    Fig. 6 and Fig. 7 (`write_figures`). A folder of CSVs alone (the
    `layer-responses` command's) is redrawn from `degradation.csv` and
    `layer_responses.csv`, whichever exist.

    Returns:
        The PNG paths written.

    Raises:
        ValueError: when `results_dir` holds neither nets nor CSVs.
    """
    names = sweep_names(results_dir)
    if names:
        if any(parse_run_name(name)[1] for name in names):
            written = write_figures(results_dir, names, log=lambda line: None)
        else:
            written = write_depth_table(results_dir, names, log=lambda line: None)
        pngs = [written[key] for key in ("png", "layer_responses_png") if key in written]
        log(f"Wrote {', '.join([written['markdown'], *pngs])}")
        return pngs
    written = draw_from_csvs(results_dir)
    log(f"Wrote {' and '.join(written)}")
    return written


def draw_from_csvs(results_dir):
    """Fig. 6 from `degradation.csv` and Fig. 7 from `layer_responses.csv`, whichever exist.

    Returns:
        The PNG paths written.

    Raises:
        ValueError: when `results_dir` holds neither CSV.
    """
    written = []
    path = os.path.join(results_dir, "degradation.csv")
    if os.path.exists(path):
        rows = [
            {
                **row,
                "depth": int(row["depth"]),
                "plain": row["plain"] == "True",
                "step": int(row["step"]),
                "train_top1_error": float(row["train_top1_error"]),
                "heldout_top1_error": float(row["heldout_top1_error"]),
            }
            for row in rundir.read_csv(path)
        ]
        written.append(os.path.join(results_dir, "degradation.png"))
        plotting.plot_degradation(rows, written[-1], rows[0].get("evaluated_on") or "test")
    path = os.path.join(results_dir, "layer_responses.csv")
    if os.path.exists(path):
        responses = {}
        for row in sorted(rundir.read_csv(path), key=lambda row: int(row["layer_index"])):
            responses.setdefault(row["model"], []).append((row["layer"], float(row["std"])))
        written.append(os.path.join(results_dir, "layer_responses.png"))
        plotting.plot_layer_responses(responses, written[-1])
    if not written:
        raise ValueError(
            f"{results_dir!r} has neither the results of a sweep's nets nor degradation.csv "
            "or layer_responses.csv to draw from."
        )
    return written


# ---------------------------------------------------------------- Fig. 7
def response_layers(model):
    """The batch normalizations that follow the 3x3 convolutions, in order.

    Relies on the fixed layer names: `<unit>_conv` is followed by `<unit>_bn`.
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (3, 3):
            unit = layer.name.removesuffix("_conv")
            try:
                found.append(model.get_layer(f"{unit}_bn"))
            except ValueError:
                raise ValueError(
                    f"Model {model.name!r}: no batch normalization named {unit}_bn "
                    f"after the 3x3 convolution {layer.name!r}; layer responses "
                    "need a keras_resnet model."
                ) from None
    if not found:
        raise ValueError(f"Model {model.name!r} has no 3x3 convolutions.")
    return found


def layer_responses(model, dataset):
    """Std of each 3x3 layer's response (after BN, before add/ReLU) over `dataset`.

    Args:
        model: a keras_resnet model (raw pixels in).
        dataset: `tf.data.Dataset` of (images, labels) batches.

    Returns:
        list of (layer name, std): per-channel standard deviation over all
        images and positions, averaged over the layer's channels.
    """
    layers = response_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in layers])

    @tf.function
    def batch_moments(images):
        outputs = probe(tf.cast(images, tf.float32), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        moments = []
        for output in outputs:
            output = tf.cast(output, tf.float32)
            moments.append(
                (tf.reduce_sum(output, [0, 1, 2]), tf.reduce_sum(tf.square(output), [0, 1, 2]))
            )
        return moments

    sums = squares = None
    num_images = 0
    for images, _ in dataset:
        moments = [
            (a.numpy().astype(np.float64), b.numpy().astype(np.float64))
            for a, b in batch_moments(images)
        ]
        if sums is None:
            sums, squares = [a for a, _ in moments], [b for _, b in moments]
        else:
            sums = [total + a for total, (a, _) in zip(sums, moments)]
            squares = [total + b for total, (_, b) in zip(squares, moments)]
        num_images += int(images.shape[0])
    if not num_images:
        raise ValueError("The dataset is empty.")
    result = []
    for layer, total, total_sq in zip(layers, sums, squares):
        height, width = layer.output.shape[1:3]
        n = num_images * height * width
        variance = np.maximum(total_sq / n - (total / n) ** 2, 0.0)
        result.append((layer.name, float(np.sqrt(variance).mean())))
    return result


def response_rows(label, responses):
    """`layer_responses`'s list as CSV rows: model, layer index and name, std, rank by std."""
    ranked = sorted((std for _, std in responses), reverse=True)
    return [
        {"model": label, "layer_index": i, "layer": name, "std": std, "rank": ranked.index(std) + 1}
        for i, (name, std) in enumerate(responses, start=1)
    ]


def layer_response_analysis(
    model_paths, data, output_dir="runs/layer-responses", batch_size=256, log=print
):
    """Fig. 7 for trained models: computes, writes CSV and PNG.

    Args:
        model_paths: run directories or `.keras` files.
        data: the `Data` whose test split is measured.

    Returns:
        dict with `responses` ({label: [(layer, std), ...]}) and the paths written.
    """
    models = []
    for path in model_paths:
        model = rundir.load_model(path, saved_model=False).model
        evaluation.check_compatible(evaluation.classifier_from_model(model), data)
        models.append((path, model))
    labels = [display_name(model.name) for _, model in models]
    responses = {}
    for (path, model), label in zip(models, labels):
        if labels.count(label) > 1:
            label = f"{label} ({path})"
        responses[label] = layer_responses(
            model, data_lib.eval_dataset(data, data.test, batch_size)
        )
        stds = [std for _, std in responses[label]]
        log(
            f"{label}: {len(stds)} 3x3 layers, response std mean {np.mean(stds):.3f}, "
            f"max {max(stds):.3f}"
        )
    rows = [row for label, values in responses.items() for row in response_rows(label, values)]
    csv_path = os.path.join(output_dir, "layer_responses.csv")
    png_path = os.path.join(output_dir, "layer_responses.png")
    rundir.write_csv(csv_path, rows)
    plotting.plot_layer_responses(responses, png_path)
    log(f"Wrote {csv_path} and {png_path}")
    return {"responses": responses, "csv": csv_path, "png": png_path}


# ---------------------------------------------------------------- Table 6
def depth_table(
    config, depths=TABLE_DEPTHS, output_dir="runs/depth-table", results_dir=None, log=print
):
    """Table 6: trains (or collects) the residual nets of `depths` and tables them.

    Each net's results go to `<results_dir>/resnet<depth>/` as it finishes,
    and the running net's checkpoint is copied there after every epoch
    (`train_sweep`), so the sweep goes on from that folder on another
    machine; `write_depth_table` redraws the table and figures from it after
    each net.

    Args:
        config: `TrainConfig` of the shared recipe and data.
        depths: CIFAR depths 6n+2, trained in this order.
        output_dir: one run directory per net (weights and all).
        results_dir: what is worth committing. Default: `output_dir`.
        log: function taking one line of progress text.

    Returns:
        `write_depth_table`'s dict.
    """
    results_dir = results_dir or output_dir
    rundir.check_writable(results_dir, "results_dir")  # before hours of training, not after
    nets = [(depth, False) for depth in depths]
    names = [run_name(depth, plain) for depth, plain in nets]
    train_sweep(
        config,
        nets,
        output_dir,
        log,
        results_dir=results_dir,
        on_result=lambda: write_depth_table(results_dir, names, log),
    )
    written = write_depth_table(results_dir, names, log)
    with open(written["markdown"]) as f:
        log(f.read().rstrip())
    return written


def write_depth_table(results_dir, names, log=print):
    """Table 6, Fig. 6's residual panel and Fig. 7 from the nets' results in `results_dir`.

    Writes `depth_table.csv` and `depth_table.md` (a row per net: parameters,
    the paper's and akamaster's test error, ours after the last iteration,
    wall time; a net still training shows how far it is and its latest test
    error), and through `write_figures` the curves and responses of the
    finished nets.

    Returns:
        `write_figures`'s dict with `rows`, `depth_table_csv` and `markdown`
        (the table's path).
    """
    rows = []
    for name in names:
        folder = os.path.join(results_dir, name)
        if not os.path.exists(os.path.join(folder, "history.csv")):
            continue
        depth, _ = parse_run_name(name)
        record = rundir.read_json(os.path.join(folder, "config.json"))
        history = rundir.read_csv(os.path.join(folder, "history.csv"))
        finished = all(os.path.exists(os.path.join(folder, f)) for f in RESULT_FILES)
        summary = rundir.read_json(os.path.join(folder, "summary.json")) if finished else {}
        paper_params, paper_error = PAPER_TABLE6.get(depth, (None, None))
        rows.append(
            {
                "model": display_name(name),
                "layers": depth,
                "parameters": summary.get("trainable_parameters"),
                "paper_parameters": paper_params,
                "steps": int(history[-1]["step"]) if history else 0,
                "total_steps": record["total_steps"],
                "finished": finished,
                "test_top1_error": summary.get("test_top1_error"),
                "latest_test_top1_error": float(history[-1]["val_top1_error"]) if history else None,
                "paper_test_error": None if paper_error is None else paper_error / 100,
                "akamaster_test_error": (
                    AKAMASTER_ERRORS[depth] / 100 if depth in AKAMASTER_ERRORS else None
                ),
                "hours": sum(float(entry["seconds"]) for entry in history) / 3600,
            }
        )
    written = write_figures(results_dir, names, log) or {}
    written.update(
        rows=rows,
        depth_table_csv=os.path.join(results_dir, "depth_table.csv"),
        markdown=os.path.join(results_dir, "depth_table.md"),
    )
    rundir.write_csv(written["depth_table_csv"], rows)
    rundir.write_atomic(written["markdown"], depth_table_markdown(rows))
    return written


def depth_table_markdown(rows):
    """Table 6's columns: ours beside the paper's and akamaster's, with the wall time here."""
    lines = [
        "| network | layers | params | iterations | test error: ours | paper | akamaster "
        "| wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def percent(value):
        return "" if value is None else f"{100 * value:.2f}%"

    for row in rows:
        if row["finished"]:
            iterations = f"{row['steps']:,}"
            ours = percent(row["test_top1_error"])
            params = f"{row['parameters'] / 1e6:.2f}M"
        else:
            iterations = f"{row['steps']:,} of {row['total_steps']:,}"
            ours = f"training: {percent(row['latest_test_top1_error'])} so far"
            params = ""
        lines.append(
            f"| {row['model']} | {row['layers']} | {params} | {iterations} | {ours} | "
            f"{percent(row['paper_test_error'])} | {percent(row['akamaster_test_error'])} | "
            f"{row['hours']:.1f} h |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- output
# ---------------------------------------------------------------- command line
def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sweeps = {
        "degradation": (
            "Fig. 6: plain and residual nets, training and test error against iterations; "
            "then Fig. 7 from the same nets",
            DEGRADATION_DEPTHS,
            "runs/degradation",
        ),
        "depth-table": (
            "Table 6: residual nets of several depths, parameters and test error",
            TABLE_DEPTHS,
            "runs/depth-table",
        ),
    }
    for name, (help_text, depths, output_dir) in sweeps.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--depths",
            type=int,
            nargs="+",
            default=list(depths),
            help=f"CIFAR depths 6n+2 (default: {' '.join(map(str, depths))})",
        )
        command.add_argument(
            "--output-dir",
            default=output_dir,
            help=f"one run directory per net, and the results (default: {output_dir})",
        )
        command.add_argument(
            "--results-dir",
            help="what to commit: each net's config, history, summary and layer "
            "responses, and the figures drawn from them; a net whose results are here "
            "is not trained again; the running net's last checkpoint is kept here until it "
            "finishes, and a lost run directory goes on from it (default: --output-dir)",
        )
        config_lib.add_config_flags(command, skip=("depth", "plain", "output_dir"))
    command = commands.add_parser(
        "redraw",
        help="Fig. 6 and Fig. 7 again from the CSVs of --results-dir, in seconds",
        description="Redraws degradation.png and layer_responses.png from their CSVs.",
    )
    command.add_argument("--results-dir", required=True, help="folder with the CSVs")
    command = commands.add_parser(
        "layer-responses",
        help="Fig. 7: std of each 3x3 layer's response over the test set",
        description="Fig. 7: std of each 3x3 layer's response over the test set",
    )
    command.add_argument(
        "--model",
        action="append",
        required=True,
        help="run directory or .keras file; repeat for several models",
    )
    data_lib.add_evaluation_data_flags(command)
    command.add_argument(
        "--output-dir",
        default="runs/layer-responses",
        help="where the CSV and PNG go (default: runs/layer-responses)",
    )
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input or a failed run)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        if args.command == "redraw":
            redraw(args.results_dir)
            return 0
        if args.command == "layer-responses":
            if args.batch_size < 1:
                raise ValueError(f"--batch-size must be positive, received {args.batch_size}.")
            data = data_lib.load_test_data(
                args.dataset, args.data_dir, args.tfds_data_dir, args.image_size
            )
            layer_response_analysis(args.model, data, args.output_dir, args.batch_size)
            return 0
        if len(set(args.depths)) != len(args.depths):
            raise ValueError(f"--depths has repeated values: {args.depths}.")
        fields = {f.name for f in dataclasses.fields(config_lib.TrainConfig)}
        config = config_lib.TrainConfig(
            **{k: v for k, v in vars(args).items() if k in fields and k != "output_dir"}
        )
        if args.command == "degradation":
            degradation(config, args.depths, args.output_dir, args.results_dir)
        else:
            depth_table(config, args.depths, args.output_dir, args.results_dir)
        return 0

    return run_command(f"{parser.prog} {args.command}", run)


if __name__ == "__main__":
    sys.exit(main())
