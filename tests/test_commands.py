"""The commands as a user runs them: console scripts, `python -m`, the checkout's files."""

import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_resnet import data

from conftest import REPO

NAMES = ("train", "evaluate", "tune", "export", "analysis", "lr_find", "predict")
COMMANDS = {f"keras-resnet-{name.replace('_', '-')}": f"keras_resnet_cli:{name}" for name in NAMES}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def script(name):
    return pathlib.Path(sys.executable).parent / name


def test_console_scripts_are_declared_and_installed():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    declared = {
        entry.name: entry.value for entry in scripts if entry.name.startswith("keras-resnet-")
    }
    assert declared == COMMANDS, "reinstall the package (pip install -e .) after changing setup.cfg"
    missing = [name for name in COMMANDS if not script(name).is_file()]
    assert not missing, f"not installed beside {sys.executable}: {missing}"


@pytest.mark.parametrize("command", NAMES)
def test_every_command_answers_help(run_main, command):
    result = run_main(command, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: ")


def help_from(folder, commands):
    """Runs each command with --help in `folder`, in parallel; returns their outputs."""
    processes = [
        subprocess.Popen(
            [*command, "--help"],
            cwd=folder,
            env=ENV,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for command in commands
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for command, process, (out, err) in zip(commands, processes, outputs):
        assert process.returncode == 0, (command, err[-2000:])
        assert out.startswith("usage: "), (command, out[:500])
    assert not list(folder.iterdir())  # --help writes nothing


def test_an_installed_script_and_a_checkout_file_answer_help_from_another_folder(tmp_path):
    help_from(
        tmp_path, [[str(script("keras-resnet-tune"))], [sys.executable, str(REPO / "evaluate.py")]]
    )


@pytest.mark.slow
def test_every_form_of_every_command_answers_help_from_another_folder(tmp_path):
    commands = [[str(script(name))] for name in COMMANDS]
    commands += [[sys.executable, "-m", "keras_resnet_cli", name] for name in NAMES]
    commands += [
        [sys.executable, "-m", f"keras_resnet.{name}"]
        for name in ("analysis", "lr_find", "predict")
    ]
    commands += [
        [sys.executable, str(REPO / f"{name}.py")] for name in ("train", "evaluate", "tune")
    ]
    help_from(tmp_path, commands)


def train_from(folder, *args):
    """Runs the installed `keras-resnet-train` in `folder`."""
    return subprocess.run(
        [str(script("keras-resnet-train")), *args],
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_offline_main_job_from_another_folder(tmp_path):
    """The README's first command: ResNet-20 on scikit-learn's bundled digits, one epoch."""
    result = train_from(tmp_path, "--dataset", "digits", "--depth", "20", "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "digits-resnet20"
    for name in (
        "config.json",
        "history.csv",
        "summary.json",
        "model.keras",
        "training_curves.png",
        "saved_model/1/saved_model.pb",
        "checkpoints/state.json",
    ):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "resnet20" and summary["epochs"] == 1
    # ResNet-20 for one-channel images: 3 * 3 * 16 * 2 stem weights fewer than for RGB.
    assert summary["trainable_parameters"] == 269_722 - 288
    # model.keras takes raw pixels and reproduces the summary's test error.
    digits = data.load_data("digits")
    model = keras.saving.load_model(run_dir / "model.keras")
    probabilities = model.predict(digits.test.images, verbose=0)
    error = np.mean(probabilities.argmax(axis=1) != digits.test.labels)
    assert error == pytest.approx(summary["test_top1_error"], abs=1e-6)


@pytest.mark.slow
def test_bad_input_exits_1_naming_it(tmp_path):
    result = train_from(tmp_path, "--dataset", "digits", "--depth", "21", "--epochs", "1")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "keras-resnet-train: error: Invalid depth 21" in result.stderr
    assert not list(tmp_path.iterdir())


ONEDNN_AFTER_COMMAND = """
import os, sys
import keras_resnet_cli
try:
    keras_resnet_cli.run("export", ["--help"])
except SystemExit:
    pass
from tensorflow.python.util import _pywrap_util_port
print(os.environ["TF_ENABLE_ONEDNN_OPTS"], _pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.slow
def test_commands_turn_onednn_on_before_tensorflow_loads_unless_the_user_says_no():
    env = {key: value for key, value in ENV.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    runs = {
        setting: subprocess.Popen(
            [sys.executable, "-c", ONEDNN_AFTER_COMMAND],
            cwd=REPO,
            text=True,
            env=env if setting is None else {**env, "TF_ENABLE_ONEDNN_OPTS": setting},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for setting in (None, "0")
    }
    results = {setting: process.communicate(timeout=300) for setting, process in runs.items()}
    assert results[None][0].split()[-2:] == ["1", "True"], results[None][1][-2000:]
    assert results["0"][0].split()[-2:] == ["0", "False"], results["0"][1][-2000:]


PYTHON_M = ["python3", "-W", "error", "-m", "keras_resnet.predict", "a.jpg", "--top", "3"]
# runpy.run_module("keras_resnet.predict") from a script: starting again would run the script.
FROM_A_SCRIPT = ["python3", "host.py", "a.jpg", "--top", "3"]


@pytest.mark.parametrize(
    "setting, onednn_on, command_line, starts_again",
    [
        (None, False, PYTHON_M, True),
        (None, False, ["python3", "-mkeras_resnet.predict", "a.jpg", "--top", "3"], True),
        (None, True, PYTHON_M, False),
        ("0", False, PYTHON_M, False),
        ("1", False, PYTHON_M, False),
        (None, False, ["python3", "-Im", "keras_resnet.predict", "a.jpg"], True),
        (None, False, ["python3", "-X", "dev", "-OOmkeras_resnet.predict", "a.jpg"], True),
        (None, False, FROM_A_SCRIPT, False),
        (None, False, ["python3", "host.py", "-m", "keras_resnet.predict"], False),
        (None, False, ["python3", "-m", "pdb", "-m", "keras_resnet.predict", "a.jpg"], False),
        (None, False, ["python3", "-c", "import runpy", "-m", "keras_resnet.predict"], False),
    ],
)
def test_python_m_a_package_module_starts_again_only_where_that_turns_onednn_on(
    setting, onednn_on, command_line, starts_again, monkeypatch
):
    # TensorFlow is loaded already: the module can only ask for a fresh Python.
    import keras_resnet_cli
    from keras_resnet import _compat

    class StartedAgain(Exception):
        pass

    def execv(path, argv):
        assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
        raise StartedAgain(path, argv)

    if setting is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", setting)
    monkeypatch.setattr(_compat, "onednn_enabled", lambda: onednn_on)
    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setattr(keras_resnet_cli, "run", lambda command: f"ran {command}")
    monkeypatch.setattr(sys, "argv", ["/site/keras_resnet/predict.py", "a.jpg", "--top", "3"])
    monkeypatch.setattr(sys, "orig_argv", command_line)
    if starts_again:
        with pytest.raises(StartedAgain) as started:
            keras_resnet_cli.run_module("predict")
        # The same command line, interpreter flags and all, in this Python.
        assert started.value.args == (sys.executable, [sys.executable, *command_line[1:]])
    else:
        assert keras_resnet_cli.run_module("predict") == "ran predict"
        assert sys.argv[0] == "python -m keras_resnet.predict"  # its usage line's name
        assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") == setting


@pytest.mark.slow
def test_importing_the_package_changes_no_environment_variable():
    # Third-party packages first: what they do to the environment is not ours to test.
    code = (
        "import os, json, keras, keras_tuner, tensorflow; before = dict(os.environ); "
        "import keras_resnet, keras_resnet.training, keras_resnet.analysis, "
        "keras_resnet.tuning; print(json.dumps(before == dict(os.environ)))"
    )
    env = {key: value for key, value in ENV.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, text=True, capture_output=True, timeout=300
    )
    assert result.stdout.split()[-1] == "true", result.stderr[-2000:]


@pytest.mark.parametrize(
    "command, argv, flag",
    [
        ("train", ["--dataset", "digits", "--data-dir", ""], "--data-dir"),
        ("evaluate", ["--weights", "cifar10", "--output-json", ""], "--output-json"),
        ("tune", ["--dataset", "digits", "--output-dir", ""], "--output-dir"),
        ("export", ["--model", "run", "--export-base", "serving", "--name", ""], "--name"),
        ("analysis", ["redraw", "--results-dir", ""], "--results-dir"),
        ("lr_find", ["--dataset", "digits", "--weights", ""], "--weights"),
        ("predict", ["a.png", "--weights", "cifar10", "--output-json", ""], "--output-json"),
        ("predict", ["", "--weights", "cifar10", "--depth", "20"], "images"),
    ],
)
def test_an_empty_value_is_refused_not_taken_for_the_flag_left_out(
    command, argv, flag, run_main, tmp_path, monkeypatch
):
    # `--data-dir "$UNSET"`: without the refusal, a TFDS download instead of the folder.
    monkeypatch.chdir(tmp_path)
    result = run_main(command, *argv)
    assert result.returncode == 2, result.stderr
    assert f"error: argument {flag}: an empty value: give one, or leave the flag out" in (
        result.stderr
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "command, target",
    [
        ("train", "keras_resnet.training.train"),
        ("evaluate", "keras_resnet.data.load_test_data"),
        ("tune", "keras_resnet.runtime.setup_devices"),
        ("export", "keras_resnet.export.load_for_export"),
        ("analysis", "keras_resnet.analysis.redraw"),
        ("lr_find", "keras_resnet.lr_find.range_test"),
        ("predict", "keras_resnet.predict.classify"),
    ],
)
@pytest.mark.parametrize(
    "error, status",
    [
        (RuntimeError("devices cannot be set up now"), 1),
        (OSError(28, "No space left on device", "/full/disk/file"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_every_command_ends_an_expected_error_with_its_message_not_a_traceback(
    command, target, error, status, monkeypatch, capsys, tmp_path
):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(target, fail)
    argv = {
        "train": ["--dataset", "digits", "--output-dir", str(tmp_path / "run")],
        "evaluate": ["--weights", "cifar10", "--depth", "20"],
        "tune": ["--dataset", "digits", "--output-dir", str(tmp_path / "tune")],
        "export": ["--model", "run", "--export-base", str(tmp_path / "serving")],
        "analysis": ["redraw", "--results-dir", str(tmp_path)],
        "lr_find": ["--dataset", "digits"],
        "predict": ["photo.jpg", "--weights", "cifar10", "--depth", "20"],
    }[command]
    main = importlib.import_module(f"keras_resnet.cli.{command}").main
    assert main(argv) == status
    message = capsys.readouterr().err.strip().splitlines()[-1]
    if status == 130:
        assert message.endswith(": interrupted")
    else:
        assert message.endswith(f"error: {error}") and "Traceback" not in message
