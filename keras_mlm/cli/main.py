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


def quiet_tensorflow_import():
    """Imports TensorFlow with its start-up chatter (oneDNN, CUDA probing) kept off the terminal.

    Those lines are written by C++ before logging is configured, so no environment variable hides
    them; stderr is pointed at /dev/null for the import only. KERAS_MLM_TF_LOGS=1 shows them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get("KERAS_MLM_TF_LOGS") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401

        tensorflow.config.list_physical_devices()  # device probing prints too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        quiet_tensorflow_import()
        return args.run(args) or 0
    except UserInputError as e:
        print(f"keras-mlm {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"keras-mlm {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
