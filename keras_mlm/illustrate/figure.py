"""The layout of the picture (boxes, text, bars as plain shapes) and the SVG writer.

`layout(illustration)` places everything once, in pixels, as a list of `Rect`, `Text` and `Line`;
`to_svg` writes them as XML text and `render.to_png` draws the same shapes with Pillow. Text widths
come from a `measure(text, size)` function: a monospace estimate for SVG (whose font is monospace),
Pillow's own font metrics for PNG.

The picture, top to bottom:
  1. the sentence's tokens in a row (wrapped to the width; a word's pieces sit close together), each
     selected token numbered and coloured by what masking made of it, with the result underneath;
  2. for each selected token, a section: the tokens the model saw, shaded by the attention this
     position pays to each of them (the chosen layer, mean over heads), the share to its left and
     right; then the decoder's top-k predictions as probability bars with the true token in green,
     and the loss -log p(true token).
"""

import dataclasses
from xml.sax.saxutils import escape, quoteattr

from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS, SUFFIX_INDICATOR

DEFAULT_WIDTH = 960
MIN_WIDTH = 480  # the prediction bars and their numbers need about this much
MARGIN = 20
TITLE_SIZE, TEXT_SIZE, TOKEN_SIZE, SMALL_SIZE = 18, 14, 15, 12
BOX_HEIGHT, BOX_PADDING, MIN_BOX_WIDTH = 26, 7, 30
WORD_GAP, PIECE_GAP, LINE_GAP = 10, 3, 8
BAR_WIDTH, BAR_HEIGHT = 260, 14
SVG_FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"

INK, MUTED, RULE, PAPER = "#1f2328", "#6a737d", "#d0d7de", "#ffffff"
KIND_STYLE = {  # kind -> (fill, stroke, label)
    "mask": ("#fde3c8", "#d9730d", "[MASK]"),
    "random": ("#eddcf0", "#8e4b9b", "random token"),
    "kept": ("#d6efd2", "#2f8a2f", "kept"),
}
UNSELECTED_FILL, SPECIAL_INK = "#f3f4f6", "#8c959f"
HEAT_LOW, HEAT_HIGH = (255, 255, 255), (29, 78, 137)
BAR_FILL, TRUE_FILL, TRUE_INK, SIDE_FILL = "#a8bdd3", "#3fa34d", "#1e7a2c", "#5b84b1"


@dataclasses.dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str | None = None
    stroke_width: float = 1.0
    radius: float = 3.0


@dataclasses.dataclass(frozen=True)
class Text:
    x: float
    y: float  # the baseline
    text: str
    size: int
    fill: str = INK
    anchor: str = "start"  # "start", "middle" or "end" of the text at x
    bold: bool = False


@dataclasses.dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = RULE
    width: float = 1.0


@dataclasses.dataclass(frozen=True)
class Figure:
    width: int
    height: int
    shapes: tuple
    title: str  # one line describing the picture (SVG <title>, HTML <title>)


def monospace_width(text, size):
    """Width of `text` in a monospace font of `size` px (an advance of 0.6 em, as DejaVu Sans Mono)."""
    return 0.6 * size * len(text)


def heat_color(t):
    """t in [0, 1] -> a colour from white to dark blue."""
    t = min(max(t, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(HEAT_LOW, HEAT_HIGH))
    return f"#{r:02x}{g:02x}{b:02x}"


def wrap_words(text, size, max_width, measure):
    """Plain text -> lines no wider than max_width (a word longer than a line gets its own line)."""
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and measure(candidate, size) > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return lines + [current] if current else lines


def place_tokens(widths, continuation, left, right):
    """Boxes of `widths` in reading order -> [(line, x)]: words (a token and its '##' pieces) are not
    split across lines unless one is wider than a line; pieces of a word sit PIECE_GAP apart."""
    placed, line, x, line_empty = [], 0, left, True
    for width, joined in zip(widths, continuation):
        gap = 0 if line_empty else (PIECE_GAP if joined else WORD_GAP)
        if not line_empty and x + gap + _word_width(widths, continuation, len(placed)) > right:
            # The word starting here does not fit: a new line (pieces of a too-long word break too).
            if not joined or x + gap + width > right:
                line, x, gap = line + 1, left, 0
        placed.append((line, x + gap))
        x, line_empty = x + gap + width, False
    return placed


def _word_width(widths, continuation, start):
    """Width of the boxes from `start` to the end of its word (only `start` itself for a piece)."""
    if continuation[start]:
        return widths[start]
    end = start + 1
    while end < len(widths) and continuation[end]:
        end += 1
    return sum(widths[start:end]) + PIECE_GAP * (end - start - 1)


class _Canvas:
    """Shapes and a cursor moving down the page."""

    def __init__(self, width, measure):
        self.width, self.measure = width, measure
        self.left, self.right = MARGIN, width - MARGIN
        self.y = MARGIN
        self.shapes = []

    def add(self, *shapes):
        self.shapes.extend(shapes)

    def paragraph(self, text, size=TEXT_SIZE, fill=INK, bold=False, indent=0, after=4):
        for line in wrap_words(text, size, self.right - self.left - indent, self.measure):
            self.y += size + 3
            self.add(Text(self.left + indent, self.y, line, size, fill, bold=bold))
        self.y += after

    def token_rows(self, continuation, box_width, draw, top_space=0, bottom_space=0):
        """Lays tokens out in wrapped rows (`continuation[i]`: token i is a '##' piece);
        `draw(i, x, y_box, width)` adds token i's shapes."""
        widths = [box_width(i) for i in range(len(continuation))]
        placed = place_tokens(widths, continuation, self.left, self.right)
        line_height = top_space + BOX_HEIGHT + bottom_space + LINE_GAP
        for i, (line, x) in enumerate(placed):
            draw(i, x, self.y + line * line_height + top_space, widths[i])
        self.y += (placed[-1][0] + 1) * line_height if placed else 0


def _box_text(canvas, x, y, width, text, fill=INK, bold=False):
    canvas.add(Text(x + width / 2, y + BOX_HEIGHT / 2 + TOKEN_SIZE * 0.36, text, TOKEN_SIZE, fill, "middle", bold))


def _what_it_became(target, source):
    if source == "text":
        return "" if target.token is None else f"answer: {target.token}"
    if target.kind == "mask":
        return f"-> {target.seen}"
    if target.kind == "random":
        return f"-> {target.seen} (random)"
    return "kept"


def _section_header(number, target, source):
    if source == "text":
        answer = f" (answer: {target.token})" if target.token is not None else " (true token not given)"
        return f"{number}. [MASK] at position {target.position}{answer}"
    head = f'{number}. "{target.token}" at position {target.position}'
    if target.kind == "mask":
        return f"{head} became [MASK]"
    if target.kind == "random":
        return f'{head} became "{target.seen}", a random token'
    return f"{head} was kept as it is (the model must still predict it)"


def _masking_line(example):
    if example.source == "text":
        return "Targets: the [MASK]s written in the text."
    m = example.masking
    return (
        f"Masking (the run's settings, seed {example.seed}): {m.strategy} selection of {m.selection_rate:.0%} of the tokens; "
        f"each selected token becomes [MASK] ({m.mask_token_rate:.0%}), a random token ({m.random_token_rate:.0%}) "
        f"or stays ({m.keep_rate:.0%})."
    )


def layout(example, width=DEFAULT_WIDTH, measure=monospace_width):
    """An `Illustration` -> a `Figure` `width` px wide (rows wrap to it; at least MIN_WIDTH)."""
    if not isinstance(width, int) or isinstance(width, bool) or width < MIN_WIDTH:
        raise UserInputError(f"--width {width!r}: give at least {MIN_WIDTH} pixels")
    canvas = _Canvas(int(width), measure)
    targets = {t.position: (n, t) for n, t in enumerate(example.targets, 1)}
    continuation = [tok.startswith(SUFFIX_INDICATOR) for tok in example.tokens]
    special = [tok in SPECIAL_TOKENS for tok in example.tokens]

    # Title, the sentence, the masking settings, the legend.
    title = "What masking and the model do" + (f" ({example.title})" if example.title else "")
    canvas.paragraph(title, TITLE_SIZE, bold=True)
    canvas.paragraph(f'"{example.text}"', TEXT_SIZE)
    canvas.paragraph(_masking_line(example), SMALL_SIZE, MUTED, after=8)
    _legend(canvas, example)

    # 1. The input row: selected tokens numbered, coloured by kind, with what they became beneath.
    canvas.paragraph(
        f"Input: {len(example.tokens)} tokens, {len(targets)} to predict (numbered; sections below)", TEXT_SIZE, bold=True
    )

    def input_width(i):
        below = _what_it_became(targets[i][1], example.source) if i in targets else ""
        return max(MIN_BOX_WIDTH, measure(example.tokens[i], TOKEN_SIZE) + 2 * BOX_PADDING, measure(below, SMALL_SIZE) + 4)

    def draw_input(i, x, y, w):
        if i in targets:
            number, target = targets[i]
            fill, stroke, _ = KIND_STYLE[target.kind]
            canvas.add(Rect(x, y, w, BOX_HEIGHT, fill, stroke, 2.0))
            canvas.add(Text(x + w / 2, y - 4, str(number), SMALL_SIZE, stroke, "middle", bold=True))
            canvas.add(Text(x + w / 2, y + BOX_HEIGHT + SMALL_SIZE + 2, _what_it_became(target, example.source), SMALL_SIZE, stroke, "middle"))
            _box_text(canvas, x, y, w, example.tokens[i], bold=True)
        else:
            canvas.add(Rect(x, y, w, BOX_HEIGHT, PAPER if special[i] else UNSELECTED_FILL, RULE))
            _box_text(canvas, x, y, w, example.tokens[i], SPECIAL_INK if special[i] else INK)

    canvas.y += 4
    canvas.token_rows(continuation, input_width, draw_input, top_space=SMALL_SIZE + 4, bottom_space=SMALL_SIZE + 6)

    # 2. One section per target: attention over the tokens the model saw, then the predictions.
    for position, (number, target) in sorted(targets.items()):
        canvas.y += 6
        canvas.add(Line(canvas.left, canvas.y, canvas.right, canvas.y))
        canvas.y += 4
        canvas.paragraph(_section_header(number, target, example.source), TEXT_SIZE, bold=True)
        _attention(canvas, example, target, continuation, special)
        _predictions(canvas, target)

    return Figure(width=int(width), height=int(round(canvas.y + MARGIN)), shapes=tuple(canvas.shapes), title=f"{title}: {example.text}")


def _legend(canvas, example):
    if example.source == "text":
        items = [(*KIND_STYLE["mask"][:2], "[MASK] written in the text")]
    else:
        items = [(*KIND_STYLE[kind][:2], label) for kind, label in
                 (("mask", "became [MASK]"), ("random", "became a random token"), ("kept", "kept as is"))]
    items += [(UNSELECTED_FILL, RULE, "not selected"), (heat_color(1.0), None, "attention (darker = more)")]
    x, y = canvas.left, canvas.y
    for fill, stroke, label in items:
        width = 20 + canvas.measure(label, SMALL_SIZE)
        if x > canvas.left and x + width > canvas.right:  # wrap
            x, y = canvas.left, y + 20
        canvas.add(Rect(x, y, 14, 14, fill, stroke, 2.0 if stroke and stroke != RULE else 1.0, 2.0))
        canvas.add(Text(x + 20, y + 11, label, SMALL_SIZE, INK))
        x += width + 18
    canvas.y = y + 14 + 12


def _attention(canvas, example, target, continuation, special):
    measure = canvas.measure
    weights = target.attention
    # Darkest for the largest weight, unless no weight reaches twice uniform's (then uniform is mid-blue).
    strongest = max(max(weights), 2.0 / len(weights))
    stroke = KIND_STYLE[target.kind][1]
    canvas.paragraph(
        f"Context it uses: attention from position {target.position} to every token it sees "
        f"(layer {example.layer + 1} of {example.num_layers}, mean of {example.num_heads} heads)",
        SMALL_SIZE, MUTED,
    )

    def heat_width(i):
        return max(MIN_BOX_WIDTH, measure(example.seen[i], TOKEN_SIZE) + 2 * BOX_PADDING, measure("0.00", SMALL_SIZE) + 4)

    def draw_heat(i, x, y, w):
        t = weights[i] / strongest
        is_query = i == target.position
        canvas.add(Rect(x, y, w, BOX_HEIGHT, heat_color(t), stroke if is_query else RULE, 2.5 if is_query else 1.0))
        ink = PAPER if t > 0.6 else (SPECIAL_INK if special[i] and t < 0.25 else INK)
        _box_text(canvas, x, y, w, example.seen[i], ink, bold=is_query)
        canvas.add(Text(x + w / 2, y + BOX_HEIGHT + SMALL_SIZE + 2, f"{weights[i]:.2f}", SMALL_SIZE, stroke if is_query else MUTED, "middle"))

    canvas.y += 2
    canvas.token_rows(continuation, heat_width, draw_heat, bottom_space=SMALL_SIZE + 4)
    # Both directions at a glance: one bar split into left context, the position itself, right context.
    x, y = canvas.left + 16, canvas.y
    for share, fill in ((target.left, SIDE_FILL), (target.itself, stroke), (target.right, SIDE_FILL)):
        if share > 0:
            canvas.add(Rect(x, y, BAR_WIDTH * share, BAR_HEIGHT, fill, PAPER, 1.0, 0.0))
        x += BAR_WIDTH * share
    shares = f"left {target.left:.2f}  ·  itself {target.itself:.2f}  ·  right {target.right:.2f}"
    x = canvas.left + 16 + BAR_WIDTH + 8
    if x + measure(shares, SMALL_SIZE) > canvas.right:  # a narrow picture: the numbers under the bar
        x, y = canvas.left + 16, y + BAR_HEIGHT + 4
    canvas.add(Text(x, y + BAR_HEIGHT - 3, shares, SMALL_SIZE, INK))
    canvas.y = y + BAR_HEIGHT + 10


def _predictions(canvas, target):
    measure = canvas.measure
    known = target.token is not None
    note = "; the true token in green" if known else ""
    canvas.paragraph(f"Predictions at position {target.position} (top {len(target.predictions)}{note}):", SMALL_SIZE, MUTED)
    rows = [(token, p, known and token == target.token, None) for token, p in target.predictions]
    if known and target.token not in [token for token, _ in target.predictions]:
        rows.append((target.token, target.true_probability, True, target.true_rank))
    label_width = max(measure(token, TEXT_SIZE) for token, *_ in rows) + 8
    x0 = canvas.left + 16
    tails = [_prediction_tail(p, true, rank) for _, p, true, rank in rows]
    bar_width = min(BAR_WIDTH, canvas.right - x0 - label_width - 8 - max(measure(t, SMALL_SIZE) for t in tails))
    for (token, p, true, rank), tail in zip(rows, tails):
        y = canvas.y + 2
        ink = TRUE_INK if true else INK
        canvas.add(Text(x0 + label_width - 8, y + BAR_HEIGHT - 3, token, TEXT_SIZE, ink, "end", bold=true))
        canvas.add(Rect(x0 + label_width, y, bar_width, BAR_HEIGHT, UNSELECTED_FILL, None, 0.0, 2.0))
        canvas.add(Rect(x0 + label_width, y, max(1.0, bar_width * p), BAR_HEIGHT, TRUE_FILL if true else BAR_FILL, None, 0.0, 2.0))
        canvas.add(Text(x0 + label_width + bar_width + 8, y + BAR_HEIGHT - 3, tail, SMALL_SIZE, ink, bold=true))
        canvas.y += BAR_HEIGHT + 5
    canvas.y += 4
    if known:
        canvas.paragraph(f"loss = -log p({target.token}) = {target.loss:.3f}", TEXT_SIZE, TRUE_INK, bold=True, after=4)
    else:
        canvas.paragraph("no loss: the true token is unknown (give it as an answer)", SMALL_SIZE, MUTED, after=4)


def _prediction_tail(p, true, rank):
    """The text after a prediction's bar: its probability, and whether (and where) it is the true token."""
    if not true:
        return f"{p:.3f}"
    return f"{p:.3f} true" if rank is None else f"{p:.3f} true, rank {rank}"


def to_svg(figure):
    """A `Figure` -> a standalone SVG document (str)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        svg_element(figure),
    ]
    return "\n".join(out) + "\n"


def svg_element(figure):
    """The <svg> element alone (for inlining in HTML)."""
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{figure.width}" height="{figure.height}" '
        f'viewBox="0 0 {figure.width} {figure.height}" font-family={quoteattr(SVG_FONT)}>',
        f"<title>{escape(figure.title)}</title>",
        f'<rect x="0" y="0" width="{figure.width}" height="{figure.height}" fill="{PAPER}"/>',
    ]
    for shape in figure.shapes:
        lines.append(_svg_shape(shape))
    lines.append("</svg>")
    return "\n".join(lines)


def _n(value):
    """A coordinate with at most one decimal, without a trailing .0."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _svg_shape(shape):
    if isinstance(shape, Rect):
        stroke = f' stroke="{shape.stroke}" stroke-width="{_n(shape.stroke_width)}"' if shape.stroke else ""
        return (
            f'<rect x="{_n(shape.x)}" y="{_n(shape.y)}" width="{_n(shape.width)}" height="{_n(shape.height)}" '
            f'rx="{_n(shape.radius)}" fill="{shape.fill}"{stroke}/>'
        )
    if isinstance(shape, Text):
        weight = ' font-weight="bold"' if shape.bold else ""
        return (
            f'<text x="{_n(shape.x)}" y="{_n(shape.y)}" font-size="{shape.size}" fill="{shape.fill}" '
            f'text-anchor="{shape.anchor}"{weight} xml:space="preserve">{escape(shape.text)}</text>'
        )
    if isinstance(shape, Line):
        return (
            f'<line x1="{_n(shape.x1)}" y1="{_n(shape.y1)}" x2="{_n(shape.x2)}" y2="{_n(shape.y2)}" '
            f'stroke="{shape.stroke}" stroke-width="{_n(shape.width)}"/>'
        )
    raise TypeError(f"unknown shape {shape!r}")
