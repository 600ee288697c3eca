"""The signatures of an ELECTRA pre-trainer: fill-mask by its generator, `encode` by its discriminator.

`ElectraPretrainer` holds two encoders: `.encoder`, the discriminator (the model fine-tuning keeps,
what `Encode` reads through `ExportContext.model_encoder`), and `.generator`, a `MaskedLM` (the only
part that predicts tokens). The fill-mask builders are the masked LM's, run on a context whose model
is the generator; the exported archive tracks the whole pre-trainer.
"""

import dataclasses

from keras_mlm.export.signatures import FillMask, FillMaskText


def generator_context(context):
    """`context` with the pre-trainer's generator (a `MaskedLM`) as the model."""
    return dataclasses.replace(context, model=context.model.generator)


class GeneratorFillMaskText(FillMaskText):
    """`fill_mask_text` answered by the generator."""

    def build(self, context):
        return super().build(generator_context(context))


class GeneratorFillMask(FillMask):
    """`fill_mask` answered by the generator."""

    def build(self, context):
        return super().build(generator_context(context))
