"""Which custom ops each signature needs, and whether a stock TF Serving release provides them.

Stock TF Serving links core TensorFlow plus tensorflow-text's `ops_lib` (and TF Decision Forests'
inference ops), from a tensorflow-text release pinned in its workspace.bzl. A SavedModel that uses a
tensorflow-text op newer than that pin loads, then fails every request with "Op type not registered
'TFText>RoundRobinTrim'" (tensorflow/serving#2267). So the exporter walks each signature's graph,
function library included, lists the ops core TensorFlow does not register, and compares them with
the target server's.

The op sets below are the op registrations of the tensorflow-text wheels themselves (`TF_GetOpList`
of each `python/ops/_*.so`; 2.21.1 as installed, 2.12.1 and 2.20.0 downloaded from PyPI and searched
for each op name); the pins are tensorflow/serving's `org_tensorflow_text` archive:
text-2.20.0 for TF Serving 2.20, text-2.12.1 for the releases before it (tensorflow/serving#4057,
written when 2.18 was current, reports 2.12.1; 2.19 is assumed to have the same, which can only err
towards refusing).
"""

import dataclasses

from keras_mlm.errors import UserInputError

TF_TEXT_OPS_2_20 = frozenset({
    "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets", "MaxSpanningTree", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap", "PhraseTokenize",
    "RegexSplitWithOffsets", "RougeL", "SentenceFragments", "SentenceFragmentsV2", "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp", "SentencepieceOp", "SentencepieceStringToIdOp", "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp", "SplitMergeTokenizeWithOffsets",
    "TFText>BoiseTagsToOffsets", "TFText>ByteSplitByOffsets", "TFText>ByteSplitWithOffsets",
    "TFText>FastSentencepieceDetokenize", "TFText>FastSentencepieceTokenize", "TFText>FastWordpieceDetokenize",
    "TFText>NgramsStringJoin", "TFText>OffsetsToBoiseTags", "TFText>PhraseDetokenize",
    "TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim", "TFText>Utf8Binarize",
    "TFText>WhitespaceTokenizeWithOffsetsV2", "TokenizerFromLogits", "UnicodeScriptTokenizeWithOffsets",
    "WhitespaceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets",
})  # fmt: skip
"""tensorflow-text 2.20.0's ops (the same as 2.21.1's)."""

TF_TEXT_OPS_2_12 = TF_TEXT_OPS_2_20 - {"TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim", "TFText>Utf8Binarize"}
"""tensorflow-text 2.12.1's ops: no trimmer ops (keras-hub's packers need them) and no Utf8Binarize."""


@dataclasses.dataclass(frozen=True)
class ServingRelease:
    version: str
    """TF Serving release, "MAJOR.MINOR"."""
    tf_text: str
    """The tensorflow-text release it links."""
    ops: frozenset
    """The custom (non-core) ops it can run."""


SERVING_RELEASES = {
    "2.20": ServingRelease("2.20", "2.20.0", TF_TEXT_OPS_2_20),
    **{f"2.{minor}": ServingRelease(f"2.{minor}", "2.12.1", TF_TEXT_OPS_2_12) for minor in range(12, 20)},
}
DEFAULT_SERVING_VERSION = "2.20"


def serving_release(version):
    """The `ServingRelease` of "2.20" (a patch number such as "2.20.1" is ignored)."""
    key = ".".join(str(version).split(".")[:2])
    if key not in SERVING_RELEASES:
        known = ", ".join(sorted(SERVING_RELEASES, key=lambda v: tuple(map(int, v.split(".")))))
        raise UserInputError(f"--serving-version {version}: unknown TF Serving release (known: {known}; or 'none' for a custom server)")
    return SERVING_RELEASES[key]


def _called_functions(node):
    """Names of the library functions a node calls through its attrs (f, then_branch, body, ...)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        for func in value.list.func:
            yield func.name


def graph_op_types(graph_def, roots=None):
    """Op types reachable from `roots` (node names; all nodes when None), library functions expanded."""
    nodes = {n.name: n for n in graph_def.node}
    library = {f.signature.name: f for f in graph_def.library.function}
    ops, seen_functions = set(), set()

    def visit_function(name):
        if name in seen_functions or name not in library:
            return
        seen_functions.add(name)
        for node in library[name].node_def:
            visit_node(node)

    def visit_node(node):
        if node.op in library:  # a direct call of a library function
            visit_function(node.op)
        else:
            ops.add(node.op)
        for name in _called_functions(node):
            visit_function(name)

    pending = list(nodes) if roots is None else [r.split(":")[0].lstrip("^") for r in roots]
    reached = set()
    while pending:
        name = pending.pop()
        if name in reached or name not in nodes:
            continue
        reached.add(name)
        visit_node(nodes[name])
        pending.extend(i.split(":")[0].lstrip("^") for i in nodes[name].input)
    return ops


def custom_ops(op_types):
    """The ops core TensorFlow does not register (every core op has a `tf.raw_ops` entry)."""
    import tensorflow as tf

    return {op for op in op_types if not hasattr(tf.raw_ops, op)}


def signature_custom_ops(saved_model_dir):
    """{signature name: custom ops its graph needs}, read from a written SavedModel's saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(f"{saved_model_dir}/saved_model.pb", "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    meta_graph = next(m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags)
    return {
        name: custom_ops(graph_op_types(meta_graph.graph_def, [t.name for t in signature.outputs.values()]))
        for name, signature in meta_graph.signature_def.items()
        if not name.startswith("__")  # __saved_model_init_op: run once at load, not a signature
    }


def concrete_function_custom_ops(concrete_function):
    """Custom ops of a traced function (before anything is written)."""
    return custom_ops(graph_op_types(concrete_function.graph.as_graph_def()))


@dataclasses.dataclass(frozen=True)
class ServingCheck:
    """The custom ops of each signature against one server release (None: no stock server targeted)."""

    release: object
    needed: dict
    """{signature: sorted tuple of custom ops}."""

    def missing(self, signature):
        """The ops `signature` needs that the target lacks; against no target, those the newest lacks."""
        provided = (self.release or SERVING_RELEASES[DEFAULT_SERVING_VERSION]).ops
        return tuple(op for op in self.needed[signature] if op not in provided)

    def servable(self, signature):
        return not self.missing(signature)

    def report(self):
        if self.release is None:
            head = "serving check: no TF Serving release targeted (custom server); custom ops per signature"
        else:
            head = f"serving check against TF Serving {self.release.version} (tensorflow-text {self.release.tf_text}):"
        lines = [head]
        for name, ops in self.needed.items():
            if not ops:
                lines.append(f"  {name}: core TensorFlow ops only")
                continue
            missing = self.missing(name)
            if not missing:
                state = "all provided"
            elif self.release is not None:
                state = f"MISSING {', '.join(missing)}"
            else:
                state = f"not in stock TF Serving {DEFAULT_SERVING_VERSION}: {', '.join(missing)}"
            lines.append(f"  {name}: {', '.join(ops)} -> {state}")
        return "\n".join(lines)


def check_serving(needed, serving_version=DEFAULT_SERVING_VERSION):
    """A `ServingCheck` of {signature: custom ops}; `serving_version` None or "none" targets no release."""
    release = None if serving_version in (None, "none") else serving_release(serving_version)
    return ServingCheck(release, {k: tuple(sorted(v)) for k, v in needed.items()})


def refuse_unservable(check):
    """Raises UserInputError naming every signature the target release cannot run."""
    if check.release is None:
        return
    bad = {name: check.missing(name) for name in check.needed if check.missing(name)}
    if bad:
        detail = "; ".join(f"{name} needs {', '.join(ops)}" for name, ops in bad.items())
        newer = sorted({v for v, r in SERVING_RELEASES.items() if all(op in r.ops for ops in bad.values() for op in ops)},
                       key=lambda v: tuple(map(int, v.split("."))))
        hint = f"serve with TF Serving {newer[0]} or newer (--serving-version {newer[0]})" if newer else "no stock TF Serving release has them"
        raise UserInputError(
            f"TF Serving {check.release.version} (tensorflow-text {check.release.tf_text}) cannot run {detail}: "
            f"{hint}, or leave the signature out with --signatures"
        )
