"""The first run: the built-in demo corpus -> vocabulary -> tiny masked LM -> fill-mask examples.

Everything is generated or trained here, nothing is downloaded. With `out` given the run is kept
(and a rerun resumes or reuses it); otherwise it lives in a temporary folder.
"""

import os
import tempfile

DEMO_EXAMPLES = ("paris is the [MASK] of france", "the [MASK] brown [MASK] jumps")
DEMO_ANSWER = "capital"  # the true word of the first example, for the illustration's loss
DEMO_VOCAB_SIZE = 1000
DEMO_TRAINING = dict(steps=2000, batch_size=64, learning_rate=2e-3, checkpoint_every=500, log_every=50, sample_every=500, warmup_fraction=0.1)
DEMO_SELECTION_RATE = 0.15
DEMO_SEQ_LEN = 32  # short rows escape the unigram plateau sooner than 64 at the same tokens per step (measured)


def run_demo(out=None, steps=None, seed=0, verbose="auto", illustration=None):
    """Trains the demo model in `out` (or a temporary folder) and returns fill-mask results for the examples.

    `illustration`: a .html/.svg/.png path for the picture of the first example (its masking, the
    context it used on both sides, P(capital) and its loss), written before a temporary run is removed.
    """
    if out is None:
        with tempfile.TemporaryDirectory(prefix="keras-mlm-demo-") as scratch:
            return run_demo(scratch, steps, seed, verbose, illustration)
    from keras_mlm.data.demo_corpus import write_demo_corpus
    from keras_mlm.inference.fill_mask import FillMask
    from keras_mlm.inference.run import load_run
    from keras_mlm.tokenizers.vocab import train_vocabulary, write_vocabulary
    from keras_mlm.training.pretrain import pretrain
    from keras_mlm.training.run_config import build_run_config

    corpus = os.path.join(out, "corpus")
    info = write_demo_corpus(corpus, seed=seed)
    vocab = os.path.join(out, "vocab-demo.txt")
    if not os.path.exists(vocab):
        write_vocabulary(train_vocabulary([info["path"]], DEMO_VOCAB_SIZE), vocab)
    training = dict(DEMO_TRAINING, seed=seed)
    if steps is not None:
        training["steps"] = steps
        training["checkpoint_every"] = min(training["checkpoint_every"], steps)
    # The default architecture (modern) at BERT's 15% masking: on this corpus of fixed phrases 30% (the
    # default) put "deer" (0.38) above "fox" (0.22) in the second example; 15% gives fox 0.77, capital 0.999.
    config = build_run_config({"preset": "tiny", "masking": {"selection_rate": DEMO_SELECTION_RATE}, "data": {"seq_len": DEMO_SEQ_LEN},
                               "training": training}, source="demo")
    pretrain(config, info["path"], vocab, out, verbose=verbose)
    run = load_run(out)
    if illustration is not None:
        from keras_mlm.illustrate import illustrate_run

        illustrate_run(run, DEMO_EXAMPLES[0], illustration, seed=seed, top_k=5, answers=[DEMO_ANSWER])
    fill = FillMask(run.model, run.tokens, run.sequence_length, run.lowercase)
    return fill(list(DEMO_EXAMPLES), top_k=5)
