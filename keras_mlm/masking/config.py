"""What to mask and how: a frozen dataclass whose keys are `MLMMasker`'s constructor arguments."""

import dataclasses
import math
import numbers

from keras_mlm.errors import UserInputError

STRATEGIES = ("token", "whole_word", "span")
"""`token`: BERT; `whole_word`: all pieces of a word together; `span`: SpanBERT geometric word spans."""

_RATE_TOLERANCE = 1e-6


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_rate(name, value):
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise UserInputError(f"MaskingConfig.{name} must be a number in [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """Masking hyper-parameters (BERT defaults). Invalid values raise `UserInputError` on construction."""

    selection_rate: float = 0.15
    """Fraction of the maskable tokens of a row (not specials, not padding) chosen as prediction targets."""

    mask_token_rate: float = 0.8
    """Of the chosen tokens, the fraction replaced by [MASK]."""

    random_token_rate: float = 0.1
    """Of the chosen tokens, the fraction replaced by a uniformly drawn non-special token."""

    keep_rate: float | None = None
    """Of the chosen tokens, the fraction left unchanged; None derives `1 - mask_token_rate - random_token_rate`,
    a given value must make the three sum to 1. Always a float after construction."""

    max_selections: int | None = None
    """Mask slots per row (static shape of mask_positions / mask_ids / mask_weights); None derives
    `max(1, ceil(sequence_length * selection_rate))`, e.g. 20 for 128-token rows."""

    strategy: str = "token"
    """Unit of selection: "token" (BERT), "whole_word" (every piece of a word) or "span" (SpanBERT)."""

    span_p: float = 0.2
    """`span` only: parameter of the geometric distribution of span lengths in words."""

    max_span_length: int = 10
    """`span` only: longest span in words; the geometric distribution is truncated there and renormalised
    (mean 3.8 words with the defaults, as in SpanBERT)."""

    def __post_init__(self):
        for name in ("selection_rate", "mask_token_rate", "random_token_rate"):
            _check_rate(name, getattr(self, name))
        replaced = self.mask_token_rate + self.random_token_rate
        if replaced > 1.0 + _RATE_TOLERANCE:
            raise UserInputError(
                f"MaskingConfig.mask_token_rate + random_token_rate must be in [0, 1], got "
                f"{self.mask_token_rate} + {self.random_token_rate} = {replaced:g}"
            )
        if self.keep_rate is None:
            object.__setattr__(self, "keep_rate", max(0.0, round(1.0 - replaced, 12)))
        else:
            _check_rate("keep_rate", self.keep_rate)
            total = replaced + self.keep_rate
            if abs(total - 1.0) > _RATE_TOLERANCE:
                raise UserInputError(
                    f"MaskingConfig.mask_token_rate + random_token_rate + keep_rate must sum to 1, got "
                    f"{self.mask_token_rate} + {self.random_token_rate} + {self.keep_rate} = {total:g}"
                )
        if self.max_selections is not None and (not _is_int(self.max_selections) or self.max_selections < 1):
            raise UserInputError(
                f"MaskingConfig.max_selections must be a positive integer or None, got {self.max_selections!r}"
            )
        if self.strategy not in STRATEGIES:
            raise UserInputError(
                f"MaskingConfig.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if not _is_real(self.span_p) or not 0.0 < self.span_p <= 1.0:
            raise UserInputError(f"MaskingConfig.span_p must be a number in (0, 1], got {self.span_p!r}")
        if not _is_int(self.max_span_length) or self.max_span_length < 1:
            raise UserInputError(
                f"MaskingConfig.max_span_length must be a positive integer, got {self.max_span_length!r}"
            )

    def resolve_max_selections(self, sequence_length):
        """Mask slots per row for rows of `sequence_length` tokens (see `max_selections`)."""
        if self.max_selections is not None:
            if self.max_selections > sequence_length:
                raise UserInputError(
                    f"MaskingConfig.max_selections must be in [1, sequence_length={sequence_length}], "
                    f"got {self.max_selections}"
                )
            return int(self.max_selections)
        # round() first so that 100 * 0.15 = 15.000000000000002 gives 15, not 16.
        return max(1, math.ceil(round(sequence_length * self.selection_rate, 9)))
