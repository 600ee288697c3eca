"""The `answer` signature of a `SpanExtractor`: questions and contexts in, answers cut from the contexts out.

    answer   questions, contexts (batch,) -> answer, start_char, end_char, score (batch,)
    encode   ids in, encoder output out (shared with the masked LM)

Everything runs in the graph with the very code the QA recipe evaluates with
(`keras_mlm.finetuning.qa_windows`, `keras_mlm.finetuning.qa_answers`): word pieces with their byte
offsets in the original context, windows of the row length every `doc_stride` pieces (a long context
is read whole, window by window, as in training), the best span over the windows (at most
`max_answer_length` pieces, inside the context), and "" when the no-answer score beats it by more
than `null_threshold`. The settings come from the run's config.yaml `task` section as the recipe
wrote it (BERT's defaults otherwise). The custom ops are tensorflow-text's RegexSplitWithOffsets,
CaseFoldUTF8 (lower-casing vocabularies) and FastWordpieceTokenizeWithOffsets, which every stock TF
Serving since 2.12 links; the rest is core ops.

Offsets are characters (Unicode code points, Python `str` indices, as SQuAD's answer_start), the
end exclusive: contexts[i][start_char:end_char] == answer; -1 and -1 when the answer is "".
"""

import math

import numpy as np
import tensorflow as tf

from keras_mlm.export import guards
from keras_mlm.export.signatures import Signature

DEFAULTS = {"doc_stride": 128, "max_answer_length": 30, "null_threshold": 0.0, "max_query_length": None}
"""BERT's run_squad.py settings, used where config.yaml's `task` section says nothing."""


def answer_settings(context):
    """The Answerer's settings: the run's `task` section (ExportContext.task, when the exporter passes it)."""
    task = getattr(context, "task", None) or {}
    settings = {key: task.get(key, default) for key, default in DEFAULTS.items()}
    threshold = settings["null_threshold"]
    settings["null_threshold"] = math.inf if threshold is None else float(threshold)
    return settings


class Answer(Signature):
    """One question and its context per row."""

    name = "answer"
    inputs = {
        "questions": ("string", "(batch,)", "UTF-8 questions"),
        "contexts": ("string", "(batch,)", "UTF-8 passages, one per question (any length: read in windows)"),
    }
    outputs = {
        "answer": ("string", "(batch,)", "the answer, cut from the context; \"\" for no answer"),
        "start_char": ("int32", "(batch,)", "its first character in the context (code points); -1 for no answer"),
        "end_char": ("int32", "(batch,)", "one past its last: context[start_char:end_char] == answer; -1 for no answer"),
        "score": ("float32", "(batch,)", "best span score - no-answer score; \"\" when -score > the null threshold"),
    }

    def input_signature(self, context):
        return [tf.TensorSpec([None], tf.string, name="questions"), tf.TensorSpec([None], tf.string, name="contexts")]

    def build(self, context):
        from keras_mlm.finetuning.qa_answers import Answerer
        from keras_mlm.tokenizers.vocab import infer_lowercase

        lowercase = infer_lowercase(context.tokens) if context.lowercase is None else context.lowercase
        answerer = Answerer(context.model, list(context.tokens), lowercase, context.sequence_length, **answer_settings(context))

        def answer(questions, contexts):
            questions = guards.check_texts(questions, f"{self.name}: questions")
            contexts = guards.check_texts(contexts, f"{self.name}: contexts")
            sizes = tf.shape(questions)[0], tf.shape(contexts)[0]
            same = guards.require(tf.equal(*sizes), f"{self.name}: questions and contexts need the same batch size; got", *sizes)
            questions = guards.checked(questions, [same])
            return answerer(questions, contexts)

        return answer

    def describe(self, context):
        settings = answer_settings(context)
        where = "the run's config.yaml task section" if getattr(context, "task", None) else "BERT's defaults"
        return super().describe(context) + "\n  settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + f" ({where})"

    def example_inputs(self, texts, token_ids):
        passage = " ".join(texts)  # every warm-up text, so some rows need more than one window
        return {"questions": np.array(texts, dtype=object), "contexts": np.array([passage] * len(texts), dtype=object)}
