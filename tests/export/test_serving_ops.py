"""The serving check: which custom ops a graph needs and which TF Serving release has them."""

import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from keras_mlm.errors import UserInputError
from keras_mlm.export import serving_ops

TEXT_OPS = {"CaseFoldUTF8", "FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"}


def test_release_table():
    assert "TFText>RoundRobinTrim" in serving_ops.serving_release("2.20").ops
    assert "TFText>RoundRobinTrim" not in serving_ops.serving_release("2.18").ops
    assert serving_ops.serving_release("2.20.1") is serving_ops.SERVING_RELEASES["2.20"]
    assert serving_ops.serving_release("2.13").tf_text == "2.12.1"
    # Every tensorflow-text op the text signature uses is in every release we know.
    assert all(TEXT_OPS <= release.ops for release in serving_ops.SERVING_RELEASES.values())
    with pytest.raises(UserInputError, match=r"--serving-version 2\.11: unknown TF Serving release \(known: 2\.12, 2\.13, .*2\.20"):
        serving_ops.serving_release("2.11")


def test_2_20_table_matches_the_installed_tensorflow_text_ops():
    # The table was read from the wheels; the installed tensorflow-text must not have drifted from it.
    import glob
    import os

    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session as c_api

    installed = set()
    for path in glob.glob(os.path.join(os.path.dirname(tf_text.__file__), "python", "**", "_*.so"), recursive=True):
        handle = c_api.TF_LoadLibrary(path)
        installed.update(op.name for op in op_def_pb2.OpList.FromString(c_api.TF_GetOpList(handle)).op)
        c_api.TF_DeleteLibraryHandle(handle)
    assert installed == serving_ops.TF_TEXT_OPS_2_20
    assert not serving_ops.custom_ops({"MatMul", "StatefulPartitionedCall", "RaggedTensorToTensor", "Assert"})
    assert serving_ops.custom_ops(installed) == installed


def test_ops_are_found_inside_nested_functions_and_branches():
    @tf.function
    def inner(x):
        return tf.cond(tf.size(x) > 0, lambda: tf_text.case_fold_utf8(x), lambda: x)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def outer(x):
        return inner(tf.strings.strip(x))

    graph_def = outer.get_concrete_function().graph.as_graph_def()
    assert "CaseFoldUTF8" not in {n.op for n in graph_def.node}  # only in the library's functions
    ops = serving_ops.graph_op_types(graph_def)
    assert {"CaseFoldUTF8", "StringStrip"} <= ops
    assert serving_ops.custom_ops(ops) == {"CaseFoldUTF8"}


def test_keras_hub_packer_needs_round_robin_trim_which_2_18_lacks():
    import keras_hub

    packer = keras_hub.layers.MultiSegmentPacker(sequence_length=8, start_value=2, end_value=3)

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    def pack(ids):
        return packer(ids)[0]

    needed = {"pack": serving_ops.concrete_function_custom_ops(pack.get_concrete_function())}
    assert needed == {"pack": {"TFText>RoundRobinTrim"}}
    check = serving_ops.check_serving(needed, "2.18")
    assert check.missing("pack") == ("TFText>RoundRobinTrim",)
    with pytest.raises(UserInputError, match=r"TF Serving 2\.18 \(tensorflow-text 2\.12\.1\) cannot run pack needs "
                                             r"TFText>RoundRobinTrim: serve with TF Serving 2\.20 or newer"):
        serving_ops.refuse_unservable(check)
    serving_ops.refuse_unservable(serving_ops.check_serving(needed, "2.20"))  # no error
    assert "pack: TFText>RoundRobinTrim -> MISSING TFText>RoundRobinTrim" in check.report()


def test_written_signatures_need_only_the_text_ops(exported):
    needed = serving_ops.signature_custom_ops(exported.path)
    assert needed == {"fill_mask_text": TEXT_OPS, "serving_default": TEXT_OPS, "fill_mask": set(), "encode": set()}
    for version in serving_ops.SERVING_RELEASES:
        check = serving_ops.check_serving(needed, version)
        assert all(check.servable(name) for name in needed), version
    assert exported.check.needed["fill_mask_text"] == tuple(sorted(TEXT_OPS))
