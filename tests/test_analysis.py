import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from keras_resnet import analysis
from keras_resnet import config as config_lib
from keras_resnet.cli import analysis as analysis_cli


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("depth, plain, expected", [(8, False, 7), (8, True, 7), (20, False, 19)])
def test_response_layers_are_the_bn_after_every_3x3_conv(depth, plain, expected):
    model = keras_resnet.ResNet(
        depth, stem="cifar", plain=plain, input_shape=(32, 32, 3), classes=10
    )
    layers = analysis.response_layers(model)
    assert len(layers) == expected  # the stem conv and two per basic block
    assert layers[0].name == "conv1_bn" and layers[1].name == "conv2_block1_1_bn"
    assert all(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)


@pytest.mark.parametrize(
    "freeze, unfreeze_from, expected",
    [(False, None, 75_290), (True, None, 650), (True, "conv4", 650 + 55_552)],
)
def test_a_running_nets_table_row_counts_the_parameters_its_run_trains(
    freeze, unfreeze_from, expected
):
    from keras_resnet.analysis import reports

    record = {
        "depth": 8,
        "stem": "cifar",
        "shortcut": None,
        "plain": False,
        "bottleneck_stride": None,
        "freeze_backbone": freeze,
        "unfreeze_from": unfreeze_from,
        "total_steps": 6,
        "data": {"image_shape": [32, 32, 3], "class_names": [str(i) for i in range(10)]},
    }
    row = reports.depth_table_row(reports.NetResults("resnet8", record, history=[]))
    assert row["parameters"] == expected and not row["finished"]


def test_response_layers_of_a_bottleneck_net_are_its_3x3_convs_only():
    model = keras_resnet.ResNet50(input_shape=(64, 64, 3), classes=10)
    layers = analysis.response_layers(model)
    assert len(layers) == 16  # one 3x3 per bottleneck block; the 7x7 stem is not one
    assert all(layer.name.endswith("_2_bn") for layer in layers)


def test_layer_responses_equal_per_channel_std_computed_directly():
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(16, 16, 3), classes=10)
    images = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 3)).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(20, np.int32))).batch(7)
    responses = analysis.layer_responses(model, dataset)
    probe = keras.Model(model.inputs, model.get_layer("conv3_block1_2_bn").output)
    outputs = probe.predict(images.astype(np.float32), verbose=0).astype(np.float64)
    expected = outputs.reshape(-1, outputs.shape[-1]).std(axis=0).mean()
    assert dict(responses)["conv3_block1_2_bn"] == pytest.approx(expected, rel=1e-4)
    assert [name for name, _ in responses] == [l.name for l in analysis.response_layers(model)]


@pytest.mark.slow
def test_degradation_depth_table_and_layer_responses_on_real_cifar(cifar_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    common = [
        "--dataset",
        "cifar10",
        "--data-dir",
        str(cifar_dir),
        "--steps",
        "4",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "32",
        "--output-dir",
        str(out),
    ]
    results = tmp_path / "results"
    assert (
        analysis_cli.main(["degradation", "--depths", "8", *common, "--results-dir", str(results)])
        == 0
    )
    rows = _read_csv(results / "degradation.csv")
    assert [(r["model"], int(r["step"])) for r in rows] == [
        ("plain-8", 2),
        ("plain-8", 4),
        ("ResNet-8", 2),
        ("ResNet-8", 4),
    ]
    assert all(
        0 <= float(r["train_top1_error"]) <= 1 and 0 <= float(r["heldout_top1_error"]) <= 1
        for r in rows
    )
    assert {r["evaluated_on"] for r in rows} == {"test"}
    assert _is_png(results / "degradation.png")
    # Fig. 7 from the same two nets, in the same folder.
    responses = _read_csv(results / "layer_responses.csv")
    assert [r["model"] for r in responses] == ["plain-8"] * 7 + ["ResNet-8"] * 7
    assert _is_png(results / "layer_responses.png")
    assert (out / "plain8" / "model.keras").is_file() and (out / "resnet8" / "saved_model").is_dir()
    # The results folder holds what is worth committing: tables, small files, and the final
    # weights in this package's .npz, which load into the network they came from exactly.
    for name in ("plain8", "resnet8"):
        assert sorted(os.listdir(results / name)) == [
            "config.json",
            "history.csv",
            "layer_responses.csv",
            "summary.json",
            "weights.npz",
        ]
    trained = keras.saving.load_model(out / "resnet8" / "model.keras")
    kept = keras_resnet.ResNet(8, stem="cifar", weights=str(results / "resnet8" / "weights.npz"))
    images = np.random.RandomState(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(kept.predict(images, verbose=0), trained.predict(images, verbose=0))
    summary = json.loads((results / "resnet8" / "summary.json").read_text())
    table = (results / "degradation.md").read_text()
    assert "| ResNet-8 | 4 | " in table and f"{100 * summary['test_top1_error']:.2f}%" in table

    # Results are rewritten as each run finishes: when ResNet-8 starts, plain-8 is tabled.
    partial = tmp_path / "partial"
    seen = {}

    def log(line):
        if line.startswith("--- ResNet-8"):
            seen["models"] = [r["model"] for r in _read_csv(partial / "degradation.csv")]
            seen["table"] = (partial / "degradation.md").read_text()

    config = config_lib.TrainConfig(
        dataset="cifar10", data_dir=str(cifar_dir), steps=4, steps_per_epoch=2, batch_size=32
    )
    analysis.degradation(config, [8], str(out), str(partial), log=log)
    assert seen["models"] == ["plain-8", "plain-8"]
    assert "| plain-8 | 4 |" in seen["table"] and "ResNet-8" not in seen["table"]
    assert (partial / "degradation.md").read_text() == table

    # Nets whose results are complete are not trained again, even where their run directories
    # are gone: how a sweep longer than a machine's session goes on from committed results.
    elsewhere, lines = tmp_path / "elsewhere", []
    written = analysis.degradation(config, [8], str(elsewhere), str(results), log=lines.append)
    assert list(written["final"]) == ["plain-8", "ResNet-8"]
    assert sum("finished, its results are in" in line for line in lines) == 2
    assert not elsewhere.exists()
    assert (results / "degradation.md").read_text() == table
    # Results of another recipe are refused, naming the folder and the difference.
    other = [*common[:4], "--steps", "6", *common[6:10], "--output-dir", str(elsewhere)]
    assert (
        analysis_cli.main(["degradation", "--depths", "8", *other, "--results-dir", str(results)])
        == 1
    )
    error = capsys.readouterr().err
    assert "plain8' holds the results of another recipe" in error and "total_steps: 4 -> 6" in error
    assert not elsewhere.exists() and (results / "degradation.md").read_text() == table

    # depth-table collects the finished ResNet-8 run instead of training it again.
    weights = out / "resnet8" / "model.keras"
    before = os.stat(weights).st_mtime_ns
    table_dir = tmp_path / "table"
    argv = ["depth-table", "--depths", "8", *common, "--results-dir", str(table_dir)]
    assert analysis_cli.main(argv) == 0
    assert os.stat(weights).st_mtime_ns == before
    assert "already finished" in capsys.readouterr().out
    table = _read_csv(table_dir / "depth_table.csv")
    assert table[0]["model"] == "ResNet-8" and int(table[0]["parameters"]) == 75_290
    assert "| ResNet-8 | 8 | 0.08M | 4 | " in (table_dir / "depth_table.md").read_text()
    assert _is_png(table_dir / "degradation.png") and _is_png(table_dir / "layer_responses.png")
    # A second seed of the same recipe is another net of the same folder: its own run, its row
    # beneath the first seed's. A net of another recipe is refused before any training.
    seed1 = ["depth-table", "--depths", "8", "--seed", "1", *common, "--results-dir"]
    assert analysis_cli.main([*seed1, str(table_dir)]) == 0
    table = _read_csv(table_dir / "depth_table.csv")
    assert [(row["model"], row["seed"]) for row in table] == [
        ("ResNet-8", "0"),
        ("ResNet-8, seed 1", "1"),
    ]
    markdown = (table_dir / "depth_table.md").read_text()
    assert "| ResNet-8 | 8 | 0.08M | 4 | " in markdown
    assert "| ResNet-8, seed 1 | 8 | 0.08M | 4 | " in markdown
    assert json.loads((table_dir / "resnet8-seed1" / "config.json").read_text())["seed"] == 1
    first, second = (
        np.load(table_dir / name / "weights.npz") for name in ("resnet8", "resnet8-seed1")
    )
    assert not all(np.array_equal(first[key], second[key]) for key in first.files)
    assert os.stat(weights).st_mtime_ns == before  # the first seed's run is not trained again
    capsys.readouterr()
    other = ["depth-table", "--depths", "8", "--seed", "2", "--lr", "0.05", *common]
    assert analysis_cli.main([*other, "--results-dir", str(table_dir)]) == 1
    error = capsys.readouterr().err
    assert "resnet8' holds the results of another recipe (lr: 0.1 -> 0.05)" in error
    assert not (out / "resnet8-seed2").exists() and not (table_dir / "resnet8-seed2").exists()
    assert (table_dir / "depth_table.md").read_text() == markdown

    responses = tmp_path / "responses"
    assert (
        analysis_cli.main(
            [
                "layer-responses",
                "--dataset",
                "cifar10",
                "--data-dir",
                str(cifar_dir),
                "--model",
                str(out / "plain8"),
                "--model",
                str(out / "resnet8" / "model.keras"),
                "--output-dir",
                str(responses),
            ]
        )
        == 0
    )
    rows = _read_csv(responses / "layer_responses.csv")
    assert [r["model"] for r in rows] == ["plain-8"] * 7 + ["ResNet-8"] * 7
    assert sorted(int(r["rank"]) for r in rows[:7]) == list(range(1, 8))
    assert all(float(r["std"]) > 0 for r in rows)
    # The sweep measured the same responses as each net finished.
    swept = _read_csv(results / "layer_responses.csv")
    assert [r["layer"] for r in swept] == [r["layer"] for r in rows]
    assert [float(r["std"]) for r in swept] == pytest.approx([float(r["std"]) for r in rows])
    assert _is_png(responses / "layer_responses.png")

    # Both figures again from the CSVs alone.
    (responses / "layer_responses.csv").rename(results / "layer_responses.csv")
    (results / "degradation.png").unlink()
    assert analysis_cli.main(["redraw", "--results-dir", str(results)]) == 0
    assert _is_png(results / "degradation.png") and _is_png(results / "layer_responses.png")
    assert analysis_cli.main(["redraw", "--results-dir", str(tmp_path / "empty")]) == 1
    assert "neither the results of a sweep's nets nor degradation.csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["degradation", "--depths", "20", "21"], "depth"),
        (["depth-table", "--depths", "20", "20"], "repeated"),
        (
            ["degradation", "--depths", "8", "--steps-per-epoch", "0"],
            "steps_per_epoch must be positive",
        ),
        (["layer-responses", "--model", "no/such/run"], "no/such/run"),
    ],
)
def test_bad_input_exits_1_naming_it_and_writes_nothing(argv, message, cifar_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*argv, "--dataset", "cifar10", "--data-dir", str(cifar_dir), "--output-dir", str(out)]
    assert analysis_cli.main(argv) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_unwritable_results_dir_fails_before_any_training(cifar_dir, tmp_path, capsys):
    blocker, out = tmp_path / "file", tmp_path / "out"
    blocker.write_text("")
    argv = ["degradation", "--depths", "8", "--dataset", "cifar10", "--data-dir", str(cifar_dir)]
    argv += ["--output-dir", str(out), "--results-dir", str(blocker / "results")]
    assert analysis_cli.main(argv) == 1
    assert "results_dir '" in (error := capsys.readouterr().err) and "is not a directory" in error
    assert not out.exists()


@pytest.mark.slow
def test_a_sweep_goes_on_from_the_checkpoint_kept_in_its_results_folder(
    cifar_dir, tmp_path, monkeypatch, capsys
):
    from keras_resnet import callbacks

    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["depth-table", "--depths", "8", "--dataset", "cifar10", "--data-dir", str(cifar_dir)]
    argv += ["--steps", "6", "--steps-per-epoch", "3", "--batch-size", "32"]
    argv += ["--output-dir", str(runs), "--results-dir", str(results)]
    copy = callbacks.CopyCheckpoint.on_epoch_end

    def copy_then_lose_the_machine(self, epoch, logs=None):
        copy(self, epoch, logs)
        raise KeyboardInterrupt  # the process ends right after the first epoch's copy

    monkeypatch.setattr(callbacks.CopyCheckpoint, "on_epoch_end", copy_then_lose_the_machine)
    assert analysis_cli.main(argv) == 130  # the command ends as on Ctrl-C
    kept = results / "resnet8"
    state = json.loads((kept / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 3)
    assert sorted(os.listdir(kept / "checkpoint")) == [
        "epoch-0001.weights.h5",
        "epoch-0001.weights.h5.state.json",
        "state.json",
    ]
    # The table shows how far the running net is (the sweep redraws it after each net, and
    # redraw does it from the results folder at any time).
    assert analysis_cli.main(["redraw", "--results-dir", str(results)]) == 0
    running = (results / "depth_table.md").read_text()
    assert "| ResNet-8 | 8 | 0.08M | 3 of 6 | " in running
    assert "% so far, still training |" in running and " h so far |" in running
    running_parameters = int(_read_csv(results / "depth_table.csv")[0]["parameters"])
    first = _read_csv(kept / "history.csv")
    assert [row["epoch"] for row in first] == ["1"]
    assert json.loads((kept / "config.json").read_text())["total_steps"] == 6

    shutil.rmtree(runs)  # the run directory is lost with its machine; the results folder is not
    monkeypatch.undo()
    capsys.readouterr()
    assert analysis_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Restored " in out and "(epoch 1, step 3)" in out
    assert "Resuming " in out and "from epoch 1 (step 3)" in out
    history = _read_csv(kept / "history.csv")
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert history[0] == first[0]  # the epoch trained before the loss, kept as it was
    # Finished: its results are complete and the checkpoint copy is gone.
    assert sorted(os.listdir(kept)) == [
        "config.json",
        "history.csv",
        "layer_responses.csv",
        "summary.json",
        "weights.npz",
    ]
    summary = json.loads((kept / "summary.json").read_text())
    assert summary["steps"] == 6
    assert running_parameters == summary["trainable_parameters"]  # counted as training counts
    table = (results / "depth_table.md").read_text()
    hours = sum(float(row["seconds"]) for row in history) / 3600
    assert (
        f"| ResNet-8 | 8 | 0.08M | 6 | {100 * summary['test_top1_error']:.2f}% |  |  | "
        f"{hours:.1f} h |" in table
    )
    assert _is_png(results / "degradation.png") and _is_png(results / "layer_responses.png")
    # Everything again from the results folder alone, the same.
    os.remove(results / "depth_table.md")
    os.remove(results / "degradation.png")
    assert analysis_cli.main(["redraw", "--results-dir", str(results)]) == 0
    assert (results / "depth_table.md").read_text() == table
    assert _is_png(results / "degradation.png")
    # A copy left beside the finished results (a stop, or a snapshot, while it was dropped)
    # is not restored: the net is finished, and the stale copy goes.
    os.makedirs(kept / "checkpoint")
    (kept / "checkpoint" / "state.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert analysis_cli.main(argv) == 0
    assert "ResNet-8: finished, its results are in" in capsys.readouterr().out
    assert not (kept / "checkpoint").exists()


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_layout_reads_back_the_rows_it_wrote(tmp_path):
    from keras_resnet.analysis import reports

    rows = [
        {
            "model": "plain-8",
            "depth": 8,
            "plain": True,
            "seed": 0,
            "step": 2,
            "train_top1_error": 0.5,
            "heldout_top1_error": None,
            "evaluated_on": "test",
        },
        {
            "model": "ResNet-8",
            "depth": 8,
            "plain": False,
            "seed": 1,
            "step": 4,
            "train_top1_error": 0.1 / 3,
            "heldout_top1_error": 0.25,
            "evaluated_on": "test",
            "extra": "left out",
        },
    ]
    path = reports.DEGRADATION.write(str(tmp_path), rows)
    assert path == str(tmp_path / "degradation.csv")
    assert reports.DEGRADATION.read(str(tmp_path)) == [
        {key: value for key, value in row.items() if key != "extra"} for row in rows
    ]
    first = (tmp_path / "degradation.csv").read_text()
    reports.DEGRADATION.write(str(tmp_path), reports.DEGRADATION.read(str(tmp_path)))
    assert (tmp_path / "degradation.csv").read_text() == first  # read and written back: the same


@pytest.mark.parametrize("folder", ["paper_evidence", "paper_evidence_20_epochs"])
def test_redrawing_committed_results_writes_the_same_tables(folder, tmp_path):
    source = os.path.join(REPO, "docs", folder)
    if not os.path.isdir(source):
        pytest.skip(f"docs/{folder} is not in this checkout")
    copy = tmp_path / folder
    shutil.copytree(source, copy)
    pngs = analysis.redraw(str(copy), log=lambda line: None)
    assert [os.path.basename(png) for png in pngs] == ["degradation.png", "layer_responses.png"]
    assert all(_is_png(png) for png in pngs)
    for name in os.listdir(source):
        if name.endswith((".csv", ".md")):
            with open(os.path.join(source, name), "rb") as f:
                assert (copy / name).read_bytes() == f.read(), name


def test_run_names_carry_the_seed_where_it_is_not_the_default():
    from keras_resnet.analysis import reports

    assert reports.run_name(56, False) == reports.run_name(56, False, 0) == "resnet56"
    assert reports.run_name(20, True, 3) == "plain20-seed3"
    for name, parsed, shown in [
        ("resnet56", (56, False, 0), "ResNet-56"),
        ("plain20", (20, True, 0), "plain-20"),
        ("resnet56-seed1", (56, False, 1), "ResNet-56, seed 1"),
    ]:
        assert reports.parse_run_name(name) == parsed
        assert reports.display_name(name) == shown
    for other in ("resnet56-seed0", "resnet056", "resnet56-seed01", "resnet56_seed1", "model"):
        assert reports.parse_run_name(other) is None and reports.display_name(other) == other


def test_a_results_folder_holds_one_recipe_whose_nets_differ_in_depth_and_seed(tmp_path):
    from keras_resnet.analysis import sweeps

    with open(os.path.join(REPO, "docs", "paper_table6", "resnet20", "config.json")) as f:
        record = json.load(f)  # ResNet-20's recipe as the Table 6 run recorded it

    def add(name, **changes):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({**record, **changes}))
        (tmp_path / name / "history.csv").write_text("epoch\n1\n")

    add("resnet20")
    add("resnet110", depth=110, warmup_steps=400)  # the warm-up its depth brings
    add("resnet56-seed1", depth=56, seed=1)
    add("plain20", plain=True)
    (tmp_path / "notes").mkdir()
    assert sweeps.sweep_names(str(tmp_path)) == [
        "plain20",
        "resnet20",
        "resnet56-seed1",
        "resnet110",
    ]
    sweeps.check_one_recipe(str(tmp_path), "resnet56", {**record, "depth": 56})
    # Trained on the JPEG copy: other pixels, however alike the recipe.
    jpeg = {
        **record["data"],
        "source": "folder /data/cifar10-jpeg",
        "fingerprint": "92a55615e29c686a",
    }
    with pytest.raises(ValueError, match="holds the results of another recipe") as error:
        sweeps.check_one_recipe(str(tmp_path), "resnet56", {**record, "depth": 56, "data": jpeg})
    assert "'folder /data/cifar10-jpeg' (other pixels)" in str(error.value)
    for changes, difference in [
        ({"lr": 0.05}, "lr: 0.1 -> 0.05"),
        ({"warmup": 400}, "warmup: None -> 400"),
        ({"per_replica_batch_size": 128}, "per_replica_batch_size: 64 -> 128"),
        ({"total_steps": 32_000}, "total_steps: 64000 -> 32000"),
    ]:
        with pytest.raises(ValueError, match="holds the results of another recipe") as error:
            sweeps.check_one_recipe(str(tmp_path), "resnet56", {**record, "depth": 56, **changes})
        assert f"plain20' holds the results of another recipe ({difference})" in str(error.value)
    # A net's own folder is `finished_results`'s to judge (it names a finished net's folder).
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copytree(tmp_path / "resnet20", alone / "resnet20")
    sweeps.check_one_recipe(str(alone), "resnet20", {**record, "lr": 0.05})
    (alone / "resnet56").mkdir()
    (alone / "resnet56" / "history.csv").write_text("epoch\n1\n")
    with pytest.raises(ValueError, match="resnet56' has a history.csv but no config.json"):
        sweeps.check_one_recipe(str(alone), "resnet20", record)
    with pytest.raises(ValueError, match="resnet56' has a history.csv but no config.json"):
        sweeps.redraw(str(alone))  # not a TypeError deep in the table


def test_a_second_seed_in_a_results_folder_gets_its_own_row_and_curves(monkeypatch, tmp_path):
    from keras_resnet import plotting

    source = os.path.join(REPO, "docs", "paper_table6", "resnet20")
    if not os.path.isfile(os.path.join(source, "summary.json")):
        pytest.skip("docs/paper_table6/resnet20 is not in this checkout")
    results = tmp_path / "table6"
    shutil.copytree(source, results / "resnet20")
    shutil.copytree(source, results / "resnet20-seed1")
    record = json.loads((results / "resnet20-seed1" / "config.json").read_text())
    (results / "resnet20-seed1" / "config.json").write_text(json.dumps({**record, "seed": 1}))
    history = results / "resnet20-seed1" / "history.csv"
    lines = history.read_text().splitlines()
    history.write_text(
        "\n".join(lines[:-1]) + "\n"
    )  # the same run one epoch shorter: its own curve
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path, dpi: figures.append(fig))
    analysis.redraw(str(results), log=lambda line: None)
    table = (results / "depth_table.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| ResNet-20", "| ResNet-20, seed 1"]
    fig6 = figures[0].axes[0]
    curves = {line.get_label(): len(line.get_xdata()) for line in fig6.lines}
    assert curves == {
        "ResNet-20 train": len(lines) - 1,
        "ResNet-20 test": len(lines) - 1,
        "ResNet-20, seed 1 train": len(lines) - 2,
        "ResNet-20, seed 1 test": len(lines) - 2,
    }
    colours = {line.get_label(): line.get_color() for line in fig6.lines}
    assert colours["ResNet-20 test"] != colours["ResNet-20, seed 1 test"]
    rows = _read_csv(results / "degradation.csv")
    assert {(row["model"], row["seed"]) for row in rows} == {
        ("ResNet-20", "0"),
        ("ResNet-20, seed 1", "1"),
    }


def test_fig6_has_the_papers_axes_only_where_every_net_ends_inside_them(monkeypatch, tmp_path):
    from keras_resnet import plotting

    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path, dpi: figures.append(fig))

    def rows(final):
        return [
            {"model": f"ResNet-{d}", "depth": d, "plain": False, "step": step,
             "train_top1_error": error / 2, "heldout_top1_error": error}
            for d in (20, 56) for step, error in ((400, 0.9), (64_000, final))
        ]  # fmt: skip

    plotting.plot_degradation(rows(0.08), tmp_path / "full_length.png")
    plotting.plot_degradation(rows(0.30), tmp_path / "short.png")
    assert figures[0].axes[0].get_ylim() == (0, 20)
    assert figures[1].axes[0].get_ylim()[1] > 90  # every point shown


def test_a_search_table_ranks_trials_and_says_the_gain_over_the_baseline():
    from keras_resnet.analysis import reports

    trials = [
        {
            "trial": "1",
            "val_accuracy": 0.91,
            "values": {"lr": 0.05, "depth": 20},
            "test_top1_error": 0.09,
        },
        {
            "trial": "0",
            "val_accuracy": 0.88,
            "values": {"lr": 0.123456, "depth": 32},
            "test_top1_error": None,
        },
    ]
    baseline = {"val_accuracy": 0.9, "values": {"lr": 0.1, "depth": 20}, "test_top1_error": 0.1}
    assert reports.search_markdown(trials, baseline).splitlines() == [
        "| rank | trial | val accuracy | lr | depth |",
        "|---:|---|---:|---|---|",
        "| 1 | 1 | 0.9100 | 0.05 | 20 |",
        "| 2 | 0 | 0.8800 | 0.1235 | 32 |",
        "| - | baseline | 0.9000 | 0.1 | 20 |",
        "",
        "Best trial 1 against the baseline (the recipe's defaults): validation accuracy 0.9100 "
        "vs 0.9000, 1.00 points better; test top-1 error 9.00% vs 10.00%, 1.00 points better "
        "(the test split chose nothing).",
    ]
    assert len(reports.search_markdown(trials).splitlines()) == 4  # no baseline: the trials


def test_a_model_file_that_cannot_be_read_is_named_before_any_data_is_read(tmp_path, capsys):
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"PK not a zip archive")
    argv = ["layer-responses", "--model", str(corrupt), "--dataset", "cifar10"]
    argv += ["--data-dir", str(tmp_path / "no-data"), "--output-dir", str(tmp_path / "out")]
    assert analysis_cli.main(argv) == 1
    error = capsys.readouterr().err
    assert str(corrupt) in error and "no-data" not in error
    assert not (tmp_path / "out").exists()
