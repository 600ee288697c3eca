"""The picture in each format: valid, self-contained, showing the tokens and predictions, the same
bytes for the same seed, wrapped when long; and the numbers behind it are the model's."""

import io
import math
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.illustrate import figure as figure_lib
from keras_mlm.illustrate.illustration import illustrate_run
from keras_mlm.illustrate.render import output_format, to_html, to_png, to_svg
from keras_mlm.masking import MLMMasker

sys.path.insert(0, str(Path(__file__).resolve().parent))  # illustrate_texts.py beside this file (importlib mode)
from illustrate_texts import LONG_SENTENCE, SENTENCE  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def example(illustrator):
    return illustrator(SENTENCE, seed=0, top_k=5)


def svg_texts(svg):
    root = ET.fromstring(svg.encode("utf-8"))  # parses as XML, or raises
    assert root.tag == SVG_NS + "svg"
    return [el.text or "" for el in root.iter(SVG_NS + "text")]


class BalanceChecker(HTMLParser):
    """Records unbalanced tags and every src/href attribute."""

    VOID = {"meta", "br", "img", "link", "hr", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href", "xlink:href")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href", "xlink:href")]

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_targets_are_the_runs_masking_for_the_seed(illustrator, example):
    ids = {t: i for i, t in enumerate(illustrator.tokens)}
    row = np.zeros((1, illustrator.sequence_length), np.int32)
    row[0, : len(example.tokens)] = [ids[t] for t in example.tokens]
    masker = MLMMasker.from_vocabulary(illustrator.tokens, illustrator.sequence_length, illustrator.masking, seed=0, deterministic=True)
    x, y, weights = masker(row)
    used = weights.numpy()[0] > 0
    assert [t.position for t in example.targets] == list(x["mask_positions"].numpy()[0][used])
    for target in example.targets:
        assert target.token == example.tokens[target.position]
        assert target.seen == illustrator.tokens[x["token_ids"].numpy()[0, target.position]]
        expected = "mask" if target.seen == "[MASK]" else "kept" if target.seen == target.token else "random"
        assert target.kind == expected
    # ~15% of the 7 words: round(1.05) = 1 target.
    assert len(example.targets) == 1


def test_predictions_and_loss_are_the_models(illustrator, example):
    target = example.targets[0]
    ids = {t: i for i, t in enumerate(illustrator.tokens)}
    row = np.zeros((1, illustrator.sequence_length), np.int32)
    row[0, : len(example.seen)] = [ids[t] for t in example.seen]
    inputs = {
        "token_ids": tf.constant(row), "segment_ids": tf.zeros_like(row), "padding_mask": tf.constant(row != 0),
        "mask_positions": tf.constant([[target.position]], tf.int32),
    }
    log_p = tf.nn.log_softmax(illustrator.model(inputs, training=False)[0, 0]).numpy()
    assert math.isclose(target.loss, -log_p[ids[target.token]], rel_tol=1e-5)
    # Top-k: words only (no special token), best first, as fill-mask ranks them; learned, not uniform (1/20).
    tokens = [t for t, _ in target.predictions]
    probabilities = [p for _, p in target.predictions]
    assert len(tokens) == 5 and not any(t.startswith("[") for t in tokens)
    assert probabilities == sorted(probabilities, reverse=True) and probabilities[0] > 0.1
    words = [i for i, t in enumerate(illustrator.tokens) if not t.startswith("[")]
    assert tokens[0] == illustrator.tokens[max(words, key=lambda i: log_p[i])]
    assert 1 <= target.true_rank <= len(words)


def test_svg_is_xml_showing_the_tokens_predictions_and_loss(example):
    texts = svg_texts(to_svg(example))
    for token in example.tokens:
        assert token in texts
    for token, _ in example.targets[0].predictions:
        assert token in texts
    assert f"loss = -log p({example.targets[0].token}) = {example.targets[0].loss:.3f}" in texts


def test_png_decodes_with_a_sensible_size(example):
    from PIL import Image

    image = Image.open(io.BytesIO(to_png(example)))
    image.load()
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.width == figure_lib.DEFAULT_WIDTH and 300 < image.height < 2000, image.size
    pixels = np.asarray(image)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn, not a blank page
    # Text is inside the page: no dark pixel in the right margin.
    assert pixels[:, -figure_lib.MARGIN // 2 :].min() > 200


def test_html_is_well_formed_and_self_contained(example):
    page = to_html(example)
    checker = BalanceChecker()
    checker.feed(page)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert checker.links == []  # nothing to fetch: no src or href at all
    assert "<svg" in page and "<style>" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for token in example.tokens[1:-1]:
        assert f">{token}</text>" in page
    for token, _ in example.targets[0].predictions:
        assert f">{token}</text>" in page


@pytest.mark.parametrize("suffix", ["svg", "png", "html"])
def test_same_seed_gives_the_same_bytes(trained_run, tmp_path, suffix):
    _, run = trained_run
    first, summary = illustrate_run(run, LONG_SENTENCE, tmp_path / f"a.{suffix}", seed=7)
    second, again = illustrate_run(run, LONG_SENTENCE, tmp_path / f"b.{suffix}", seed=7)
    assert (tmp_path / f"a.{suffix}").read_bytes() == (tmp_path / f"b.{suffix}").read_bytes()
    assert summary["masked_positions"] == again["masked_positions"] and len(summary["masked_positions"]) == 6  # round(0.15 * 40)
    assert math.isfinite(summary["loss"]) and summary["path"] == str(tmp_path / f"a.{suffix}")


def test_the_demo_call_a_run_folder_and_masks_with_answers(trained_run, tmp_path):
    """What `keras-mlm demo` does: a run folder, a sentence with [MASK], its answer -> an HTML page."""
    run_dir, _ = trained_run
    path, summary = illustrate_run(str(run_dir), "the [MASK] sat on a mat", str(tmp_path / "demo.html"), answers=["cat"])
    assert path == str(tmp_path / "demo.html") and (tmp_path / "demo.html").stat().st_size > 1000
    assert summary["masked_positions"] == [2] and summary["predictions"][0]["token"] == "cat"
    assert summary["loss"] == summary["predictions"][0]["loss"] > 0
    assert len(summary["predictions"][0]["predictions"]) == 5


def test_another_seed_masks_other_tokens(illustrator):
    positions = {tuple(t.position for t in illustrator(LONG_SENTENCE, seed=s).targets) for s in range(3)}
    assert len(positions) == 3


def test_long_sentences_wrap_within_the_width(illustrator):
    example = illustrator(LONG_SENTENCE, seed=0)
    for width in (960, figure_lib.MIN_WIDTH):
        fig = figure_lib.layout(example, width)
        input_row = [s for s in fig.shapes if isinstance(s, figure_lib.Text) and s.size == figure_lib.TOKEN_SIZE]
        lines = sorted({round(s.y) for s in input_row[: len(example.tokens)]})
        assert len(lines) >= (2 if width == 960 else 3), lines
        right = max(s.x + s.width for s in fig.shapes if isinstance(s, figure_lib.Rect))
        assert right <= width - figure_lib.MARGIN + 1e-6
        for text in (s for s in fig.shapes if isinstance(s, figure_lib.Text)):
            extent = figure_lib.monospace_width(text.text, text.size)
            start = text.x - {"start": 0, "middle": extent / 2, "end": extent}[text.anchor]
            assert figure_lib.MARGIN - 1e-6 <= start and start + extent <= width - figure_lib.MARGIN + 1e-6, text
    assert figure_lib.layout(example, figure_lib.MIN_WIDTH).height > figure_lib.layout(example, 960).height


def test_word_pieces_stay_together_when_rows_wrap():
    # Boxes 40 wide in a 200-wide line: "aa ##bb ##cc" (3 pieces, 126 wide) does not fit after two words.
    widths = [40] * 5
    continuation = [False, False, False, True, True]
    placed = figure_lib.place_tokens(widths, continuation, 0, 200)
    assert [line for line, _ in placed] == [0, 0, 1, 1, 1]
    assert [x for _, x in placed] == [0, 50, 0, 43, 86]  # WORD_GAP 10 between words, PIECE_GAP 3 inside one
    # A word wider than a line breaks between its pieces.
    placed = figure_lib.place_tokens([90] * 3, [False, True, True], 0, 200)
    assert [line for line, _ in placed] == [0, 0, 1]


def test_masks_written_in_the_text_with_answers(illustrator):
    example = illustrator("the [MASK] sat on a [MASK]", answers=["cat", "mat"])
    assert example.source == "text" and [t.position for t in example.targets] == [2, 6]
    assert [t.token for t in example.targets] == ["cat", "mat"] and all(t.kind == "mask" for t in example.targets)
    assert all(t.loss is not None and t.loss > 0 for t in example.targets)
    unknown = illustrator("the [MASK] sat on a mat")
    assert unknown.targets[0].token is None and unknown.targets[0].loss is None and unknown.loss is None
    texts = svg_texts(to_svg(unknown))
    assert any("true token is unknown" in t for t in texts)


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        (LONG_SENTENCE + " " + LONG_SENTENCE, {}, "the model takes at most 48"),
        ("   ", {}, "empty text"),
        ("[CLS] [SEP]", {}, "no token that masking may select"),
        ("the [MASK] sat", {"answers": ["cat", "dog"]}, "2 answer(s) for 1 [MASK]"),
        ("the [MASK] sat", {"answers": ["[SEP]"]}, "not a (non-special) token"),
        ("the cat sat", {"answers": ["cat"]}, "this text has none"),
        ("the cat sat", {"top_k": 0}, "--top-k must be at least 1"),
    ],
)
def test_bad_input_is_a_user_error(illustrator, text, kwargs, message):
    with pytest.raises(UserInputError) as error:
        illustrator(text, **kwargs)
    assert message in str(error.value)


def test_a_width_below_the_minimum_is_a_user_error(example):
    with pytest.raises(UserInputError, match="--width 100: give at least 480 pixels"):
        figure_lib.layout(example, 100)


def test_the_suffix_chooses_the_format():
    assert [output_format(p) for p in ("a.svg", "b.PNG", "c.html", "d.htm")] == ["svg", "png", "html", "html"]
    with pytest.raises(UserInputError, match="unknown suffix '.jpg'; use .svg, .png or .html"):
        output_format("picture.jpg")
