import dataclasses
import gzip
import json
import os
import pathlib
import pickle
import re
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import gray_copy
from keras_resnet import data
from keras_resnet.data import datasets, sources

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cifar(cifar_dir):
    return data.load_data("cifar10", data_dir=str(cifar_dir))


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_class_folders_of_real_cifar10(cifar):
    assert cifar.class_names == CLASSES  # sorted folder names
    assert cifar.image_shape == (32, 32, 3) and cifar.preprocessing == data.Preprocessing(
        "cifar", flip=True
    )
    assert cifar.train.images.dtype == np.uint8 and cifar.train.images.shape == (500, 32, 32, 3)
    assert cifar.test.num_examples == 250
    assert np.bincount(cifar.train.labels).tolist() == [50] * 10
    # Pixels are the decoded PNGs, and the mean is the training split's per-pixel mean.
    raw = tf.io.decode_png(tf.io.read_file(_first_file(cifar.source, "train", "airplane"))).numpy()
    np.testing.assert_array_equal(cifar.train.images[0], raw)
    np.testing.assert_allclose(cifar.mean, cifar.train.images.mean(axis=0), rtol=1e-5)
    assert cifar.mean.shape == (32, 32, 3) and 90 < cifar.mean.mean() < 150
    assert cifar.describe()["class_names"] == CLASSES


def _first_file(source, split, name):
    folder = os.path.join(source.split(" ", 1)[1], split, name)
    return os.path.join(folder, sorted(os.listdir(folder))[0])


def test_validation_split_and_subset(cifar_dir):
    d = data.load_data("cifar10", data_dir=str(cifar_dir), validation_split=200, seed=1)
    assert (d.train.num_examples, d.validation.num_examples) == (300, 200)
    # Held-out images are not in the training split, and the mean is the training split's.
    train_rows = {img.tobytes() for img in d.train.images}
    assert not any(img.tobytes() in train_rows for img in d.validation.images)
    np.testing.assert_allclose(d.mean, d.train.images.mean(axis=0), rtol=1e-5)
    subset = data.load_data("cifar10", data_dir=str(cifar_dir), train_subset=100)
    assert subset.train.num_examples == 100
    assert len(set(subset.train.labels.tolist())) == 10  # a random mix, not class 0 only


@pytest.mark.parametrize(
    "break_it, message",
    [
        (
            lambda root: open(root / "train" / "cat" / "0001.png", "wb").write(b"not a png"),
            "train/cat/0001.png",
        ),
        (
            lambda root: open(root / "train" / "cat" / "notes.txt", "w").write("x"),
            "Not an image file: .*notes.txt",
        ),
        (
            lambda root: shutil.rmtree(root / "test" / "dog") or os.mkdir(root / "test" / "dog"),
            "Empty class folder .*test/dog",
        ),
        (
            lambda root: shutil.rmtree(root / "test" / "dog"),
            "only in train: \\['dog'\\], only in test: \\[\\]",
        ),
        (lambda root: shutil.rmtree(root / "test"), "Missing directory .*test"),
    ],
)
def test_bad_folders_name_the_file_or_folder(cifar_dir, tmp_path, break_it, message):
    root = copy_tree(cifar_dir, tmp_path / "copy")
    break_it(root)
    with pytest.raises(data.DataError, match=message):
        data.load_data("cifar10", data_dir=str(root))


def save_as(pixels, path, mode, **options):
    """Writes uint8 `pixels` (height, width, 3 or 4) as PIL's `mode` to `path`, its format by
    its extension; returns what PIL reads back in that mode (the file's own pixels)."""
    Image.fromarray(pixels).convert(mode).save(path, **options)
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def test_decode_image_gives_every_format_the_channels_asked_for(cifar_dir, tmp_path):
    # TensorFlow's decoders refuse a GIF, BMP or WebP as gray, a GIF or JPEG as RGBA and a WebP
    # with alpha as RGB: each must come out with 1, 3 or 4 channels all the same.
    photo = sorted((cifar_dir / "test" / "cat").iterdir())[0]
    rgb = tf.io.decode_png(tf.io.read_file(str(photo))).numpy()
    alpha = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32, 1)  # every level, 0 to 255
    rgba = np.concatenate([rgb, alpha], axis=-1)
    save_as(rgb, tmp_path / "rgb.png", "RGB")
    save_as(rgb, tmp_path / "rgb-trns.png", "RGB", transparency=tuple(int(v) for v in rgb[0, 0]))
    save_as(rgb, tmp_path / "gray.png", "L")
    save_as(rgba, tmp_path / "gray-alpha.png", "LA")
    save_as(rgb, tmp_path / "palette.gif", "P")
    save_as(rgb, tmp_path / "gray.gif", "L")
    save_as(rgb, tmp_path / "rgb.bmp", "RGB")
    save_as(rgb, tmp_path / "rgb.webp", "RGB", lossless=True)
    save_as(rgba, tmp_path / "rgba.webp", "RGBA", lossless=True, exact=True)
    save_as(rgb, tmp_path / "rgb.jpg", "RGB", quality=95)
    save_as(rgb, tmp_path / "cmyk.jpg", "CMYK", quality=95)  # print's: libjpeg makes it RGB only
    for file in sorted(tmp_path.iterdir()):
        contents = tf.io.read_file(str(file))
        decoded = {c: data.decode_image(contents, c).numpy() for c in (1, 3, 4)}
        if file.suffix == ".jpg":  # TensorFlow's JPEG decoder is not PIL's: its own pixels
            color = tf.io.decode_jpeg(contents, channels=3).numpy()
            expected = {3: color, 4: np.concatenate([color, np.full_like(color[..., :1], 255)], -1)}
        else:  # the file's pixels as PIL converts them (alpha from a tRNS chunk too)
            with Image.open(file) as image:
                expected = {
                    3: np.asarray(image.convert("RGB")),
                    4: np.asarray(image.convert("RGBA")),
                }
                expected[1] = np.asarray(image.convert("L"))[..., None]
        if file.name == "cmyk.jpg":  # libjpeg's RGB made gray as the other formats are
            expected[1] = np.asarray(Image.fromarray(expected[3]).convert("L"))[..., None]
        elif file.suffix in (".png", ".jpg"):  # as TensorFlow's decoder has always made them gray
            expected[1] = tf.io.decode_image(contents, channels=1).numpy()
        for c in (1, 3, 4):
            np.testing.assert_array_equal(decoded[c], expected[c], err_msg=f"{file.name} {c}")
    trns = data.decode_image(tf.io.read_file(str(tmp_path / "rgb-trns.png")), 4).numpy()
    assert 0 < np.sum(trns[..., 3] == 0) < 32 * 32  # the transparent color only
    webp = data.decode_image(tf.io.read_file(str(tmp_path / "rgba.webp")), 4).numpy()
    np.testing.assert_array_equal(webp, rgba)
    with pytest.raises(ValueError, match="1, 3 or 4 channels, not 2"):
        data.decode_image(tf.io.read_file(str(tmp_path / "rgb.png")), 2)


def write_palette_bmp(path, indices, palette, bits, **layout):
    """Writes an uncompressed BMP of `bits` per pixel: `indices` (height, width) into
    `palette` (RGB rows), packed from the high bits, rows padded to 4 bytes.

    `layout`: `top_down` (a negative height: the first row is the top one), `info_bytes`
    (40, or 124 for a V5 header), `gap` (bytes between the palette and the pixels) and
    `count_colors` (False: 0 colors used, meaning all 2**bits).
    """
    top_down, gap = layout.get("top_down", False), layout.get("gap", 0)
    info_bytes, count_colors = layout.get("info_bytes", 40), layout.get("count_colors", True)
    height, width = indices.shape
    per_byte, row_bytes = 8 // bits, (bits * width + 31) // 32 * 4
    rows = []
    for row in indices:
        padded = np.zeros(row_bytes * per_byte, np.int64)
        padded[:width] = row
        groups = padded.reshape(row_bytes, per_byte)
        packed = sum(groups[:, k] << (8 - bits * (k + 1)) for k in range(per_byte))
        rows.append(packed.astype(np.uint8).tobytes())
    entries = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    pixels_at = 14 + info_bytes + len(entries) + gap
    file_header = struct.pack("<2sIHHI", b"BM", pixels_at + row_bytes * height, 0, 0, pixels_at)
    colors_used = len(palette) if count_colors else 0
    info = struct.pack(
        "<IiiHHIIiiII",
        info_bytes,
        width,
        -height if top_down else height,
        1,
        bits,
        0,
        0,
        2835,
        2835,
        colors_used,
        0,
    ).ljust(info_bytes, b"\0")  # a V5 header's masks, color space and profile: unused here
    pixels = b"".join(rows if top_down else rows[::-1])
    path.write_bytes(file_header + info + entries + b"\0" * gap + pixels)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_a_palette_bmp_decodes_to_its_colors_not_its_indices(tmp_path, bits):
    # TensorFlow gives an 8-bit BMP's palette indices as gray pixels and refuses 1, 2 and 4 bits.
    rng = np.random.default_rng(bits)
    palette = rng.integers(0, 256, (2**bits, 3), dtype=np.uint8)
    layouts = [
        {"palette": palette},
        {"palette": palette, "top_down": True, "info_bytes": 124, "gap": 6, "count_colors": False},
    ]
    if bits == 8:  # a palette shorter than 256 colors
        layouts.append({"palette": palette[:200]})
    for number, layout in enumerate(layouts):
        colors = layout.pop("palette")
        indices = rng.integers(0, len(colors), (5, 13))  # 13: rows end inside a byte, padded
        expected_rgb = colors[indices]
        path = tmp_path / f"{bits}-{number}.bmp"
        write_palette_bmp(path, indices, colors, bits, **layout)
        contents = tf.io.read_file(str(path))
        np.testing.assert_array_equal(data.decode_image(contents, 3).numpy(), expected_rgb)
        if bits != 2:  # PIL reads no 2-bit BMP (Windows CE's): the file as PIL reads it
            with Image.open(path) as image:
                np.testing.assert_array_equal(np.asarray(image.convert("RGB")), expected_rgb)
        as_pil = Image.fromarray(expected_rgb)  # PIL's conversions of the colors
        gray = np.asarray(as_pil.convert("L"))[..., None]
        np.testing.assert_array_equal(data.decode_image(contents, 1).numpy(), gray)
        rgba = np.asarray(as_pil.convert("RGBA"))
        np.testing.assert_array_equal(data.decode_image(contents, 4).numpy(), rgba)
        if number == 0:  # where the caller says it is none, TensorFlow's: 8 bits' indices
            if bits == 8:
                np.testing.assert_array_equal(
                    data.decode_image(contents, 1, palette_bmps=False).numpy(), indices[..., None]
                )
            else:
                with pytest.raises(tf.errors.InvalidArgumentError):
                    data.decode_image(contents, 3, palette_bmps=False)


def test_only_files_that_may_be_bmps_are_checked_for_a_palette(cifar_dir, tmp_path, monkeypatch):
    # The check slows every image of a pipeline: a file named as another format skips it.
    assert all(map(sources.may_be_bmp, ["a/b.BMP", b"scan", pathlib.Path("x.dib")]))
    assert not any(map(sources.may_be_bmp, [b"a.PNG", np.str_("b.bmp.webp"), "c.jpeg"]))
    assert not sources.any_may_be_bmp(np.asarray(["a.png", "bmp/c.jpg"], object))
    assert sources.any_may_be_bmp(["a.png", "c.bmp"])
    indices = np.arange(5 * 13).reshape(5, 13) * 3 % 200
    palette = np.random.default_rng(0).integers(0, 256, (200, 3), dtype=np.uint8)
    write_palette_bmp(tmp_path / "colors.bmp", indices, palette, 8)
    shutil.copyfile(tmp_path / "colors.bmp", tmp_path / "indices.png")
    checked = []
    check = sources._is_palette_bmp
    monkeypatch.setattr(sources, "_is_palette_bmp", lambda *a: checked.append(1) or check(*a))

    loaded = data.load_data("cifar10", data_dir=str(cifar_dir))  # PNGs, held in memory
    pngs = sorted(str(path) for path in (cifar_dir / "train").rglob("*.png"))
    for paths, labels in [
        (pngs, loaded.train.labels),
        ([str(tmp_path / "colors.bmp"), str(tmp_path / "indices.png")], np.zeros(2, np.int32)),
    ]:
        checked.clear()
        split = sources.Split(len(paths), labels=labels, paths=np.asarray(paths, object))
        images = [image.numpy() for image, _ in split.dataset().take(2)]
        streamed = dataclasses.replace(  # as a folder too large for memory is read
            loaded, train=split, preprocessing=data.Preprocessing("imagenet", image_size=16)
        )
        datasets.train_dataset(streamed, 2, seed=0)
        sources._decode_all(paths, labels, images[0].shape[:2], "train")
        assert bool(checked) == (paths != pngs), paths  # traced, and per file in a pipeline
    # Named as a PNG, a palette BMP is what TensorFlow makes of it, in that pipeline too.
    np.testing.assert_array_equal(images[0], palette[indices])
    np.testing.assert_array_equal(images[1], np.repeat(indices[..., None], 3, -1))
    decoded = sources.decode_image_file(str(tmp_path / "indices.png")).numpy()
    np.testing.assert_array_equal(decoded, images[1])


def test_a_broken_palette_bmp_is_an_error_that_says_what_is_wrong(cifar_dir, tmp_path):
    indices = np.arange(5 * 13).reshape(5, 13) * 3 % 200  # up to 192
    palette = np.random.default_rng(0).integers(0, 256, (200, 3), dtype=np.uint8)
    write_palette_bmp(tmp_path / "good.bmp", indices, palette, 8)
    good = (tmp_path / "good.bmp").read_bytes()

    def header(offset, value):  # `good` with one 32-bit header field changed
        return good[:offset] + struct.pack("<i", value) + good[offset + 4 :]

    for contents, message in [
        (good[:60], "the BMP ends inside its palette"),
        (good[:-1], "the BMP ends inside its pixels"),
        (header(30, 1), "only uncompressed palette BMPs decode, not RLE"),
        (header(46, 100), "a pixel of the BMP indexes past its palette"),
        (header(46, 257), "the BMP's palette is too long"),
        (header(46, 250), "the BMP's palette overlaps its pixels"),
        (header(18, 1 << 30), "the BMP ends inside its pixels"),  # no overflow
        (header(10, 2**31 - 1), "the BMP ends inside its pixels"),  # a pixel offset past the end
        (header(22, -(1 << 31)), "the BMP ends inside its pixels"),
    ]:
        for channels in (1, 3, 4):
            with pytest.raises(tf.errors.InvalidArgumentError, match=message):
                data.decode_image(tf.constant(contents), channels)
    # A class folder names the file.
    root = copy_tree(cifar_dir, tmp_path / "copy")
    first = sorted((root / "train" / "airplane").iterdir())[0]
    first.unlink()
    first.with_suffix(".bmp").write_bytes(good[:60])
    with pytest.raises(
        data.DataError,
        match=f"{first.with_suffix('.bmp')}' is not an image .*the BMP ends inside its palette$",
    ):
        data.load_data("cifar10", data_dir=str(root))


def test_class_folders_of_palette_bmps_are_gray_only_where_the_palette_is(cifar_dir, tmp_path):
    root = copy_tree(cifar_dir, tmp_path / "copy")
    first = sorted((root / "train" / "airplane").iterdir())[0]
    rgb = tf.io.decode_png(tf.io.read_file(str(first))).numpy()
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    first.unlink()
    # 8 bits, a gray palette from white to black: the gray levels, not their indices.
    levels = np.repeat(np.arange(255, -1, -1, dtype=np.uint8)[:, None], 3, axis=1)
    write_palette_bmp(first.with_suffix(".bmp"), 255 - gray.astype(np.int64), levels, 8)
    loaded = data.load_data("cifar10", data_dir=str(root))
    assert loaded.image_shape == (32, 32, 3)  # the other images have color
    np.testing.assert_array_equal(loaded.train.images[0], np.repeat(gray[..., None], 3, -1))
    first.with_suffix(".bmp").unlink()
    save_as(rgb, first.with_suffix(".bmp"), "P")  # 8 bits, a palette of colors
    with Image.open(first.with_suffix(".bmp")) as image:
        colors = np.asarray(image.convert("RGB"))
    loaded = data.load_data("cifar10", data_dir=str(root))
    assert loaded.image_shape == (32, 32, 3)
    np.testing.assert_array_equal(loaded.train.images[0], colors)


def test_class_folders_take_gif_webp_and_bmp_beside_png(cifar_dir, tmp_path):
    root = copy_tree(cifar_dir, tmp_path / "copy")
    cat = root / "train" / "cat"
    first, second, third = sorted(cat.iterdir())[:3]
    rgb = [tf.io.decode_png(tf.io.read_file(str(f))).numpy() for f in (first, second, third)]
    alpha = np.full((32, 32, 1), 7, np.uint8)
    for f in (first, second, third):
        f.unlink()
    # In the same order: the PNGs' names with other formats' extensions.
    save_as(np.concatenate([rgb[0], alpha], -1), first.with_suffix(".webp"), "RGBA", lossless=True)
    gray = save_as(rgb[1], second.with_suffix(".gif"), "L")
    save_as(rgb[2], third.with_suffix(".bmp"), "RGB")
    loaded = data.load_data("cifar10", data_dir=str(root))
    assert loaded.train.num_examples == 500 and loaded.image_shape == (32, 32, 3)
    cats = loaded.train.images[loaded.train.labels == CLASSES.index("cat")]
    np.testing.assert_array_equal(cats[0], rgb[0])  # alpha dropped
    np.testing.assert_array_equal(cats[1], np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_array_equal(cats[2], rgb[2])


def test_class_folders_are_gray_only_when_every_image_is(cifar_dir, tmp_path):
    # Two classes, train and test, gray in four ways, from the fixture's pixels.
    pixels = [
        tf.io.decode_png(tf.io.read_file(str(path))).numpy()
        for path in sorted((cifar_dir / "train" / "cat").iterdir())[:5]
    ]
    alpha = np.full((32, 32, 1), 7, np.uint8)
    files = ["train/x/a.png", "train/x/b.gif", "train/y/c.jpg", "test/x/d.png", "test/y/e.png"]
    grays = []
    for rgb, name, mode in zip(pixels, files, ["L", "L", "L", "LA", "L"]):
        (tmp_path / "gray" / name).parent.mkdir(parents=True, exist_ok=True)
        gray = save_as(np.concatenate([rgb, alpha], -1), tmp_path / "gray" / name, mode)
        grays.append((gray if gray.ndim == 2 else gray[..., 0])[..., None])
    # A color file with no color in it counts as gray.
    rgb_gray = tmp_path / "gray" / "test" / "y" / "f.png"
    save_as(np.repeat(grays[0], 3, -1), rgb_gray, "RGB")
    loaded = data.load_data("cifar10", data_dir=str(tmp_path / "gray"))
    assert loaded.image_shape == (32, 32, 1)
    assert loaded.train.images.flags.c_contiguous and loaded.test.images.flags.c_contiguous
    np.testing.assert_array_equal(loaded.train.images[0], grays[0])  # train/x/a.png
    np.testing.assert_array_equal(loaded.test.images[0], grays[3])  # test/x/d.png, alpha dropped
    np.testing.assert_array_equal(loaded.test.images[-1], grays[0])  # test/y/f.png
    # One color image, even in the other split, makes both splits RGB, gray repeated; a
    # first image with alpha (once a 4-channel set) too.
    save_as(pixels[0], rgb_gray, "RGB")
    first = tmp_path / "gray" / "train" / "x" / "a.png"
    save_as(np.concatenate([pixels[1], alpha], -1), first, "RGBA")
    loaded = data.load_data("cifar10", data_dir=str(tmp_path / "gray"))
    assert loaded.image_shape == (32, 32, 3) and loaded.train.images.shape[-1] == 3
    np.testing.assert_array_equal(loaded.train.images[0], pixels[1])
    np.testing.assert_array_equal(loaded.train.images[1], np.repeat(grays[1], 3, -1))
    np.testing.assert_array_equal(loaded.test.images[-1], pixels[0])
    # Evaluation reads the test split alone, gray without the color test image.
    rgb_gray.unlink()
    assert data.load_test_data("cifar10", data_dir=str(tmp_path / "gray")).image_shape[-1] == 1


def test_with_channels_repeats_gray_and_makes_color_gray_by_luma(cifar_dir, tmp_path):
    gray_dir = gray_copy(cifar_dir, tmp_path / "gray", classes=("cat", "dog"))
    gray = data.load_data("catdog", data_dir=str(gray_dir), validation_split=0.2)
    assert gray.image_shape == (32, 32, 1)
    rgb = data.with_channels(gray, 3)
    assert rgb.image_shape == (32, 32, 3) and data.with_channels(rgb, 3) is rgb
    for name in ("train", "validation", "test"):
        split, converted = getattr(gray, name), getattr(rgb, name)
        np.testing.assert_array_equal(converted.images, np.repeat(split.images, 3, -1))
        np.testing.assert_array_equal(converted.labels, split.labels)
    np.testing.assert_allclose(rgb.mean, np.repeat(gray.mean, 3, -1), rtol=1e-6)
    # Color made gray by PIL's luma, as the gray copy's files were.
    color = data.load_test_data("cifar10", data_dir=str(cifar_dir))
    made_gray = data.with_channels(color, 1)
    for label, name in enumerate(("cat", "dog")):
        np.testing.assert_array_equal(
            made_gray.test.images[color.test.labels == CLASSES.index(name)],
            gray.test.images[gray.test.labels == label],
        )
    first = sorted((cifar_dir / "test" / "airplane").iterdir())[0]
    assert made_gray.mean is None  # test data alone has none
    streamed = dataclasses.replace(
        color, test=data.Split(1, labels=np.zeros(1, np.int32), paths=np.asarray([str(first)]))
    )
    with pytest.raises(ValueError, match="1 channel.*read as RGB from their files"):
        data.with_channels(streamed, 1)
    with pytest.raises(ValueError, match="1, 3 or 4 channels; the model takes 2"):
        data.with_channels(gray, 2)


def test_missing_and_unrecognised_data_dirs(tmp_path):
    with pytest.raises(data.DataError, match="is not a directory"):
        data.load_data("cifar10", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(data.DataError, match="Unrecognised layout"):
        data.load_data("cifar10", data_dir=str(tmp_path))


def write_cifar_binary(folder, images, labels, names):
    os.makedirs(folder)
    records = np.concatenate(
        [labels[:, None].astype(np.uint8), images.transpose(0, 3, 1, 2).reshape(len(images), -1)],
        axis=1,
    )
    for i, part in enumerate(np.array_split(records, 5), start=1):
        part.tofile(os.path.join(folder, f"data_batch_{i}.bin"))
    records[:50].tofile(os.path.join(folder, "test_batch.bin"))
    with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


@pytest.mark.real_data
def test_the_fixture_is_cut_losslessly_from_the_original_batches(cifar, full_cifar_dir):
    """The fixture's PNGs are the first images of each class of data_batch_1.bin and
    test_batch.bin (tests/data/make_cifar10_fixture.py), pixel for pixel."""
    full = data.load_data("cifar10", str(full_cifar_dir))
    assert (full.train.num_examples, full.test.num_examples) == (50_000, 10_000)
    # The fingerprint the Table 6 runs' committed records carry: new nets join them.
    table6 = os.path.join(os.path.dirname(__file__), "..", "docs", "paper_table6", "resnet20")
    if os.path.isfile(os.path.join(table6, "config.json")):
        with open(os.path.join(table6, "config.json")) as f:
            assert full.fingerprint == json.load(f)["data"]["fingerprint"]
    assert full.class_names == CLASSES
    for part, whole, per_class in ((cifar.train, full.train, 50), (cifar.test, full.test, 25)):
        images, labels = whole.images[:10_000], whole.labels[:10_000]  # the first batch file
        expected = [images[labels == label][:per_class] for label in range(10)]
        np.testing.assert_array_equal(part.images, np.concatenate(expected))
        np.testing.assert_array_equal(part.labels, np.repeat(np.arange(10), per_class))


def test_cifar_binary_and_python_batches(cifar, tmp_path):
    images, labels = cifar.train.images, cifar.train.labels
    write_cifar_binary(tmp_path / "cifar-10-batches-bin", images, labels, CLASSES)
    binary = data.load_data("cifar10", data_dir=str(tmp_path))
    np.testing.assert_array_equal(binary.train.images, images)
    np.testing.assert_array_equal(binary.train.labels, labels)
    assert binary.class_names == CLASSES and binary.test.num_examples == 50

    py = tmp_path / "py" / "cifar-10-batches-py"
    os.makedirs(py)
    flat = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    for i, part in enumerate(np.array_split(np.arange(len(images)), 5), start=1):
        with open(py / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": flat[part], b"labels": labels[part].tolist()}, f)
    with open(py / "test_batch", "wb") as f:
        pickle.dump({b"data": flat[:50], b"labels": labels[:50].tolist()}, f)
    with open(py / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CLASSES]}, f)
    python = data.load_data("cifar10", data_dir=str(tmp_path / "py"))
    np.testing.assert_array_equal(python.train.images, images)
    assert python.source.endswith("cifar-10-batches-py") and python.class_names == CLASSES
    # Binary batches are preferred where both exist.
    shutil.copytree(tmp_path / "cifar-10-batches-bin", tmp_path / "py" / "cifar-10-batches-bin")
    both = data.load_data("cifar10", data_dir=str(tmp_path / "py"))
    assert both.source.endswith("cifar-10-batches-bin")


def test_the_fingerprint_tells_other_pixels_from_the_same_pixels_in_other_files(cifar, tmp_path):
    """PNG folders and CIFAR batches of the same images, in any order, share one; a JPEG
    re-encoding of one image, or one label changed, does not."""
    assert cifar.describe()["fingerprint"] == cifar.fingerprint and len(cifar.fingerprint) == 16
    images, labels = cifar.train.images, cifar.train.labels
    order = np.random.RandomState(1).permutation(len(images))

    def batches(name, images, labels, tests):
        folder = tmp_path / name / "cifar-10-batches-bin"
        write_cifar_binary(folder, images, labels, CLASSES)
        records = np.concatenate(
            [
                tests.labels[:, None].astype(np.uint8),
                tests.images.transpose(0, 3, 1, 2).reshape(len(tests.images), -1),
            ],
            axis=1,
        )
        records.tofile(folder / "test_batch.bin")
        return data.load_data("cifar10", data_dir=str(tmp_path / name))

    shuffled_test = cifar.test.subset(np.random.RandomState(2).permutation(250))
    same = batches("same", images[order], labels[order], shuffled_test)
    assert same.source != cifar.source and same.fingerprint == cifar.fingerprint
    jpeg = images.copy()
    jpeg[7] = tf.io.decode_jpeg(tf.io.encode_jpeg(images[7], quality=95)).numpy()
    assert batches("jpeg", jpeg, labels, cifar.test).fingerprint != cifar.fingerprint
    relabelled = labels.copy()
    relabelled[7] = (labels[7] + 1) % 10
    assert batches("label", images, relabelled, cifar.test).fingerprint != cifar.fingerprint


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_python_batches_are_read_without_running_code(cifar, tmp_path, protocol):
    """A crafted batch is an error naming it; the numpy arrays of real ones still load."""
    py = tmp_path / "cifar-10-batches-py"
    os.makedirs(py)
    images, labels = cifar.train.images[:60], cifar.train.labels[:60]
    flat = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(py / name, "wb") as f:
            pickle.dump({b"data": flat, b"labels": labels.tolist()}, f, protocol=protocol)
    with open(py / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CLASSES]}, f, protocol=protocol)
    loaded = data.load_data("cifar10", data_dir=str(tmp_path))
    np.testing.assert_array_equal(loaded.train.images[:60], images)

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(py / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Payload(), b"labels": []}, f, protocol=protocol)
    with pytest.raises(data.DataError, match=r"data_batch_3.*refers to (posix|os)\.system"):
        data.load_data("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()
    with open(py / "data_batch_3", "wb") as f:
        pickle.dump([1, 2, 3], f, protocol=protocol)
    with pytest.raises(data.DataError, match="data_batch_3.*holds a list, not a dict"):
        data.load_data("cifar10", data_dir=str(tmp_path))


def test_truncated_cifar_batch_is_named(cifar, tmp_path):
    write_cifar_binary(
        tmp_path / "cifar-10-batches-bin", cifar.train.images, cifar.train.labels, CLASSES
    )
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(data.DataError, match="data_batch_3.bin.* truncated"):
        data.load_data("cifar10", data_dir=str(tmp_path))


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_with_real_digits(tmp_path):
    digits = data.load_data("digits")
    images = digits.train.images[..., 0]
    for prefix, split in (("train", digits.train), ("t10k", digits.test)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", split.images[..., 0])
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", split.labels)
    idx = data.load_data("mnist", data_dir=str(tmp_path))
    np.testing.assert_array_equal(idx.train.images[..., 0], images)
    assert idx.image_shape == (8, 8, 1) and idx.class_names == [str(d) for d in range(10)]
    assert not idx.preprocessing.flip  # digits are not mirrored
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_data("mnist", data_dir=str(tmp_path))


def test_digits_and_synthetic():
    digits = data.load_data("digits")
    assert digits.train.num_examples + digits.test.num_examples == 1797
    assert digits.image_shape == (8, 8, 1) and digits.train.images.max() == 255
    assert np.bincount(digits.test.labels).min() >= 30  # stratified split
    synthetic = data.load_data("synthetic")
    assert synthetic.image_shape == (32, 32, 3) and synthetic.num_classes == 10
    # Synthetic images come from the seed: a run with another seed is not on other data.
    assert synthetic.fingerprint is None and len(digits.fingerprint) == 16


def test_tfds_source_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        d = data.load_data("cifar10")
        names = tfds.builder("cifar10").info.features["label"].names
    assert d.source == "tfds cifar10" and d.image_shape == (32, 32, 3)
    assert d.class_names == names and len(names) == 10 and d.train.num_examples == 20
    assert d.train.images.dtype == np.uint8 and d.preprocessing.kind == "cifar"


def test_a_served_image_is_shrunk_with_antialiasing_and_enlarged_as_before(cifar):
    # A photo given to a CIFAR net: 128x96 of fine detail (noise) to 32x32. Without
    # antialiasing each output pixel is a few of the 12 it stands for (38 levels from their
    # mean here); with it, close to their mean.
    cifar_net = data.Preprocessing("cifar")
    noise = np.random.default_rng(0).integers(0, 256, (128, 96, 3)).astype(np.uint8)
    means = noise.reshape(32, 4, 32, 3, 3).mean(axis=(1, 3))
    shrunk = cifar_net.serving_image(noise, 32, 32).numpy()
    assert np.abs(shrunk - means).mean() < 12
    # Enlarging is the bilinear resize it always was; the net's own size is left as it is.
    small = cifar.test.images[0, :16, :20]
    enlarged = cifar_net.serving_image(small, 32, 32).numpy()
    np.testing.assert_array_equal(enlarged, tf.image.resize(small, [32, 32]).numpy())
    same = cifar_net.serving_image(cifar.test.images[0], 32, 32).numpy()
    np.testing.assert_array_equal(same, cifar.test.images[0].astype(np.float32))


def test_pad_crop_augmentation_is_a_window_of_the_padded_image(cifar):
    batch, labels = next(iter(data.train_dataset(cifar, 16, seed=3)))
    assert batch.dtype == tf.uint8 and batch.shape == (16, 32, 32, 3)
    for image, label in zip(batch.numpy(), labels.numpy()):
        candidates = cifar.train.images[cifar.train.labels == label]
        assert _is_window(image, candidates)


def _is_window(image, candidates):
    """Whether `image` is a 32x32 window of some zero-padded candidate, mirrored or not."""
    padded = np.pad(candidates, ((0, 0), (4, 4), (4, 4), (0, 0)))
    for source in (padded, padded[:, :, ::-1]):
        # windows[n, dy, dx] is source[n, dy : dy + 32, dx : dx + 32]
        windows = np.lib.stride_tricks.sliding_window_view(source, (32, 32), axis=(1, 2))
        if (windows == image.transpose(2, 0, 1)).all(axis=(3, 4, 5)).any():
            return True
    return False


def test_a_resumed_stream_goes_on_with_the_batches_of_the_run_that_stopped(cifar):
    """From any step, across the end of a pass too: what an unstopped run would have seen."""
    batch = 64  # 500 examples: 7.8 batches a pass
    whole = list(data.train_dataset(cifar, batch, seed=4).take(20).as_numpy_iterator())
    for start in (3, 7, 8, 15):
        resumed = data.train_dataset(cifar, batch, seed=4, start_step=start)
        for (images, labels), (expected, expected_labels) in zip(
            resumed.take(20 - start).as_numpy_iterator(), whole[start:], strict=True
        ):
            np.testing.assert_array_equal(images, expected)
            np.testing.assert_array_equal(labels, expected_labels)
    # Each pass is shuffled anew: every example once a pass, in another order each time.
    labels = np.concatenate([labels for _, labels in whole])
    passes = labels[:1000].reshape(2, 500)
    for one in passes:
        np.testing.assert_array_equal(np.bincount(one), np.bincount(cifar.train.labels))
    assert not np.array_equal(passes[0], passes[1])


def test_pipeline_is_seeded(cifar):
    first = next(iter(data.train_dataset(cifar, 8, seed=5)))[0].numpy()
    again = next(iter(data.train_dataset(cifar, 8, seed=5)))[0].numpy()
    other = next(iter(data.train_dataset(cifar, 8, seed=6)))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Test batches are unaugmented and in order.
    test_batch = next(iter(data.eval_dataset(cifar, cifar.test, 10)))[0].numpy()
    np.testing.assert_array_equal(test_batch, cifar.test.images[:10])


@pytest.fixture(scope="module")
def large_folder(cifar, tmp_path_factory):
    """Real CIFAR images upscaled to 96x80 PNGs: an ImageNet-style folder, 4 images a class."""
    root = tmp_path_factory.mktemp("large")
    for split, split_data, per_class in (("train", cifar.train, 50), ("test", cifar.test, 25)):
        for i in [c * per_class + j for c in range(10) for j in range(4)]:
            folder = root / split / CLASSES[split_data.labels[i]]
            os.makedirs(folder, exist_ok=True)
            big = tf.image.resize(split_data.images[i], (96, 80)).numpy().astype(np.uint8)
            tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(big))
    return root


def test_large_images_are_read_from_their_files_with_scale_augmentation(large_folder):
    d = data.load_data("folder", data_dir=str(large_folder), image_size=48)
    assert (
        d.preprocessing == data.Preprocessing("imagenet", True, 48)
        and d.train.images is None
        and len(d.train.paths) == 40
        and d.image_shape == (48, 48, 3)
        and d.fingerprint is None  # not worth reading every file of ImageNet for
    )
    assert d.mean.shape == (3,)
    batch = next(iter(data.train_dataset(d, 8, seed=0)))[0]
    assert batch.shape == (8, 48, 48, 3) and batch.dtype == tf.uint8
    test_batch = next(iter(data.eval_dataset(d, d.test, 8)))[0]
    assert test_batch.shape == (8, 48, 48, 3)


def test_a_folder_read_from_its_files_is_shuffled_whole_and_resumes_exactly(large_folder):
    """Files are listed class by class: a pass is a shuffle of all of them, not of a buffer."""
    d = data.load_data("folder", data_dir=str(large_folder), image_size=48)
    whole = list(data.train_dataset(d, 8, seed=3).take(10).as_numpy_iterator())
    for start in (2, 5, 7):
        resumed = data.train_dataset(d, 8, seed=3, start_step=start)
        for (images, labels), (expected, expected_labels) in zip(
            resumed.take(10 - start).as_numpy_iterator(), whole[start:], strict=True
        ):
            np.testing.assert_array_equal(images, expected)
            np.testing.assert_array_equal(labels, expected_labels)
    passes = np.concatenate([labels for _, labels in whole]).reshape(2, 40)
    for one in passes:
        assert np.bincount(one).tolist() == [4] * 10
    assert not np.array_equal(passes[0], passes[1])

    # A sample of the files spreads over the classes, where the first files are 2 classes;
    # the channel mean is the sample's.
    sample = d.train.sample(8)
    assert len(set(sample.labels.tolist())) >= 5
    images = [image for image, _ in sample.dataset().as_numpy_iterator()]
    expected = np.mean([image.reshape(-1, 3).mean(axis=0) for image in images], axis=0)
    np.testing.assert_allclose(
        data.preprocessing._channel_mean(d.train, sample=8), expected, rtol=1e-6
    )

    # The paper's kind of hold-out works on files too: disjoint, of all classes.
    held = data.load_data("folder", data_dir=str(large_folder), image_size=48, validation_split=10)
    assert (held.train.num_examples, held.validation.num_examples) == (30, 10)
    assert not set(held.train.paths) & set(held.validation.paths)
    assert set(held.train.paths) | set(held.validation.paths) == set(d.train.paths)
    assert len(set(held.validation.labels.tolist())) >= 5
    assert next(iter(data.eval_dataset(held, held.validation, 10)))[0].shape == (10, 48, 48, 3)


def test_the_file_a_training_batch_could_not_read_is_named(large_folder, tmp_path):
    """TensorFlow's decode error names no file; the stateless stream says which batch held it."""
    root = copy_tree(large_folder, tmp_path / "copy")
    d = data.load_data("folder", data_dir=str(root), image_size=48)
    label_of = dict(zip(d.train.paths, d.train.labels, strict=True))
    batches = list(data.train_dataset(d, 8, seed=3).take(4).as_numpy_iterator())
    for step in (0, 2, 6):  # step 6 is in the second pass
        files = data.training_files(d, 8, seed=3, step=step)
        expected = next(iter(data.train_dataset(d, 8, seed=3, start_step=step)))[1].numpy()
        np.testing.assert_array_equal([label_of[path] for path in files], expected)
    assert list(data.training_files(d, 8, seed=3, step=1, steps=2)) == list(
        data.training_files(d, 8, seed=3, step=1)
    ) + list(data.training_files(d, 8, seed=3, step=2))
    error = tf.errors.UnknownError(None, None, "a read error")
    data.name_unreadable_image(error, d.train.paths)  # every file reads: it returns

    broken, missing = data.training_files(d, 8, seed=3, step=2)[[3, 5]]
    with open(broken, "wb") as f:
        f.write(b"\x89PNG not really")
    os.remove(missing)
    # The error comes with the batch that holds the file, not before it.
    iterator = data.train_dataset(d, 8, seed=3).as_numpy_iterator()
    for expected in batches[:2]:
        np.testing.assert_array_equal(next(iterator)[1], expected[1])
    with pytest.raises(tf.errors.OpError) as raised:
        next(iterator)
    with pytest.raises(data.DataError) as named:
        data.name_unreadable_image(raised.value, data.training_files(d, 8, seed=3, step=2), "Why.")
    message = str(named.value)
    assert message.startswith(f"{broken!r} is not an image that can be decoded (JPEG, PNG")
    assert message.endswith(". Why.") and "{{" not in message and "[Op:" not in message
    assert named.value.__cause__ is raised.value
    with pytest.raises(data.DataError, match=f"^Image file {re.escape(repr(missing))} no longer"):
        data.name_unreadable_image(error, [missing])
    data.name_unreadable_image(error, None)  # no files read: the caller raises its error

    # A file read before training (for the channel mean) is named as the data loads.
    with pytest.raises(data.DataError, match=f"{re.escape(repr(broken))}|no longer exists"):
        data.load_data("folder", data_dir=str(root), image_size=48)


def test_test_data_alone_reads_no_training_images(cifar_dir, tmp_path, monkeypatch):
    """A folder with only test/ loads; CIFAR batches without training files load."""
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (only_test / "test").symlink_to(cifar_dir / "test")
    test_data = data.load_test_data("cifar10", str(only_test))
    assert test_data.train is None and test_data.mean is None
    assert test_data.test.num_examples == 250 and test_data.image_shape == (32, 32, 3)
    full = data.load_data("cifar10", str(cifar_dir))
    np.testing.assert_array_equal(test_data.test.images, full.test.images)
    assert test_data.class_names == full.class_names
    assert test_data.preprocessing == full.preprocessing
    with pytest.raises(data.DataError, match="Missing directory .*train"):
        data.load_data("cifar10", str(only_test))

    batches = tmp_path / "cifar-10-batches-bin"
    batches.mkdir()
    records = np.concatenate(
        [full.test.labels[:, None].astype(np.uint8),
         full.test.images.transpose(0, 3, 1, 2).reshape(-1, 3072)], axis=1
    )  # fmt: skip
    records.tofile(batches / "test_batch.bin")
    (batches / "batches.meta.txt").write_text("\n".join(full.class_names))
    from_batches = data.load_test_data("cifar10", str(tmp_path))
    np.testing.assert_array_equal(from_batches.test.images, full.test.images)
    with pytest.raises(data.DataError, match="Missing CIFAR batch file .*data_batch_1.bin"):
        data.load_data("cifar10", str(tmp_path))


def test_evaluate_command_on_a_test_only_folder(cifar_dir, tmp_path, run_main):
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (only_test / "test").symlink_to(cifar_dir / "test")
    result = run_main(
        "evaluate", "--weights", "cifar10", "--depth", "20", "--data-dir", only_test,
        "--confusion-png", tmp_path / "confusion.png",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "250 examples" in result.stdout


def test_each_worker_of_a_cluster_reads_and_decodes_only_its_share_of_each_batch(
    large_folder, tmp_path
):
    """Two workers of two replicas each: together the batches of one process, files decoded once."""
    root = copy_tree(large_folder, tmp_path / "copy")
    d = data.load_data("folder", data_dir=str(root), image_size=48)
    whole = list(data.train_dataset(d, 8, seed=3, start_step=1).take(3).as_numpy_iterator())

    def worker(index):
        context = tf.distribute.InputContext(2, index, num_replicas_in_sync=4)
        return data.train_dataset(d, 8, seed=3, start_step=1, input_context=context)

    # A worker's replicas take consecutive per-replica batches (2 images): 2 a step.
    shares = [list(worker(i).take(6).as_numpy_iterator()) for i in (0, 1)]
    for step, (images, labels) in enumerate(whole):
        pieces = [share[2 * step + r] for share in shares for r in (0, 1)]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), images)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), labels)

    # A file in worker 1's half of the first batch stops worker 1 alone: worker 0 never reads it.
    broken = data.training_files(d, 8, seed=3, step=1)[6]
    with open(broken, "wb") as f:
        f.write(b"\x89PNG not really")
    assert len(list(worker(0).take(6))) == 6
    with pytest.raises(tf.errors.OpError):
        list(worker(1).take(2))
