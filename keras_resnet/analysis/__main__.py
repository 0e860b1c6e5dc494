"""`python -m keras_resnet.analysis`: the `keras-resnet-analysis` command."""

import sys

from keras_resnet.cli.analysis import main

sys.exit(main())
