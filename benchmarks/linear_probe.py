"""A linear classifier on frozen features of a pretrained network, on a data set it
was not trained on, against the same classifier on raw pixels.

The network is a `weights="cifar10"` ResNet (trained on CIFAR-10's colour photographs,
packaged, offline), used as a frozen backbone through `keras_resnet.feature_extractor`;
the data set is Fashion-MNIST (28x28 grey clothes; Debian's `dataset-fashion-mnist`,
the official IDX files). Each image is padded with two black pixels a side to 32x32
and repeated to three channels: the RGB pixels 0-255 the network takes. Each stage's
output is global-average pooled; the classifier is scikit-learn's multinomial
logistic regression on standardized inputs, the same for every input it is given:

- raw pixels: the 784 grey values of the 28x28 image;
- `conv4` pooled: the 64 features the network's own classifier reads;
- `conv2` + `conv3` + `conv4` pooled: 16 + 32 + 64 = 112 features.

Trained on the training images (all 60,000 unless `--train-subset`), tested on the
official 10,000 test images; accuracy and the time of each step are reported.

    apt-get install dataset-fashion-mnist
    python benchmarks/linear_probe.py --data-dir /usr/share/datasets/fashion-mnist \\
        [--depth 56] [--train-subset N] [--output benchmarks/linear_probe.md]
"""

import argparse
import os
import sys
import time

import common
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

INPUTS = {
    "raw pixels": None,
    "`conv4` pooled": ["conv4"],
    "`conv2` + `conv3` + `conv4` pooled": ["conv2", "conv3", "conv4"],
}


def to_network_pixels(images):
    """(N, 28, 28, 1) uint8 grey -> (N, 32, 32, 3) float32 RGB pixels 0-255."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return np.repeat(padded, 3, axis=-1).astype("float32")


def pooled_feature_model(depth):
    """Each stage's globally average-pooled output of the frozen pretrained network."""
    import keras

    import keras_resnet

    network = keras_resnet.ResNet(depth, stem="cifar", weights="cifar10")
    backbone = keras_resnet.feature_extractor(network, trainable=False)
    pooled = {
        stage: keras.layers.GlobalAveragePooling2D(name=f"{stage}_pool")(output)
        for stage, output in backbone.output.items()
    }
    return keras.Model(backbone.input, pooled)


def fit_and_score(train_x, train_y, test_x, test_y, max_iter):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    start = time.perf_counter()
    # One BLAS thread: on a CPU another process keeps busy, two spinning threads made
    # the fit some 15 times slower than one.
    with threadpool_limits(limits=1):
        classifier.fit(train_x, train_y)
    seconds = time.perf_counter() - start
    iterations = int(classifier[-1].n_iter_.max())
    return float((classifier.predict(test_x) == test_y).mean()), seconds, iterations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--depth", type=int, default=56, choices=(20, 32, 44, 56))
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    from keras_resnet.data import read_source

    train, test, _, source = read_source("fashion_mnist", args.data_dir)
    train_images, train_labels = train.images, train.labels
    if args.train_subset:  # a fixed random subset
        keep = np.random.RandomState(0).permutation(len(train_labels))[: args.train_subset]
        train_images, train_labels = train_images[keep], train_labels[keep]

    model = pooled_feature_model(args.depth)
    start = time.perf_counter()
    features = {
        split: model.predict(to_network_pixels(images), batch_size=args.batch_size, verbose=0)
        for split, images in (("train", train_images), ("test", test.images))
    }
    extraction = time.perf_counter() - start
    images = len(train_labels) + len(test.labels)

    rows = []
    for label, stages in INPUTS.items():
        if stages is None:
            train_x = train_images.reshape(len(train_images), -1).astype("float32") / 255
            test_x = test.images.reshape(len(test.images), -1).astype("float32") / 255
        else:
            train_x = np.concatenate([features["train"][s] for s in stages], axis=1)
            test_x = np.concatenate([features["test"][s] for s in stages], axis=1)
        accuracy, seconds, iterations = fit_and_score(
            train_x, train_labels, test_x, test.labels, args.max_iter
        )
        rows.append(
            f"| {label} | {train_x.shape[1]} | {100 * accuracy:.2f}% | "
            f"{100 * (1 - accuracy):.2f}% | {seconds:.0f} s ({iterations} iterations) |"
        )
        print(rows[-1], flush=True)

    import sklearn

    command = "python benchmarks/linear_probe.py " + " ".join(argv or sys.argv[1:])
    common.report(
        f'Linear probe: frozen ResNet-{args.depth} (`weights="cifar10"`) features on Fashion-MNIST',
        command.strip(),
        [
            f"- data: {source}; {len(train_labels):,} training images"
            f"{' (a fixed random subset)' if args.train_subset else ''}, "
            f"the official {len(test.labels):,} test images; 28x28 grey padded to 32x32, "
            "repeated to RGB",
            f"- classifier: scikit-learn {sklearn.__version__} StandardScaler + "
            f"LogisticRegression (multinomial, lbfgs, C=1, max_iter={args.max_iter}), "
            "one BLAS thread",
            f"- features: {images:,} images through the frozen network in "
            f"{extraction:.0f} s ({images / extraction:.0f} images/s, batch {args.batch_size})",
            "",
            "| classifier input | features | test accuracy | test error | fit time |",
            "|---|---:|---:|---:|---:|",
            *rows,
        ],
        args.output,
    )


if __name__ == "__main__":
    main()
