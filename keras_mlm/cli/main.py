"""The `keras-mlm` command: a thin layer over the library.

Each verb lives in a small module that registers its parser and a `run(args)` function; every error a
user can fix is a `UserInputError`, printed as one line with a non-zero exit code.
"""

import argparse
import os
import sys

from keras_mlm.errors import UserInputError

EXIT_USER_ERROR = 2


def build_parser():
    from keras_mlm.cli import data_commands, model_commands

    parser = argparse.ArgumentParser(prog="keras-mlm", description="Masked language model pre-training with TensorFlow/Keras.")
    parser.add_argument("--version", action="version", version=f"keras-mlm {__import__('keras_mlm').__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in (data_commands, model_commands):
        module.register(verbs)
    try:
        from keras_mlm.cli import export_commands
    except ImportError:
        export_commands = None
    if export_commands is not None:
        export_commands.register(verbs)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except UserInputError as e:
        print(f"keras-mlm {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"keras-mlm {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
