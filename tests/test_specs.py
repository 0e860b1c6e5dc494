import pytest

from keras_resnet import specs


@pytest.mark.parametrize("depth, n", [(20, 3), (32, 5), (44, 7), (56, 9), (110, 18), (1202, 200)])
def test_cifar_depths_follow_6n_plus_2(depth, n):
    spec = specs.make_spec(depth, "cifar")
    assert spec.stage_blocks == (n, n, n) and spec.block == "basic"
    assert spec.stage_widths == (16, 32, 64)


def test_imagenet_table_is_the_papers_table_1():
    assert specs.make_spec(34).stage_blocks == (3, 4, 6, 3)
    assert specs.make_spec(152).stage_blocks == (3, 8, 36, 3)
    assert specs.make_spec(50).block == "bottleneck" and specs.make_spec(18).block == "basic"
    assert specs.make_spec(50).stage_widths == (64, 128, 256, 512)
    for depth, (block, blocks) in specs.IMAGENET_DEPTHS.items():
        layers_per_block = specs.LAYERS_PER_BLOCK[block]
        assert layers_per_block * sum(blocks) + 2 == depth


def test_stem_inference_prefers_imagenet_depths():
    assert specs.resolve_stem(50, None) == "imagenet"  # 50 is also 6*8+2
    assert specs.resolve_stem(56, None) == "cifar"
    assert specs.make_spec(50, "cifar").stage_blocks == (8, 8, 8)


def test_cifar_bottleneck_is_9n_plus_2_and_custom_width():
    assert specs.make_spec(164, "cifar", "bottleneck").stage_blocks == (18, 18, 18)
    assert specs.make_spec(20, "cifar", "bottleneck").stage_blocks == (2, 2, 2)
    with pytest.raises(ValueError, match="9n\\+2 with n >= 1"):
        specs.make_spec(21, "cifar", "bottleneck")
    assert specs.make_spec(20, "cifar", base_width=32).stage_widths == (32, 64, 128)


def test_minimum_input_size_is_the_total_stride():
    assert specs.check_input_shape((4, 4, 3), "cifar") == (4, 4, 3)
    assert specs.check_input_shape((None, 32, 1), "imagenet") == (None, 32, 1)
    with pytest.raises(ValueError, match="must be at least 32"):
        specs.check_input_shape((31, 224, 3), "imagenet")
    with pytest.raises(ValueError, match="\\(height, width, channels\\)"):
        specs.check_input_shape((32, 32), "cifar")
