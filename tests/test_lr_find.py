"""The learning-rate range test: its schedule, its suggestion rule and its command."""

import csv
import json
import math

import numpy as np
import pytest

from keras_resnet import lr_find, schedules


def test_exponential_schedule_rises_a_decade_per_equal_step():
    schedule = schedules.Exponential(1e-4, 1.0, 5)
    np.testing.assert_allclose([float(schedule(s)) for s in range(5)], [1e-4, 1e-3, 1e-2, 0.1, 1])
    with pytest.raises(ValueError, match="0 < min_lr < max_lr"):
        schedules.Exponential(1.0, 0.1, 5)


def test_suggestion_is_the_rate_at_the_lowest_smoothed_loss():
    rates = np.geomspace(1e-5, 10, 61)
    # A loss that falls until 0.1, then rises: lowest at 0.1, the suggestion.
    losses = 2 + (np.log10(rates) + 1) ** 2 / 10
    rows = [
        {"step": i, "learning_rate": r, "loss": v, "smoothed_loss": v}
        for i, (r, v) in enumerate(zip(rates, losses))
    ]
    assert lr_find.suggest(rows) == pytest.approx(0.1)
    rising = [dict(row, smoothed_loss=float(i)) for i, row in enumerate(rows)]
    assert lr_find.suggest(rising) is None
    rows[-1]["smoothed_loss"] = math.nan  # a diverged last step does not count
    assert lr_find.suggest(rows) == pytest.approx(0.1)


def test_range_test_command_on_real_cifar10_images(cifar_dir, tmp_path, run_main):
    out = tmp_path / "lr"
    # A trained run in the folder is no obstacle: the test only adds its own files there.
    out.mkdir()
    (out / "model.keras").write_bytes(b"a trained model")
    result = run_main(
        "lr_find",
        "--dataset", "cifar10", "--data-dir", cifar_dir, "--depth", "8",
        "--batch-size", "32", "--steps", "40", "--min-lr", "1e-4", "--max-lr", "1e3",
        "--output-dir", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out / "lr_find.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "learning_rate", "loss", "smoothed_loss"]
    rates = [float(row["learning_rate"]) for row in rows]
    assert rates[0] == pytest.approx(1e-4) and rates == sorted(rates)
    with open(out / "lr_find.json") as f:
        summary = json.load(f)
    # A rate of 1000 diverges well before the 40th step; the test stops there.
    assert summary["stopped_on_divergence"] and summary["steps_run"] == len(rows) < 40
    assert 1e-4 <= summary["suggested_lr"] <= 100 and summary["rule"] == lr_find.SUGGESTION_RULE
    assert (out / "lr_find.png").stat().st_size > 10_000
    assert f"--schedule onecycle --lr {summary['suggested_lr']:.3g}" in result.stdout
    assert (out / "model.keras").read_bytes() == b"a trained model"


def test_range_test_rejects_bad_rates_and_writes_nothing(tmp_path, run_main):
    out = tmp_path / "lr"
    result = run_main("lr_find", "--dataset", "digits", "--min-lr", "0", "--output-dir", out)
    assert result.returncode == 1 and "0 < min-lr < max-lr" in result.stderr
    result = run_main("lr_find", "--dataset", "digits", "--steps", "3", "--output-dir", out)
    assert result.returncode == 1 and "--steps must be at least 10" in result.stderr
    assert not out.exists()
