#!/usr/bin/env python
"""Thin script: export a SERAN model to a verified deployment bundle.

    python export/export_bundle.py MODEL --out DIR [--formats savedmodel,tflite,onnx,tensorrt]
        [--input-size HxW] [--int8-io] [--trt-profile MIN:OPT:MAX] [--overwrite] [--strict]

Same as ``keras-seran export``; the logic lives in ``keras_seran.export`` (see export/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_seran.errors import KerasSeranError
    from keras_seran.export import command

    parser = argparse.ArgumentParser(prog="export_bundle.py", description=__doc__.splitlines()[0])
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(command.run(args) or 0)
    except KerasSeranError as exc:
        print(f"export_bundle.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
