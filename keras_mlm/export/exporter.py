"""A run -> saved_models/NAME/VERSION/, a SavedModel TF Serving can load, published atomically.

    trace every signature        (signatures.py: builders registered for the model type)
    check their custom ops       (serving_ops.py: against the target TF Serving release)
    write the archive            (keras.export.ExportArchive) into NAME/.tmp-VERSION-PID/
    re-check the written graph, add and replay the warm-up requests
    rename to NAME/VERSION/      (TF Serving ignores non-integer folders, so it never sees a partial one)
    update models.config         (atomically, under a lock)
"""

import dataclasses
import os
import re
import shutil

import keras
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.export import guards, model_config, serving_ops, signatures as signatures_lib, warmup

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: str
    """saved_models/NAME/VERSION."""
    name: str
    version: int
    signatures: tuple
    """Exported signature names, serving_default's target first."""
    serving_default: str
    check: object
    """The `ServingCheck` of the written SavedModel."""
    warmup_requests: int
    models_config: str
    descriptions: tuple = ()

    def summary(self):
        lines = [
            f"wrote {self.path}: model {self.name!r} version {self.version}",
            f"signatures: {', '.join(self.signatures)}; serving_default -> {self.serving_default}",
            *self.descriptions,
            self.check.report(),
            f"  (custom ops only: core ops are those of TensorFlow {tf.__version__}, which wrote the graph)",
            f"warm-up: {self.warmup_requests} requests in {warmup.WARMUP_FILE} (replayed: all passed)",
            f"models.config: {self.models_config}",
        ]
        return "\n".join(lines)


def existing_versions(model_dir):
    """Integer version folders of a model folder (any integer name counts, finished or not)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit())


def _check_options(name, version, top_k, serving_version):
    """Checks what needs no model, so a typo fails before the run is loaded."""
    if not NAME_PATTERN.match(name or ""):
        raise UserInputError(f"--name {name!r}: use letters, digits, '_', '.', '-' (first a letter or digit)")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise UserInputError(f"--version must be a positive integer, got {version!r}")
    if top_k < 1:
        raise UserInputError(f"--top-k must be at least 1, got {top_k}")
    if serving_version not in (None, "none"):
        serving_ops.serving_release(serving_version)


def _check_sequence_length(sequence_length, model):
    limit = getattr(getattr(model, "encoder", model), "max_sequence_length", None)
    if limit is not None and sequence_length > limit:
        raise UserInputError(f"sequence length {sequence_length} exceeds the model's max_sequence_length {limit}")


def _choose_builders(model, names):
    builders = signatures_lib.signatures_for(model)
    if names is None:
        return builders
    by_name = {b.name: b for b in builders}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise UserInputError(f"--signatures {','.join(names)}: unknown {', '.join(unknown) or '(empty)'} (allowed: {', '.join(by_name)})")
    return tuple(b for b in builders if b.name in names)


def _needs_mask(builders):
    """Whether the exported signatures fill masks (warm-up texts then need a [MASK]; a task model's don't)."""
    return any(isinstance(b, (signatures_lib.FillMaskText, signatures_lib.FillMask)) for b in builders)


def _check_vocabulary_kind(vocabulary, builders):
    """Task signatures (classify, tag, answer) tokenize with WordPiece only, as fine-tuning does."""
    if vocabulary.kind == "wordpiece":
        return
    masked_lm = (signatures_lib.FillMaskText, signatures_lib.FillMask, signatures_lib.Encode)
    wordpiece_only = [b.name for b in builders if not isinstance(b, masked_lm)]
    if wordpiece_only:
        raise UserInputError(
            f"signature(s) {', '.join(wordpiece_only)} tokenize with WordPiece only; this model's vocabulary is "
            f"{vocabulary.kind} (export a masked LM's fill_mask_text, fill_mask and encode, or fine-tune from a WordPiece run)"
        )


def _pack_warmup_texts(context, texts, require_mask=True):
    from keras_mlm.export.text_inputs import TextPacker

    packer = context.text_packer if require_mask else TextPacker(context.text_vocabulary(), context.sequence_length, require_mask=False)
    try:
        return tf.function(packer)(tf.constant(texts)).numpy()
    except tf.errors.InvalidArgumentError as e:
        raise UserInputError(f"warm-up texts: {guards.error_message(e)}") from None


def export_model(
    model, tokens, sequence_length, name, *, lowercase=None, version=None, to="saved_models",
    serving_version=serving_ops.DEFAULT_SERVING_VERSION, top_k=5, signatures=None, warmup_texts=None,
    base_path=model_config.DEFAULT_BASE_PATH, verbose=False, task=None,
):
    """Exports `model` (a registered model type) as to/name/version; returns an `ExportResult`.

    tokens: the model's vocabulary: a `Vocabulary` of any kind (WordPiece, byte-level BPE,
        SentencePiece), or a WordPiece token list (`lowercase` None: inferred from it).

    serving_version: TF Serving release every signature must run on ("2.20"), or None for no check
        (a server with extra ops linked); serving_default is the first registered signature that
        stock TF Serving can run.
    signatures: names to export (default: all registered for the model type).
    warmup_texts: texts for the warm-up requests (default: made from the vocabulary; with its mask
        token for a masked LM).
    task: a task run's config.yaml `task` section (settings a task signature reads, e.g. QA's doc_stride).
    """
    from keras_mlm.tokenizers.vocabulary import as_vocabulary

    vocabulary = as_vocabulary(tokens, lowercase)  # a WordPiece list's casing: `lowercase`, else inferred
    warmup.serving_apis()  # tensorflow-serving-api is installed
    _check_options(name, version, top_k, serving_version)
    _check_sequence_length(sequence_length, model)
    context = signatures_lib.ExportContext(
        model, vocabulary.tokens, int(sequence_length), vocabulary.lowercase, int(top_k), task, vocabulary=vocabulary
    )
    builders = _choose_builders(model, signatures)
    _check_vocabulary_kind(vocabulary, builders)
    model_dir = os.path.join(to, name)
    version = version or max(existing_versions(model_dir), default=0) + 1
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise UserInputError(f"{final} already exists: versions are immutable, export as a new --version")

    require_mask = _needs_mask(builders)
    texts = list(warmup_texts or warmup.default_texts(vocabulary, with_mask=require_mask))
    token_ids = _pack_warmup_texts(context, texts, require_mask)  # checks the warm-up texts before the slow part

    # Trace every signature and check its custom ops before anything is written.
    functions, needed = {}, {}
    for builder in builders:
        function = tf.function(builder.build(context), input_signature=builder.input_signature(context), autograph=False)
        needed[builder.name] = serving_ops.concrete_function_custom_ops(function.get_concrete_function())
        functions[builder.name] = function
    check = serving_ops.check_serving(needed, serving_version)
    serving_ops.refuse_unservable(check)
    default = next((n for n in functions if check.servable(n)), next(iter(functions)))
    order = [default] + [n for n in functions if n != default]

    os.makedirs(model_dir, exist_ok=True)
    tmp = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for resource in context.resources:  # the BPE / SentencePiece tokenizer layers of the text signature
            archive.track(resource)
        for signature_name in order:  # the first endpoint is also written as serving_default
            archive.add_endpoint(signature_name, functions[signature_name])
        archive.write_out(tmp, verbose=False)

        # The graph as written is what TF Serving loads: check it again, signature by signature.
        written = serving_ops.signature_custom_ops(tmp)
        check = serving_ops.check_serving({n: written[n] for n in ("serving_default", *order)}, serving_version)
        serving_ops.refuse_unservable(check)

        by_name = {b.name: b for b in builders}
        requests = warmup.build_requests(name, [by_name[n] for n in order], texts, token_ids)
        warmup.write_requests(tmp, requests)
        loaded = tf.saved_model.load(tmp)
        for request in warmup.read_requests(tmp):
            try:
                warmup.run_request(loaded, request)
            except tf.errors.OpError as e:
                raise UserInputError(f"warm-up request for {request.model_spec.signature_name} failed: {guards.error_message(e)}") from None
        del loaded

        if os.path.exists(final):
            raise UserInputError(f"{final} appeared while exporting (another export?); nothing was published")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    config_path, _ = model_config.update_models_config(to, [name], base_path)
    result = ExportResult(
        path=final, name=name, version=version, signatures=tuple(order), serving_default=default, check=check,
        warmup_requests=len(requests), models_config=config_path,
        descriptions=tuple(b.describe(context) for b in builders),
    )
    if verbose:
        print(result.summary())
    return result


def export_run(run_dir, name, *, model_path=None, **options):
    """Loads RUN_DIR (model.keras, its vocabulary of any kind, config.yaml) and exports it; options as `export_model`."""
    from keras_mlm.inference.run import load_run

    _check_options(name, options.get("version"), options.get("top_k", 5), options.get("serving_version", serving_ops.DEFAULT_SERVING_VERSION))
    run = load_run(run_dir, model_path=model_path)
    from keras_mlm.models import PairPretrainer

    # An NSP/SOP pre-trainer serves its masked LM: the pair head is a pre-training device, not a served task.
    model = run.masked_lm if isinstance(run.model, PairPretrainer) else run.model
    return export_model(model, run.vocabulary, run.sequence_length, name, task=run.config.get("task"), **options)
