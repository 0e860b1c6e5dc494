import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with fresh layer names and the default dtype policy."""
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()
