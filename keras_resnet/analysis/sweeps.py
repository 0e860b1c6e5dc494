"""The sweeps: Fig. 6 (`degradation`) and Table 6 (`depth_table`), trained and resumed.

A sweep trains one net per (depth, plain) pair with one recipe, each an
ordinary run directory `<output_dir>/<run name>` (`reports.run_name`:
`resnet56`, or `resnet56-seed1` for another `--seed`), so a killed sweep
resumes where it stopped and finished runs are collected, not retrained.

Its results folder (`results_dir`) holds what is worth committing, a folder
per net named as its run, and is how a sweep longer than one machine's
session goes on elsewhere:

    <results_dir>/<run name>/layer_responses.csv   Fig. 7's rows, measured as the net finishes
                            /weights.npz           its final weights (`FINAL_WEIGHTS`)
                            /config.json, history.csv, summary.json   copied from the run
                                                   directory; summary.json last, as it marks
                                                   the net's results complete (`RESULT_FILES`)
                            /checkpoint/           while the net trains: a copy of its last
                                                   two checkpoints, with config.json and
                                                   history.csv beside it, updated after every
                                                   epoch

A net whose results are complete there is not trained again, even where its
run directory is gone; a run directory that is lost, or behind the copy,
goes on from the copy. A results folder holds one recipe: its nets differ
only in what `NET_FIELDS` names, so a sweep of other depths, or of another
seed (Table 6's runs of ResNet-56 with seeds 0 and 1), adds rows to the same
tables. After each net the sweep redraws the tables and figures of every net
in the folder from the folder alone (`write_reports`), as `redraw` does at
any time.
"""

import dataclasses
import os

import keras

from keras_resnet import callbacks, files, model_files, planning, rundir, runtime, training
from keras_resnet import config as config_lib
from keras_resnet import data as data_lib
from keras_resnet import weights as weights_lib
from keras_resnet.analysis import reports, responses

DEGRADATION_DEPTHS = (20, 32, 44, 56)  # Fig. 6
TABLE_DEPTHS = (20, 32, 44, 56, 110)  # Table 6
# A net's results, written as it finishes (summary.json last): small files to commit, from
# which the tables and figures are drawn without the weights. A run's own results
# (`rundir.RESULT_FILES`) and the layer responses the sweep measures of it.
RESULT_FILES = (reports.RESPONSES.file_name, *rundir.RESULT_FILES)
# A finished net's final weights in its results folder; not required of results written before
# the sweeps kept them.
FINAL_WEIGHTS = "weights.npz"
# Record fields in which the nets of one results folder may differ: which net it is, and what
# the recipe derives from the net (ResNet-110's warm-up).
NET_FIELDS = ("depth", "plain", "seed", "warmup_steps")
# The folder's one recipe: the rest of `rundir.RECIPE_FIELDS`, the warm-up asked for (none:
# the recipe's own), and batch norm's batch (64 images a replica on the paper's two GPUs).
FOLDER_RECIPE_FIELDS = (
    *(field for field in rundir.RECIPE_FIELDS if field not in NET_FIELDS),
    "warmup",
    "per_replica_batch_size",
)


def degradation(
    config, depths=DEGRADATION_DEPTHS, output_dir="runs/degradation", results_dir=None, log=print
):
    """Fig. 6 and Fig. 7: trains the plain and residual nets of `depths`, draws both.

    The plain and the residual (option A) CIFAR net of each depth, with one
    recipe; `run_sweep` says how they are trained, kept and drawn.

    Args:
        config: `TrainConfig` of the shared recipe and data.
        depths: CIFAR depths 6n+2.
        output_dir: one run directory per net (weights and all).
        results_dir: what is worth committing. Default: `output_dir`.
        log: function taking one line of progress text.

    Returns:
        `write_reports`'s dict.
    """
    nets = [(depth, plain) for plain in (True, False) for depth in depths]
    return run_sweep(config, nets, output_dir, results_dir, log)


def depth_table(
    config, depths=TABLE_DEPTHS, output_dir="runs/depth-table", results_dir=None, log=print
):
    """Table 6: trains (or collects) the residual nets of `depths` and tables them.

    Args:
        config: `TrainConfig` of the shared recipe and data.
        depths: CIFAR depths 6n+2, trained in this order.
        output_dir: one run directory per net (weights and all).
        results_dir: what is worth committing. Default: `output_dir`.
        log: function taking one line of progress text.

    Returns:
        `write_reports`'s dict: Table 6's, unless `results_dir` holds plain nets too.
    """
    return run_sweep(config, [(depth, False) for depth in depths], output_dir, results_dir, log)


def run_sweep(config, nets, output_dir, results_dir=None, log=print):
    """Trains `nets` (`train_sweep`), redrawing the reports after each; logs the final table.

    As each net finishes, its results are written to `<results_dir>/<run
    name>/` and the tables and figures of every net in that folder are
    redrawn from the folder alone (`write_reports`). So a sweep stopped part
    way leaves its finished nets tabled and drawn, committed results carry a
    long sweep across machines, and a later sweep into the same folder (more
    depths, another seed) adds its nets to the same tables.

    Args:
        config: `TrainConfig` of the shared recipe and data.
        nets: list of (depth, plain) pairs, in the order to train them (the
            tables follow `sweep_names`).
        output_dir: one run directory per net (weights and all).
        results_dir: the folder of what is worth committing: each net's
            results and the reports drawn from them. Default: `output_dir`.
        log: function taking one line of progress text.

    Returns:
        `write_reports`'s dict.
    """
    results_dir = results_dir or output_dir
    files.check_writable(results_dir, "results_dir")  # before hours of training, not after
    train_sweep(
        config,
        nets,
        output_dir,
        log,
        results_dir=results_dir,
        on_result=lambda: write_reports(results_dir, log),
    )
    written = write_reports(results_dir, log)
    with open(written["markdown"]) as f:
        log(f.read().rstrip())
    return written


def train_sweep(config, nets, output_dir, log=print, results_dir=None, on_result=None):
    """Trains (or resumes, or collects) one run per net with one recipe.

    Args:
        config: `TrainConfig` of the shared recipe and data; its depth, plain
            and output_dir are set per net.
        nets: list of (depth, plain) pairs.
        output_dir: folder holding one run directory per net.
        log: function taking one line of progress text.
        results_dir: optional folder of the sweep's results, a folder per net
            (see the module docstring): a net whose results are complete there
            is not trained again; the running net's checkpoint is copied there
            after every epoch, and a run directory that is lost, or behind
            that copy, goes on from it.
        on_result: optional function called with no arguments after each net's
            results are written (a sweep redraws its reports).

    Returns:
        ({run name: summary dict}, the `Data` trained on).

    Raises:
        ValueError: for an invalid depth or config, or a net of another
            recipe in `results_dir` (`check_one_recipe`), before any training.
    """
    for depth, plain in nets:  # a mistyped depth before the data loads (it may download)
        config_lib.check(dataclasses.replace(config, depth=depth, plain=plain))
    strategy = runtime.setup_devices(config)
    data = planning.load_config_data(config)
    plans, summaries = {}, {}
    names = [reports.run_name(depth, plain, config.seed) for depth, plain in nets]
    for (depth, plain), name in zip(nets, names):  # every net planned (and checked) first
        net = dataclasses.replace(
            config, depth=depth, plain=plain, output_dir=os.path.join(output_dir, name)
        )
        folder = results_dir and os.path.join(results_dir, name)
        copy = bool(folder) and os.path.abspath(folder) != os.path.abspath(net.output_dir)
        if copy and _has_results(folder):  # finished: a copy left by a stop is of no use
            rundir.drop_checkpoint_copy(folder)
        elif copy:  # a lost run directory, or one behind the copy, goes on from the copy
            _restore_checkpoint_copy(net.output_dir, folder, log)
        plan = planning.prepare(net, data, strategy)
        data = plan.data  # in the weights' channels: converted for the first net only
        finished = bool(folder) and finished_results(folder, plan.record)
        if folder:
            check_one_recipe(results_dir, name, plan.record)
        if finished:
            summaries[name] = rundir.RunDir(folder).summary()
        else:
            copies = [callbacks.CopyCheckpoint(plan.run_dir, folder)] if copy else []
            plans[name] = plan, folder, copies
    for name in summaries:
        log(f"--- {reports.display_name(name)}: finished, its results are in {results_dir}/{name}")
    for name, (plan, folder, copies) in plans.items():
        log(f"--- {reports.display_name(name)}: {plan.run_dir.path}")
        keras.utils.set_random_seed(plan.config.seed)  # every net starts from the same seed
        trained = training.train(plan, strategy, log, extra_callbacks=copies)
        summaries[name] = training.finish(trained)
        if folder:
            keep_results(plan, folder)
            if on_result:
                on_result()
    return {name: summaries[name] for name in names}, data


def _restore_checkpoint_copy(run_dir, folder, log):
    """Restores `run_dir` from the checkpoint copy in `folder` where the copy is further on."""
    restored = rundir.RunDir(run_dir).restore_checkpoint_copy(folder)
    if restored:
        log(
            f"Restored {run_dir} from the checkpoint kept in {folder} (epoch "
            f"{restored['epoch']}, step {restored['step']}); TensorBoard logs before it "
            "stay with the lost run directory."
        )


def keep_results(plan, folder):
    """Writes a finished net's results to its results folder; drops its checkpoint copy.

    Its Fig. 7 responses are measured now, on the test images (they choose
    nothing), and its final weights are kept as `FINAL_WEIGHTS` (this
    package's `.npz`, which `weights=path` loads), so that they outlive the run
    directory: the candidates for the packaged `weights="cifar10"`. Then the
    run's own results (`rundir.RESULT_FILES`), `summary.json` last, as it marks
    the results complete.

    Args:
        plan: the net's `keras_resnet.planning.RunPlan`, its run finished.
        folder: the net's results folder.
    """
    data, record = plan.data, plan.record
    model = model_files.load_model(plan.run_dir.path, saved_model=False).model
    measured = responses.layer_responses(model, data_lib.eval_dataset(data, data.test, 256))
    label = reports.display_name(os.path.basename(plan.run_dir.path))
    reports.RESPONSES.write(folder, responses.response_rows(label, measured))
    source = (
        f"keras_resnet's own {label}, trained with the {record['recipe']} recipe for "
        f"{record['total_steps']} steps on {record['dataset']} (a sweep's {plan.run_dir.path})"
    )
    pretrained = weights_lib.Pretrained.from_model(model, plan.spec, source)
    weights_lib.npz.save(pretrained, os.path.join(folder, FINAL_WEIGHTS))
    plan.run_dir.copy_results(folder)


def check_one_recipe(results_dir, name, record):
    """Refuses to add net `name` of `record`'s recipe to a results folder of another recipe.

    The other nets in `results_dir` (`sweep_names`) must share every field of
    `FOLDER_RECIPE_FIELDS` with `record`: the folder's tables and figures
    draw them as one recipe. The net's own folder is `finished_results`'s to
    judge, on every field of `rundir.RECIPE_FIELDS`.

    Raises:
        ValueError: naming the first net that differs, and how.
    """
    for other in sweep_names(results_dir):
        if other == name:
            continue
        path = os.path.join(results_dir, other)
        recorded = _recorded(rundir.RunDir(path))
        changed = rundir.config_changes(recorded, record, FOLDER_RECIPE_FIELDS)
        if changed:
            raise ValueError(
                f"{path!r} holds the results of another recipe ({changed}); a results "
                "folder's tables and figures are of one recipe: choose another --results-dir."
            )


def _has_results(folder):
    """Whether a net's results folder holds every file of `RESULT_FILES` (a finished net)."""
    return all(os.path.exists(os.path.join(folder, name)) for name in RESULT_FILES)


def _recorded(folder):
    """A net's results folder's `config.json`; an error naming it when it is missing."""
    recorded = folder.record()
    if recorded is None:
        raise ValueError(
            f"{folder.path!r} has a history.csv but no config.json: its recipe is unknown; "
            "restore the file, or choose another --results-dir."
        )
    return recorded


def finished_results(folder, record):
    """Whether `folder` holds a net's complete results (`RESULT_FILES`) of `record`'s recipe.

    Args:
        folder: a net's results folder.
        record: the record (`RunPlan.record`) of the run the sweep would train.

    Raises:
        ValueError: when the files are there but record another recipe
            (`rundir.RECIPE_FIELDS`): a sweep never draws two recipes as one.
    """
    if not os.path.exists(os.path.join(folder, reports.RESPONSES.file_name)):
        return False
    return rundir.RunDir(folder).finished_results(record)


# ---------------------------------------------------------------- reports
def read_results(results_dir, names):
    """The `reports.NetResults` of the nets of `names` that have a history in `results_dir`.

    A net counts as finished (its summary and responses read) once its
    folder holds every file of `RESULT_FILES`.
    """
    nets = []
    for name in names:
        folder = rundir.RunDir(os.path.join(results_dir, name))
        history = folder.history()
        if not history:
            continue
        finished = _has_results(folder.path)
        nets.append(
            reports.NetResults(
                name=name,
                record=_recorded(folder),
                history=history,
                summary=folder.summary() if finished else None,
                responses=reports.RESPONSES.read(folder.path) if finished else None,
            )
        )
    return nets


def write_reports(results_dir, log=print):
    """The tables and figures of every net in a sweep's results folder (`sweep_names`).

    A folder of residual nets only is Table 6's (`reports.write_depth_table`,
    which draws the figures too); one with plain nets is Fig. 6's
    (`reports.write_figures`). Nets without results yet are left out; those
    still training are in Table 6, with how far they are.

    Returns:
        The dict of the report written; empty when the folder has no net yet, or
        for Fig. 6 before any net has finished.
    """
    names = sweep_names(results_dir)
    if not names:
        return {}
    nets = read_results(results_dir, names)
    if any(reports.parse_run_name(name).plain for name in names):
        written = reports.write_figures(results_dir, nets)
    else:
        written = reports.write_depth_table(results_dir, nets)
    finished = sum(net.finished for net in nets)
    if finished:
        log(f"Wrote Fig. 6 and Fig. 7 of {finished} of {len(names)} nets in {results_dir}")
    return written


def sweep_names(results_dir):
    """The nets of a results folder (`plain20`, `resnet56`, `resnet56-seed1`, ...).

    Plain nets first, then by depth, then by seed.

    A net counts once its folder has a `history.csv` (a running net's, copied
    after every epoch, or a finished one's).
    """
    names = [
        name
        for name in (os.listdir(results_dir) if os.path.isdir(results_dir) else [])
        if reports.parse_run_name(name)
        and os.path.exists(os.path.join(results_dir, name, "history.csv"))
    ]
    return sorted(names, key=lambda name: _order(reports.parse_run_name(name)))


def _order(parsed):
    """Where a net (`reports.RunName`) comes in a folder's tables: plain, depth, seed."""
    return not parsed.plain, parsed.depth, parsed.seed


def redraw(results_dir, log=print):
    """Redraws a results folder's tables and figures without training anything.

    A sweep's folder (a subfolder per net) is redrawn from the nets' own
    files (`write_reports`). A folder of CSVs alone (the `layer-responses`
    command's), or a Fig. 6 sweep's none of whose nets has all its
    `RESULT_FILES`, is redrawn from `degradation.csv` and
    `layer_responses.csv`, whichever exist.

    Returns:
        The PNG paths written.

    Raises:
        ValueError: when `results_dir` holds neither nets nor CSVs.
    """
    written = write_reports(results_dir, log=lambda line: None)
    if written:
        pngs = [written[key] for key in ("png", "layer_responses_png") if key in written]
        log(f"Wrote {', '.join([written['markdown'], *pngs])}")
        return pngs
    pngs = reports.draw_from_csvs(results_dir)
    log(f"Wrote {' and '.join(pngs)}")
    return pngs
