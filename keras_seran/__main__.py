"""``python -m keras_seran``: the ``keras-seran`` command line."""

import sys

from keras_seran.cli import main

sys.exit(main())
