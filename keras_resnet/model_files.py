"""A trained model on disk: a run directory, a `.keras` file or a SavedModel, found and loaded."""

import dataclasses
import os

from keras_resnet import files, models
from keras_resnet.rundir import RunDir

# The SavedModel asset recording how `serving_bytes` prepares images (`export`).
PREPROCESSING_ASSET = "preprocessing.json"


@dataclasses.dataclass
class LoadedModel:
    """A model read from disk, with what its run recorded about the data.

    Attributes:
        model: a `keras.Model` (`kind` `"keras"`) or the loaded SavedModel.
        kind: `"keras"` or `"saved_model"`.
        path: the `.keras` file or SavedModel version folder loaded.
        data: the `data` entry of the run's `config.json` (class names,
            preprocessing), or {} when the model has no run beside it; its
            `class_names` are the model's own where the model has them (a
            `.keras` file keeps them, a SavedModel in `assets/labels.txt`).
    """

    model: object
    kind: str
    path: str
    data: dict


def find_model(path, saved_model=True):
    """The file or folder to load for `path`: (`"keras"` or `"saved_model"`, its path).

    `path` is a run directory (its `model.keras`), a `.keras` file, and with
    `saved_model` also a SavedModel folder or a TF Serving base folder (its
    newest version).
    """
    if not os.path.exists(path):
        raise ValueError(f"Model path {path!r} does not exist.")
    if os.path.isdir(path) and os.path.isfile(RunDir(path).model_path):
        return "keras", RunDir(path).model_path
    if os.path.isfile(path) and path.endswith(".keras"):
        return "keras", path
    if saved_model and os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model", path
        versions = [
            n
            for n in os.listdir(path)
            if n.isdigit() and os.path.isfile(os.path.join(path, n, "saved_model.pb"))
        ]
        if versions:
            return "saved_model", os.path.join(path, max(versions, key=int))
    if saved_model:
        raise ValueError(
            f"{path!r} is not a run directory (with model.keras), a .keras file, a "
            "SavedModel folder (with saved_model.pb) or a TF Serving base folder."
        )
    raise ValueError(f"{path!r} is neither a run directory with model.keras nor a .keras file.")


def load_model(path, saved_model=True):
    """Loads a run directory's model, a `.keras` file or (with `saved_model`) a SavedModel.

    Returns:
        A `LoadedModel`.

    Raises:
        ValueError: for a missing path, an unknown layout or a file that does not load.
    """
    kind, found = find_model(path, saved_model)
    if kind == "keras":
        import keras

        try:
            model = keras.saving.load_model(found)
        except Exception as error:
            raise ValueError(f"Cannot load {found!r}: {error}") from None
        models.check_takes_pixels(model, repr(found))
        record = RunDir(os.path.dirname(os.path.abspath(found))).record() or {}
        data = dict(record.get("data", {}))
        if getattr(model, "class_names", None) is not None:
            data["class_names"] = list(model.class_names)
        return LoadedModel(model, kind, found, data)
    import tensorflow as tf

    try:
        model = tf.saved_model.load(found)
    except Exception as error:
        raise ValueError(f"Cannot load the SavedModel {found!r}: {error}") from None
    labels = os.path.join(found, "assets", "labels.txt")
    data = {}
    if os.path.isfile(labels):
        with open(labels, encoding="utf-8") as f:
            try:
                data["class_names"] = [line.rstrip("\n") for line in f]
            except UnicodeDecodeError as error:
                raise ValueError(f"{labels!r} is not UTF-8 text: {error}.") from None
    described = os.path.join(found, "assets", PREPROCESSING_ASSET)
    if os.path.isfile(described):  # exports written before it have none
        data["preprocessing"] = files.read_json(described, expect=dict)
    return LoadedModel(model, kind, found, data)
