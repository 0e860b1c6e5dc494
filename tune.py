"""`python tune.py ...` in a checkout: the same command as `keras-resnet-tune`.

`python tune.py --help` lists its flags; the code is in keras_resnet/tune.py.
"""

import sys

from keras_resnet.tune import main

if __name__ == "__main__":
    sys.exit(main())
