"""Fill-mask: for every [MASK] in a text, the most likely tokens with their probabilities.

Any vocabulary kind: the mask is the vocabulary's own (`[MASK]`, or `<mask>` for byte-level BPE, where
`[MASK]` is accepted too), and filled pieces join the text by the kind's word boundaries (`##`, `Ġ`, `▁`).

    fill = FillMask(model, vocabulary)  # a Vocabulary of any kind, or a WordPiece token list
    fill(["paris is the [MASK] of france"], top_k=3)
    -> [{"text": ..., "filled": "paris is the capital of france",  # the text as written, masks filled
         "masks": [{"position": 4, "predictions": [{"token": "capital", "text": "capital", "probability": 0.97}, ...]}]}]

A prediction's `token` is the vocabulary's piece (`Ġcapital` for byte-level BPE, `▁capital` for
SentencePiece) and `text` how it reads (`prediction_text`): the WordPiece token as it is, the BPE
piece's bytes decoded (" capital", its leading space marking a word start), the SentencePiece piece
with `▁` as a space. The exported `fill_mask_text` signature returns `text` as `top_k_tokens`.

`position` is the mask's index in the model's input (with [CLS] at 0). Several masks are predicted at
once; `iterative=True` instead fills the most confident mask first and predicts the rest again with it
in place, one mask at a time.
"""

import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers import vocab as vocab_lib

MASK_ALIASES = {"bpe": ("[MASK]",)}
"""Other spellings of the mask accepted in a text, by vocabulary kind: BERT's `[MASK]` in text for a
byte-level BPE model (whose own mask is `<mask>`). The exported text signature accepts the same."""


def written_with_own_mask(vocabulary, text):
    """`text` with every accepted other spelling of the mask (`MASK_ALIASES`) as the vocabulary's own."""
    for alias in MASK_ALIASES.get(vocabulary.kind, ()):
        text = text.replace(alias, vocabulary.mask_token)
    return text


def prediction_text(vocabulary, token):
    """How a predicted piece reads: WordPiece tokens as they are (`##s` keeps its `##`); BPE pieces
    decoded from their bytes, SentencePiece `▁` as a space (`Vocabulary.piece_text`)."""
    return token if vocabulary.kind == "wordpiece" else vocabulary.piece_text(token)


class FillMask:
    def __init__(self, model, tokens, sequence_length=128, lowercase=None):
        """`tokens`: a `Vocabulary` of any kind, or a WordPiece token list (`lowercase=None` infers its casing)."""
        from keras_mlm.tokenizers.vocabulary import as_vocabulary

        self.vocabulary = as_vocabulary(tokens, lowercase)
        self.model, self.tokens, self.sequence_length = model, list(self.vocabulary.tokens), int(sequence_length)
        self.tokenizer = self.vocabulary.tokenizer(special_tokens_in_strings=True)
        v = self.vocabulary
        self.cls_id, self.sep_id, self.pad_id, self.mask_id = v.cls_id, v.sep_id, v.pad_id, v.mask_id
        self.special = np.zeros(len(self.tokens), bool)
        self.special[v.special_token_ids] = True
        self._predict = tf.function(lambda x: tf.nn.softmax(self.model(x, training=False), axis=-1), reduce_retracing=True)

    def encode(self, texts):
        """Texts -> (batch, sequence_length) ids with [CLS] ... [SEP] and padding; checks each text."""
        vocabulary, texts = self.vocabulary, [written_with_own_mask(self.vocabulary, t) for t in texts]
        cls_sep = f"{vocabulary.tokens[self.cls_id]}/{vocabulary.tokens[self.sep_id]}"
        rows = np.full((len(texts), self.sequence_length), self.pad_id, np.int32)
        for i, (text, ids) in enumerate(zip(texts, self.tokenizer(texts))):
            ids = [self.cls_id] + [int(t) for t in ids] + [self.sep_id]
            if not text.strip():
                raise UserInputError(f"empty text: give a sentence with at least one {vocabulary.mask_token}")
            if len(ids) > self.sequence_length:
                raise UserInputError(f"text {i + 1} is {len(ids)} tokens long with {cls_sep}; the model takes at most {self.sequence_length}")
            if self.mask_id not in ids:
                raise UserInputError(f"text {i + 1} has no {vocabulary.mask_token}: {text!r}")
            rows[i, : len(ids)] = ids
        return rows

    def probabilities(self, rows, positions):
        """(batch, seq) ids and (batch, n) mask positions -> (batch, n, vocab) probabilities."""
        x = {
            "token_ids": tf.constant(rows, tf.int32),
            "segment_ids": tf.zeros(rows.shape, tf.int32),
            "padding_mask": tf.constant(rows != self.pad_id),
            "mask_positions": tf.constant(positions, tf.int32),
        }
        probs = self._predict(x).numpy()
        probs[..., self.special] = 0.0  # a special token is never an answer; renormalise over words
        return probs / probs.sum(-1, keepdims=True)

    def _top(self, probs, top_k):
        order = np.argsort(-probs)[:top_k]
        return [
            {"token": self.tokens[j], "text": prediction_text(self.vocabulary, self.tokens[j]), "probability": float(probs[j])}
            for j in order
        ]

    def __call__(self, texts, top_k=5, iterative=False):
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts:
            return []
        if top_k < 1:
            raise UserInputError(f"--top-k must be at least 1, got {top_k}")
        rows = self.encode(texts)
        mask_positions = [np.flatnonzero(row == self.mask_id) for row in rows]
        slots = max(len(p) for p in mask_positions)
        positions = np.zeros((len(rows), slots), np.int32)
        for i, p in enumerate(mask_positions):
            positions[i, : len(p)] = p
        results = [dict(text=t, masks={}) for t in texts]
        if not iterative:
            probs = self.probabilities(rows, positions)
            for i, p in enumerate(mask_positions):
                for slot, position in enumerate(p):
                    results[i]["masks"][int(position)] = self._top(probs[i, slot], top_k)
                    rows[i, position] = int(np.argmax(probs[i, slot]))
        else:
            pending = [list(map(int, p)) for p in mask_positions]
            while any(pending):
                probs = self.probabilities(rows, positions)
                for i, p in enumerate(pending):
                    if not p:
                        continue
                    slots_left = [list(positions[i]).index(position) for position in p]
                    best = max(range(len(p)), key=lambda k: probs[i, slots_left[k]].max())
                    position, slot = p.pop(best), slots_left[best]
                    results[i]["masks"][position] = self._top(probs[i, slot], top_k)
                    rows[i, position] = int(np.argmax(probs[i, slot]))
                    positions[i, slot] = 0  # filled: no longer a target (XLNet sees it from now on; BERT reads it anyway)
        for i, result in enumerate(results):
            result["masks"] = [{"position": pos, "predictions": preds} for pos, preds in sorted(result["masks"].items())]
            filled = [self.tokens[rows[i, position]] for position in mask_positions[i]]
            result["filled"] = self.fill_text(written_with_own_mask(self.vocabulary, texts[i]), filled) or self.detokenize(rows[i])
        return results[0] if single else results

    def fill_text(self, text, pieces):
        """`text` with its [MASK]s replaced by `pieces` in order, the rest as the user wrote it (casing,
        spacing, punctuation); a word piece (##s) joins the word before it. None when the [MASK]s
        written in the text are not the ones the tokenizer found."""
        parts = text.split(self.vocabulary.mask_token)
        if len(parts) != len(pieces) + 1:
            return None
        out = parts[0]
        for piece, after in zip(pieces, parts[1:]):
            if self.vocabulary.kind != "wordpiece":  # BPE / SentencePiece: the piece carries its own space
                written = self.vocabulary.piece_text(piece)
                if not self.vocabulary.starts_word(piece) or written[:1].isspace():
                    out = out.rstrip()
                out = (out + written).lstrip() if not out else out + written
            elif piece.startswith(vocab_lib.SUFFIX_INDICATOR):
                out = out.rstrip() + piece[len(vocab_lib.SUFFIX_INDICATOR) :]
            else:
                out += piece
            out += after
        return out

    def detokenize(self, row):
        """Ids -> text with word pieces merged into words, specials dropped."""
        if self.vocabulary.kind != "wordpiece":
            return self.vocabulary.decode(row)
        words = []
        for token_id in row:
            if self.special[token_id]:
                continue
            piece = self.tokens[token_id]
            if piece.startswith(vocab_lib.SUFFIX_INDICATOR) and words:
                words[-1] += piece[len(vocab_lib.SUFFIX_INDICATOR) :]
            else:
                words.append(piece)
        return " ".join(words)


def fill_mask(run_dir, texts, top_k=5, iterative=False):
    """Loads a run folder and fills the masks of `texts` (a string or a list)."""
    from keras_mlm.inference.run import load_run

    run = load_run(run_dir)
    return FillMask(run.masked_lm, run.vocabulary, run.sequence_length)(texts, top_k=top_k, iterative=iterative)
