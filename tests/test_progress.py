import io
import os

import numpy as np

from keras_resnet import data as data_lib
from keras_resnet import evaluation, models, progress


def lines(stream):
    return stream.getvalue().splitlines()


def test_log_lines_every_interval_and_at_the_end():
    stream = io.StringIO()
    with progress.Progress(
        "Counting", 10, "things", interval=0, terminal=False, stream=stream
    ) as p:
        for _ in range(4):
            p.add(3)
    assert lines(stream)[0].startswith("Counting: 3/10 things (30%), ")
    assert [line.split(",")[0] for line in lines(stream)] == [
        "Counting: 3/10 things (30%)",
        "Counting: 6/10 things (60%)",
        "Counting: 9/10 things (90%)",
        "Counting: 12/10 things (120%)",
        "Counting: 12/10 things (120%)",
    ]


def test_short_work_writes_nothing_to_a_log():
    stream = io.StringIO()
    with progress.Progress("Counting", 10, interval=60, terminal=False, stream=stream) as p:
        p.add(10)
    assert stream.getvalue() == ""


def test_a_terminal_gets_keras_progress_bar(capsys):
    with progress.Progress("Counting", 4, interval=0, terminal=True) as p:
        p.add(2)
        p.add(2)
    out = capsys.readouterr().out
    assert out.startswith("Counting:\n") and "4/4" in out


def test_decoding_folders_and_evaluating_show_progress(cifar_dir, monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_INTERVAL_SECONDS", 0)
    data = data_lib.load_data("cifar10", data_dir=str(cifar_dir))
    err = capsys.readouterr().err.splitlines()
    train_dir, test_dir = os.path.join(cifar_dir, "train"), os.path.join(cifar_dir, "test")
    assert f"Decoding {train_dir}: 500/500 images (100%)" in [e.split(",")[0] for e in err]
    assert f"Decoding {test_dir}: 250/250 images (100%)" in [e.split(",")[0] for e in err]

    model = models.ResNet(8, stem="cifar", classes=10)
    classifier = evaluation.classifier_from_model(model, data.class_names)
    report = evaluation.evaluate(classifier, data, batch_size=200)
    err = [e.split(" (")[0] for e in capsys.readouterr().err.splitlines()]
    assert err == [f"Evaluating the test images: {n}/250 images" for n in (200, 250, 250)]
    assert report["num_examples"] == 250


def test_reading_cifar_batches_shows_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_INTERVAL_SECONDS", 0)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = rng.integers(0, 256, (4, 1 + 3072), np.uint8)
        records[:, 0] = [0, 1, 2, 3]  # the label byte
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    data = data_lib.load_data("cifar10", data_dir=str(tmp_path))
    assert data.train.num_examples == 20
    err = [e.split(",")[0] for e in capsys.readouterr().err.splitlines()]
    assert err == [
        *[f"Reading CIFAR batches in {folder}: {i}/5 files ({20 * i}%)" for i in range(1, 6)],
        f"Reading CIFAR batches in {folder}: 5/5 files (100%)",
        f"Reading CIFAR batches in {folder}: 1/1 files (100%)",
        f"Reading CIFAR batches in {folder}: 1/1 files (100%)",
    ]


def test_progress_of_nothing():
    stream = io.StringIO()
    with progress.Progress("Nothing", 0, interval=0, terminal=False, stream=stream):
        pass
    assert lines(stream) == ["Nothing: 0/0 images, 0 s"]


def test_an_unknown_total_counts_alone():
    stream = io.StringIO()
    with progress.Progress("Reading", None, interval=0, terminal=False, stream=stream) as p:
        p.add(5)
    assert [line.split(",")[0] for line in lines(stream)] == ["Reading: 5 images"] * 2
