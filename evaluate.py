"""`python evaluate.py ...` in a checkout: the same command as `keras-resnet-evaluate`.

`python evaluate.py --help` lists its flags; the code is in keras_resnet/evaluate.py.
"""

import sys

from keras_resnet.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
