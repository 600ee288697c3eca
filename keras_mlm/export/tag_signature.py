"""The `tag` signature of a `TokenClassifier`: texts in, words and their tags out.

    tag      texts (batch,) -> words, tags, tag_probabilities (batch, n_words), num_words, num_tagged (batch,)
    encode   ids in, encoder output out (shared with the masked LM)

Everything runs in the graph with the functions the NER recipe trains with
(`keras_mlm.finetuning.token_alignment`): the text is split into words as keras-hub's WordPiece
tokenizer pre-tokenizes it (whitespace, punctuation, CJK characters), each word is tokenized alone,
the pieces are packed `[CLS] ... [SEP]`, and a word's tag is read at its first piece. The custom ops
are tensorflow-text's RegexSplitWithOffsets, CaseFoldUTF8 (lower-casing vocabularies) and
FastWordpieceTokenizeWithOffsets, which every stock TF Serving since 2.12 links; the rest is core ops.

A text longer than the row is not refused: the words that do not fit are returned with tag "O" and
probability 0, and `num_tagged` says how many words the model saw. Tags are each word's most
probable tag, not forced into a valid BIO sequence (an "I-X" after "O" is read as the start of an
entity, as conlleval and `keras_mlm.evaluation.ner_metrics` read it).
"""

import numpy as np
import tensorflow as tf

from keras_mlm.export import guards
from keras_mlm.export.signatures import Signature


class Tag(Signature):
    """One text per row; one tag per word."""

    name = "tag"
    inputs = {"texts": ("string", "(batch,)", "UTF-8 texts (an empty text has no words)")}
    outputs = {
        "words": ("string", "(batch, n_words)", "the words of each text, as written; \"\" after the last"),
        "tags": ("string", "(batch, n_words)", "each word's tag (\"O\", \"B-person\", ...); \"\" after the last"),
        "tag_probabilities": ("float32", "(batch, n_words)", "the tag's probability; 0 for words past the row and after the last"),
        "num_words": ("int32", "(batch,)", "words in each text"),
        "num_tagged": ("int32", "(batch,)", "words whose first piece fits in the row; later ones are \"O\""),
    }

    def input_signature(self, context):
        return [tf.TensorSpec([None], tf.string, name="texts")]

    def build(self, context):
        from keras_mlm.finetuning.token_alignment import CUT, WordAligner, decode_word_tags, outside_label_id, split_words
        from keras_mlm.tokenizers import make_tokenizer, vocab as vocab_lib

        model = context.model
        ids = {t: i for i, t in enumerate(context.tokens)}
        special_ids = {"cls": ids[vocab_lib.CLS], "sep": ids[vocab_lib.SEP], "pad": ids[vocab_lib.PAD], "unk": ids[vocab_lib.UNK]}
        aligner = WordAligner(make_tokenizer(list(context.tokens), context.lowercase), context.sequence_length, special_ids)
        labels = list(model.labels)

        def tag(texts):
            texts = guards.check_rank(texts, 1, f"{self.name}: texts", "(batch,)")
            # UTF-8 -> UTF-8 is the identity on valid text and replaces the bytes of invalid text.
            utf8 = tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace"), texts)  # (batch,)
            texts = guards.checked(texts, [guards.require(utf8, f"{self.name}: text is not valid UTF-8; rows:", guards.failing_rows(utf8))])

            words = split_words(texts)  # ragged (batch, None)
            x = aligner(words)
            positions = x.pop("word_positions").to_tensor(default_value=CUT)  # (batch, n_words)
            logits = model(x, training=False)  # (batch, seq, num_labels)
            tag_ids, probabilities = decode_word_tags(logits, positions, outside_label_id(labels))  # (batch, n_words) each

            num_words = tf.cast(words.row_lengths(), tf.int32)  # (batch,)
            is_word = tf.sequence_mask(num_words, tf.shape(positions)[1])  # (batch, n_words)
            names = tf.constant(labels)
            return {
                "words": words.to_tensor(default_value=""),
                "tags": tf.where(is_word, tf.gather(names, tag_ids), ""),
                "tag_probabilities": tf.where(is_word, probabilities, 0.0),
                "num_words": num_words,
                "num_tagged": tf.reduce_sum(tf.cast(positions != CUT, tf.int32), axis=1),
            }

        return tag

    def example_inputs(self, texts, token_ids):
        return {"texts": np.array(texts, dtype=object)}
