"""The `keras-mlm` command: a thin layer over the library.

Each verb lives in a small module that registers its parser and a `run(args)` function; every error a
user can fix is a `UserInputError`, printed as one line with a non-zero exit code. A verb that passes
options on to another tool (`prepare --runner NAME -- BEAM OPTIONS`) receives what follows `--` as
`args.pipeline_options`.
"""

import argparse
import functools
import os
import sys

from keras_mlm.errors import UserInputError

EXIT_USER_ERROR = 2


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows each flag's default: argparse's "(default: X)", unless the help text already
    says it; a flag without a value of its own (None: taken from a config file or computed) says so."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.required or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.default is None or action.default == []:
            return f"{text} (default: not set)"
        return super()._get_help_string(action)


def build_parser():
    from keras_mlm.cli import checkpoint_commands, data_commands, illustrate_commands, model_commands

    parser = argparse.ArgumentParser(prog="keras-mlm", description="Masked language model pre-training with TensorFlow/Keras.")
    parser.add_argument("--version", action="version", version=f"keras-mlm {__import__('keras_mlm').__version__}")
    verbs = parser.add_subparsers(
        dest="verb", metavar="VERB", required=True, parser_class=functools.partial(argparse.ArgumentParser, formatter_class=DefaultsHelpFormatter)
    )
    for module in (data_commands, model_commands, checkpoint_commands, illustrate_commands):
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
    argv = sys.argv[1:] if argv is None else list(argv)
    passthrough = []
    if "--" in argv:
        argv, passthrough = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = parser.parse_args(argv)
    if passthrough:
        if not hasattr(args, "pipeline_options"):
            parser.error(f"{args.verb} takes no options after --")
        args.pipeline_options = passthrough
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
