"""saved_models/models.config: the ModelServerConfig text proto naming every exported model.

    tensorflow_model_server --model_config_file=/models/models.config

Each model is `base_path: "<prefix>/<name>"`, the prefix being where the server sees the
saved_models folder (/models in the tensorflow/serving Docker image). Entries already in the file
are kept as they are (a hand-edited version policy survives), models found on disk are added, and the
file is replaced atomically (temporary file + rename) under a lock, so the server, which re-reads it
with --model_config_file_poll_wait_seconds, never reads half a file.
"""

import contextlib
import fcntl
import os

from keras_mlm.errors import UserInputError

CONFIG_FILE = "models.config"
DEFAULT_BASE_PATH = "/models"


def is_version_dir(path):
    name = os.path.basename(path)
    return name.isdigit() and os.path.isfile(os.path.join(path, "saved_model.pb"))


def exported_models(root):
    """Names of the folders of `root` holding at least one version (an integer folder with a saved_model.pb)."""
    if not os.path.isdir(root):
        return []
    return sorted(
        name for name in os.listdir(root)
        if os.path.isdir(os.path.join(root, name))
        and any(is_version_dir(os.path.join(root, name, v)) for v in os.listdir(os.path.join(root, name)))
    )


@contextlib.contextmanager
def locked(root):
    """An exclusive lock on `root` for the read-modify-write of its models.config."""
    with open(os.path.join(root, f".{CONFIG_FILE}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_config(path):
    """The ModelServerConfig in `path` (empty when the file does not exist)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            try:
                text_format.Parse(f.read(), config)
            except text_format.ParseError as e:
                raise UserInputError(f"{path}: not a ModelServerConfig text proto ({e}); fix or remove it") from None
    return config


def update_models_config(root, names=(), base_path=DEFAULT_BASE_PATH):
    """Adds `names` and every model found in `root` to root/models.config; returns (path, config)."""
    path = os.path.join(root, CONFIG_FILE)
    os.makedirs(root, exist_ok=True)
    with locked(root):
        config = read_config(path)
        if config.WhichOneof("config") == "custom_model_config":
            raise UserInputError(f"{path}: holds a custom_model_config; keras-mlm only maintains a model_config_list")
        entries = config.model_config_list.config
        listed = {c.name for c in entries}
        for name in dict.fromkeys([*exported_models(root), *names]):
            if name not in listed:
                entry = entries.add()
                entry.name, entry.base_path, entry.model_platform = name, f"{base_path.rstrip('/')}/{name}", "tensorflow"
                listed.add(name)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(config))
        os.replace(tmp, path)
    return path, config
