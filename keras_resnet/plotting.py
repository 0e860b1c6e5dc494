"""Every figure keras_resnet draws, written whole or not at all (PNG).

matplotlib is imported when a figure is drawn, with its file-only backend, so
that importing keras_resnet neither needs a display nor pays for matplotlib.
"""

import numpy as np

from keras_resnet import files


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=100):
    """Writes `fig` to `path` atomically and closes it."""
    with files.atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=dpi)
    _pyplot().close(fig)


def plot_history(history, path):
    """Training curves of a run (error and loss against steps)."""
    plt = _pyplot()
    steps = [row["step"] for row in history]
    fig, (err, loss) = plt.subplots(1, 2, figsize=(10, 4))
    err.plot(steps, [100 * row["top1_error"] for row in history], "--", label="train")
    if history[0]["val_top1_error"] is not None:
        err.plot(
            steps, [100 * row["val_top1_error"] for row in history], "-", lw=2, label="validation"
        )
    err.set(xlabel="iterations", ylabel="top-1 error (%)", title="error")
    loss.plot(steps, [row["loss"] for row in history], "--", label="train")
    if history[0]["val_loss"] is not None:
        loss.plot(steps, [row["val_loss"] for row in history], "-", lw=2, label="validation")
    loss.set(xlabel="iterations", ylabel="loss", title="loss")
    for axis in (err, loss):
        axis.legend()
        axis.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_comparison(runs, path):
    """Runs side by side, epoch by epoch: validation top-1/3/5 accuracy and the losses.

    Args:
        runs: list of `(label, history)`, a history being the rows of a run's
            `history.csv` (`rundir.HISTORY_FIELDS`). A metric a run lacks
            (top-3 with three classes or fewer) is left out of its panel.
        path: the PNG to write.
    """
    plt = _pyplot()
    panels = (
        ("val_top1_error", "validation top-1 accuracy (%)"),
        ("val_top3_error", "validation top-3 accuracy (%)"),
        ("val_top5_error", "validation top-5 accuracy (%)"),
        ("top1_error", "training top-1 accuracy (%)"),
        ("loss", "training loss"),
        ("val_loss", "validation loss"),
    )
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for axis, (key, title) in zip(axes.flat, panels):
        for label, history in runs:
            rows = [row for row in history if row.get(key) is not None]
            if not rows:
                continue
            values = [row[key] if "loss" in key else 100 * (1 - row[key]) for row in rows]
            style = {"color": "black", "ls": "--"} if label == "baseline" else {}
            axis.plot([row["epoch"] for row in rows], values, marker=".", label=label, **style)
        axis.set(xlabel="epoch", title=title)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_lr_find(rows, suggested_lr, path):
    """The range test: loss against the learning rate on a log axis, the suggestion marked."""
    plt = _pyplot()
    rates = [row["learning_rate"] for row in rows]
    fig, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(rates, [row["loss"] for row in rows], color="0.75", lw=1, label="loss per step")
    axis.plot(rates, [row["smoothed_loss"] for row in rows], lw=2, label="smoothed loss")
    if suggested_lr is not None:
        axis.axvline(suggested_lr, color="C3", ls="--", label=f"suggested {suggested_lr:.3g}")
    finite = [row["smoothed_loss"] for row in rows if np.isfinite(row["smoothed_loss"])]
    if finite:  # the divergence at the end would hide the part that matters
        axis.set_ylim(0.9 * min(finite), 1.2 * max(finite[0], min(finite) * 2))
    axis.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="range test")
    axis.legend()
    axis.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(report, class_names, path, title=""):
    """The confusion matrix of an evaluation report (counts, row-normalised colours)."""
    plt = _pyplot()
    counts = np.asarray(report["confusion_matrix"])
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.5 * len(class_names) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90)
    axis.set_yticks(ticks, class_names)
    axis.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"{title} top-1 error {100 * report['top1_error']:.2f}%".strip(),
    )
    if len(class_names) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            axis.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[row, column] > 0.5 else "black",
            )
    fig.tight_layout()
    save_figure(fig, path)


def plot_degradation(rows, path, test_label="test"):
    """Fig. 6's layout: plain nets left, residual nets right, a colour per depth and seed.

    A panel is drawn only for the kind of net `rows` has (Table 6's sweep has
    residual nets only).

    Args:
        rows: dicts with `model` (its label), `depth`, `plain`, `seed` (None
            where not recorded), `step`, `train_top1_error` and
            `heldout_top1_error` (None when not measured).
        test_label: what the held-out error was measured on.
    """
    plt = _pyplot()

    def net(row):  # the plain and residual net of one depth and seed share a colour
        return row["depth"], row.get("seed") or 0

    nets = sorted({net(row) for row in rows})
    colours = dict(zip(nets, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    kinds = [plain for plain in (True, False) if any(row["plain"] == plain for row in rows)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4.2), sharey=True)
    ends = []  # each curve's last error
    for axis, plain in zip(np.atleast_1d(axes), kinds):
        for key in nets:
            mine = [row for row in rows if row["plain"] == plain and net(row) == key]
            if not mine:
                continue
            steps = [row["step"] for row in mine]
            label = mine[0]["model"]
            last = max(mine, key=lambda row: row["step"])
            ends.append(last["heldout_top1_error"] or last["train_top1_error"])
            axis.plot(
                steps,
                [100 * row["train_top1_error"] for row in mine],
                "--",
                lw=1,
                color=colours[key],
                label=f"{label} train",
            )
            if mine[0]["heldout_top1_error"] is not None:
                axis.plot(
                    steps,
                    [100 * row["heldout_top1_error"] for row in mine],
                    "-",
                    lw=2.2,
                    color=colours[key],
                    label=f"{label} {test_label}",
                )
        axis.set(
            title="plain networks" if plain else "residual networks (option A)",
            xlabel="iterations",
            ylabel="error (%)",
        )
        axis.grid(alpha=0.3)
        if axis.lines:  # a sweep part way through may have no net of one kind yet
            axis.legend(fontsize=8)
    # The paper's axes, 0-20%, where every net ends well inside them: final errors a point
    # apart can then be told apart. Otherwise (short runs, the JPEG copy) matplotlib's.
    if max(ends) < 0.15:
        for axis in np.atleast_1d(axes):
            axis.set_ylim(0, 20)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_layer_responses(responses, path):
    """Fig. 7's layout: std by layer index (top) and sorted by magnitude (bottom).

    Args:
        responses: {label: [(layer name, std), ...]}; labels starting with
            "plain" are drawn dashed.
    """
    plt = _pyplot()
    fig, (ordered, ranked) = plt.subplots(2, 1, figsize=(8, 6.5))
    for label, values in responses.items():
        stds = [std for _, std in values]
        style = "--" if label.startswith("plain") else "-"
        index = np.arange(1, len(stds) + 1)
        ordered.plot(index, stds, style, marker=".", lw=1.2, label=label)
        ranked.plot(index, sorted(stds, reverse=True), style, marker=".", lw=1.2, label=label)
    ordered.set(xlabel="layer index (original)", ylabel="std")
    ranked.set(xlabel="layer index (sorted by magnitude)", ylabel="std")
    for axis in (ordered, ranked):
        axis.xaxis.get_major_locator().set_params(integer=True)  # layer indices
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(
        "Standard deviation of the 3x3 layers' responses (after BN, before ReLU/addition)",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
