import keras
import numpy as np
import pytest

from keras_resnet import schedules


def values(schedule, steps, method="__call__"):
    return [float(getattr(schedule, method)(s)) for s in steps]


def test_piecewise_is_the_papers_cifar_schedule():
    schedule = schedules.PiecewiseConstant(0.1, [32000, 48000], warmup_steps=400, warmup_lr=0.01)
    steps = [0, 399, 400, 31999, 32000, 47999, 48000, 63999]
    assert values(schedule, steps) == pytest.approx(
        [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    no_warmup = schedules.PiecewiseConstant(0.1, [10])
    assert values(no_warmup, [0, 9, 10]) == pytest.approx([0.1, 0.1, 0.01])
    with pytest.raises(ValueError, match="increasing steps"):
        schedules.PiecewiseConstant(0.1, [48000, 32000])


def test_one_cycle_rises_falls_and_anneals_with_inverse_momentum():
    schedule = schedules.OneCycle(1.0, total_steps=1000, pct_rise=0.45)
    lr = values(schedule, [0, 225, 450, 675, 900, 1000])
    assert lr == pytest.approx([0.04, 0.52, 1.0, 0.52, 0.04, 1e-4], rel=1e-4)
    momentum = values(schedule, [0, 450, 900, 1000], "momentum")
    assert momentum == pytest.approx([0.95, 0.85, 0.95, 0.95])
    assert np.all(np.diff(values(schedule, range(0, 451, 50))) > 0)


def test_cosine_with_linear_warmup():
    schedule = schedules.Cosine(0.2, total_steps=110, warmup_steps=10)
    assert values(schedule, [0, 9, 10, 60, 110]) == pytest.approx(
        [0.02, 0.2, 0.2, 0.1, 0.0], abs=1e-6
    )


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.PiecewiseConstant(0.1, [5, 8], warmup_steps=2),
        schedules.OneCycle(0.5, 100),
        schedules.Cosine(0.1, 50, 5),
    ],
)
def test_schedules_serialize(schedule):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert values(clone, range(0, 100, 7)) == pytest.approx(values(schedule, range(0, 100, 7)))


def test_sgd_with_momentum_schedule_matches_the_update_rule():
    cycle = schedules.OneCycle(0.5, total_steps=10)
    optimizer = schedules.SGD(learning_rate=cycle, momentum=0.95, momentum_schedule=cycle)
    w = keras.Variable(np.array([1.0, -2.0], "float32"))
    grads = [np.array([0.5, 0.25], "float32"), np.array([-1.0, 2.0], "float32")]
    expected_w, velocity = np.array([1.0, -2.0]), np.zeros(2)
    for step, g in enumerate(grads):
        optimizer.apply_gradients([(g, w)])
        velocity = velocity * float(cycle.momentum(step)) - g * float(cycle(step))
        expected_w = expected_w + velocity
    np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-6)
    clone = schedules.SGD.from_config(optimizer.get_config())
    assert float(clone.momentum_schedule.momentum(3)) == pytest.approx(float(cycle.momentum(3)))


def test_sgd_without_schedule_is_keras_sgd():
    ours, theirs = keras.Variable([1.0, 2.0]), keras.Variable([1.0, 2.0])
    mine = schedules.SGD(learning_rate=0.1, momentum=0.9)
    reference = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    for g in ([0.3, -0.1], [0.2, 0.5], [-1.0, 0.0]):
        mine.apply_gradients([(np.array(g, "float32"), ours)])
        reference.apply_gradients([(np.array(g, "float32"), theirs)])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())
