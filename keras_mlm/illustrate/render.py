"""The picture as SVG, PNG (Pillow, drawn from the same shapes) or one self-contained HTML page."""

import html
import io
import os

from keras_mlm.errors import UserInputError
from keras_mlm.illustrate import figure as figure_lib

FORMATS = {".svg": "svg", ".png": "png", ".html": "html", ".htm": "html"}


def output_format(path):
    """"svg", "png" or "html" from the file name; anything else, or a folder that does not exist, is a
    `UserInputError` (checked before any work is done)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FORMATS:
        raise UserInputError(f"--out {path}: unknown suffix {suffix or '(none)'!r}; use .svg, .png or .html")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserInputError(f"--out {path}: no such folder {directory}")
    return FORMATS[suffix]


class PillowFonts:
    """Pillow's bundled font (no system fonts needed) at each size, and its text widths."""

    def __init__(self, scale=1.0):
        self.scale = scale
        self._fonts = {}

    def font(self, size):
        from PIL import ImageFont

        if size not in self._fonts:
            self._fonts[size] = ImageFont.load_default(size=round(size * self.scale))
        return self._fonts[size]

    def measure(self, text, size):
        """Width in layout pixels (before scaling)."""
        return self.font(size).getlength(self.spaced(text)) / self.scale

    @staticmethod
    def spaced(text):
        """The bundled font's space is a quarter em, which runs words together: draw two."""
        return text.replace(" ", "  ")


def to_png(example, width=figure_lib.DEFAULT_WIDTH, scale=1.0):
    """An `Illustration` -> PNG bytes, laid out with the PNG font's own metrics."""
    from PIL import Image, ImageDraw

    fonts = PillowFonts(scale)
    fig = figure_lib.layout(example, width, fonts.measure)
    image = Image.new("RGB", (round(fig.width * scale), round(fig.height * scale)), figure_lib.PAPER)
    draw = ImageDraw.Draw(image)
    s = scale
    anchors = {"start": "ls", "middle": "ms", "end": "rs"}
    for shape in fig.shapes:
        if isinstance(shape, figure_lib.Rect):
            box = [shape.x * s, shape.y * s, (shape.x + shape.width) * s, (shape.y + shape.height) * s]
            outline = shape.stroke if shape.stroke else None
            draw.rounded_rectangle(box, radius=shape.radius * s, fill=shape.fill, outline=outline,
                                   width=max(1, round(shape.stroke_width * s)) if outline else 0)
        elif isinstance(shape, figure_lib.Text):
            font, xy, text = fonts.font(shape.size), (shape.x * s, shape.y * s), fonts.spaced(shape.text)
            draw.text(xy, text, fill=shape.fill, font=font, anchor=anchors[shape.anchor])
            if shape.bold:  # the bundled font has no bold face: draw it again one pixel to the right
                draw.text((xy[0] + max(1.0, 0.6 * s), xy[1]), text, fill=shape.fill, font=font, anchor=anchors[shape.anchor])
        elif isinstance(shape, figure_lib.Line):
            draw.line([shape.x1 * s, shape.y1 * s, shape.x2 * s, shape.y2 * s], fill=shape.stroke, width=max(1, round(shape.width * s)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def to_svg(example, width=figure_lib.DEFAULT_WIDTH):
    return figure_lib.to_svg(figure_lib.layout(example, width))


_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; color: #1f2328; margin: 24px; max-width: 1100px; }
h1 { font-size: 20px; margin: 0 0 6px 0; }
p.how { font-size: 14px; line-height: 1.5; max-width: 900px; }
.key { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px; margin: 0 4px 0 10px; border: 2px solid; }
table { border-collapse: collapse; font-size: 13px; margin-top: 16px; }
td, th { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }
svg { max-width: 100%; height: auto; }
"""


def to_html(example, width=figure_lib.DEFAULT_WIDTH):
    """An `Illustration` -> one self-contained HTML page: the SVG inline, a legend, the numbers as a table."""
    fig = figure_lib.layout(example, width)
    keys = "".join(
        f'<span class="key" style="background:{fill};border-color:{stroke}"></span>{html.escape(label)}'
        for fill, stroke, label in figure_lib.KIND_STYLE.values()
    )
    rows = "".join(
        "<tr>"
        f"<td>{t.position}</td><td>{html.escape(t.token or '?')}</td><td>{html.escape(t.seen)}</td><td>{t.kind}</td>"
        f"<td>{html.escape(', '.join(f'{tok} {p:.3f}' for tok, p in t.predictions))}</td>"
        f"<td>{'' if t.loss is None else f'{t.loss:.3f}'}</td>"
        f"<td>{t.left:.2f} / {t.itself:.2f} / {t.right:.2f}</td>"
        "</tr>"
        for t in example.targets
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(fig.title)}</title>
<style>{_PAGE_STYLE}</style>
</head>
<body>
<h1>What masking and the model do</h1>
<p class="how">Masked-LM pre-training hides about {example.masking.selection_rate:.0%} of the tokens and trains the model to predict them
from the context on <em>both</em> sides. Colours of the selected tokens:{keys}.
Under each selected token: the attention its position pays to every token it sees (darker = more; the
numbers are the weights, summing to 1), then the decoder's most likely tokens, the true one in green,
and the loss &minus;log p(true token).</p>
{figure_lib.svg_element(fig)}
<table>
<tr><th>position</th><th>true token</th><th>model saw</th><th>kind</th><th>top predictions</th><th>loss</th><th>attention left / self / right</th></tr>
{rows}
</table>
</body>
</html>
"""


def render(example, fmt, width=figure_lib.DEFAULT_WIDTH):
    """An `Illustration` -> bytes of the "svg", "png" or "html" file."""
    if fmt == "png":
        return to_png(example, width)
    text = to_svg(example, width) if fmt == "svg" else to_html(example, width)
    return text.encode("utf-8")


def write_figure(example, path, width=figure_lib.DEFAULT_WIDTH):
    """Writes the picture in the format `path`'s suffix names; returns the path."""
    data = render(example, output_format(path), width)
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)
