"""CLI verbs of the data path: vocab, prepare, inspect, demo-corpus."""

import argparse
import json
import os

from keras_mlm.errors import UserInputError


def add_masking_arguments(parser):
    """Masking flags shared by every verb that masks (defaults: BERT's 15% and 80/10/10)."""
    group = parser.add_argument_group("masking")
    group.add_argument("--selection-rate", type=float, default=None, help="fraction of tokens selected (default: 0.15, BERT's; pretrain --architecture modern, "
                       "the default architecture: 0.3, see README 'The default recipe')")
    group.add_argument("--mask-token-rate", type=float, default=None, help="of the selected, fraction set to [MASK] (default: 0.8)")
    group.add_argument("--random-token-rate", type=float, default=None, help="of the selected, fraction set to a random token (default: 0.1)")
    group.add_argument("--keep-rate", type=float, default=None, help="of the selected, fraction left as is (default: the rest)")
    group.add_argument("--max-selections", type=int, default=None, help="mask slots per row (default: ceil(seq_len * selection_rate))")
    group.add_argument("--masking", dest="masking_strategy", choices=["token", "whole_word", "span"], default=None, help="what is selected together (default: token)")


# MaskingConfig field -> argparse dest (`--masking` is not `--strategy`, the distribution flag)
MASKING_FLAGS = {
    "selection_rate": "selection_rate",
    "mask_token_rate": "mask_token_rate",
    "random_token_rate": "random_token_rate",
    "keep_rate": "keep_rate",
    "max_selections": "max_selections",
    "strategy": "masking_strategy",
}


def masking_config(args, base=None):
    """A MaskingConfig from the flags that were given, over `base` (a dict, e.g. from a config file)."""
    from keras_mlm.masking import MaskingConfig

    values = dict(base or {})
    values.update({field: getattr(args, dest) for field, dest in MASKING_FLAGS.items() if getattr(args, dest, None) is not None})
    try:
        return MaskingConfig(**values)
    except TypeError as e:
        raise UserInputError(f"masking: {e}") from None


def _vocab(args):
    from keras_mlm.data.readers import expand_inputs
    from keras_mlm.tokenizers.learners import LEARNERS

    lowercase = args.lowercase if args.lowercase is not None else args.kind != "bpe"  # byte-level BPE is cased
    files = expand_inputs(args.files)
    vocabulary = LEARNERS[args.kind](files, args.vocab_size, lowercase=lowercase)
    vocabulary.save(args.out)
    note = "" if len(vocabulary) >= args.vocab_size else f" (asked for {args.vocab_size}: the corpus supports no more pieces)"
    print(f"wrote {args.out}: {args.kind}, {len(vocabulary)} tokens{note}, from {len(files)} file(s), lowercase={vocabulary.lowercase}")


def _prepare(args):
    from keras_mlm.data.prepare import DataConfig, prepare

    config = DataConfig(seq_len=args.seq_len, rows_per_shard=args.rows_per_shard, lowercase=args.lowercase)
    manifest = prepare(
        args.inputs, args.vocab, args.out, config, overwrite=args.overwrite, progress=not args.quiet,
        runner=args.runner, pipeline_options=args.pipeline_options,
    )
    summary = {k: manifest[k] for k in ("documents", "source_tokens", "sequences", "seq_len", "padding_fraction")}
    summary["shards"] = len(manifest["shards"])
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))


def _inspect(args):
    from keras_mlm.data.inspect import masking_statistics, render_row
    from keras_mlm.data.prepare import VOCAB_COPY, read_manifest
    from keras_mlm.masking import MLMMasker
    from keras_mlm.tokenizers.vocabulary import Vocabulary, find_saved

    manifest = read_manifest(args.dir)
    if args.verify:
        from keras_mlm.data.verify import check_shards

        size = check_shards(args.dir, manifest, records=True)
        sized = all("bytes" in shard for shard in manifest["shards"])
        if not args.json:
            print(f"verified {args.dir}: {len(manifest['shards'])} shards, {size:,} bytes, every record matches the manifest's "
                  f"records_sha256{'' if sized else ' (this older manifest records no sizes)'}")
    vocabulary = Vocabulary.load(args.vocab or find_saved(args.dir) or os.path.join(args.dir, VOCAB_COPY))
    tokens = list(vocabulary.tokens)
    masker = MLMMasker.from_vocabulary(vocabulary, manifest["seq_len"], masking_config(args), seed=args.seed)
    stats, examples = masking_statistics(args.dir, masker, min_tokens=args.sample_tokens)
    corpus = {k: manifest[k] for k in ("documents", "source_tokens", "unknown_tokens", "sequences", "seq_len", "padding_fraction", "vocab_sha256", "vocab_size")}
    corpus["shards"] = len(manifest["shards"])
    if args.verify:
        corpus["verified"] = True
    if args.json:
        print(json.dumps({**corpus, **stats}, indent=2))
        return
    print(f"corpus {args.dir}")
    for key, value in corpus.items():
        print(f"  {key:<18} {value:.6f}" if isinstance(value, float) else f"  {key:<18} {value}")
    print(f"masking ({masker.masking_config.strategy}, measured on {stats['sample_tokens']:,} tokens in {stats['sample_rows']:,} rows)")
    for key in ("selected_fraction", "mask_fraction", "random_fraction", "keep_fraction", "specials_selected", "masks_per_row", "mask_slots"):
        value = stats[key]
        print(f"  {key:<18} {value:.4f}" if isinstance(value, float) else f"  {key:<18} {value}")
    print("rows (masked positions as [original->became]):")
    for example in examples:
        print("  " + render_row(example, tokens))


def _demo_corpus(args):
    from keras_mlm.data.demo_corpus import write_demo_corpus

    info = write_demo_corpus(args.out, seed=args.seed)
    print(f"wrote {info['path']}: {info['documents']} documents, {info['sentences']} sentences, {info['bytes']:,} bytes, {info['countries']} countries")


def register(verbs):
    p = verbs.add_parser("vocab", help="train a WordPiece, byte-level BPE or SentencePiece vocabulary")
    p.add_argument("files", nargs="+", metavar="FILES", help=".txt/.jsonl files (or .gz) or folders of them")
    p.add_argument("--kind", choices=["wordpiece", "bpe", "sentencepiece"], default="wordpiece",
                   help="wordpiece (BERT), bpe (byte-level, RoBERTa) or sentencepiece (unigram, ALBERT); default wordpiece")
    p.add_argument("--vocab-size", type=int, required=True, help="largest vocabulary, special tokens included")
    p.add_argument("--out", required=True,
                   help="where to write: wordpiece a token-per-line file, bpe a folder (vocab.json + merges.txt), "
                        "sentencepiece a .model file")
    p.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                   help="lower-case the text first (default: yes, except bpe, which is cased)")
    p.set_defaults(run=_vocab)

    p = verbs.add_parser("prepare", help="tokenize and pack a corpus into TFRecord shards")
    p.add_argument("inputs", nargs="+", metavar="INPUTS")
    p.add_argument("--vocab", required=True, help="vocabulary: a WordPiece file, a BPE folder or a SentencePiece .model")
    p.add_argument("--seq-len", type=int, default=128, help="ids per row, [CLS] and [SEP]s included")
    p.add_argument("--out", required=True, help="output directory (shards + manifest.json)")
    p.add_argument("--rows-per-shard", type=int, default=4096, help="rows in each TFRecord file")
    p.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None, help="lower-case the text (default: inferred from the vocabulary)")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--runner", default=None, metavar="NAME",
                   help="run as an Apache Beam pipeline on this runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner), "
                        "with Beam's pipeline options after `--`; needs keras-mlm[beam] (default: this process alone)")
    p.set_defaults(run=_prepare, pipeline_options=[])  # what follows `--` (main.py)

    p = verbs.add_parser("inspect", help="corpus and masking statistics of a shards directory")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verify", action="store_true", help="first read every shard and check its size and records against the manifest")
    p.add_argument("--vocab", default=None, help="vocabulary file (default: the one saved beside the shards)")
    p.add_argument("--seed", type=int, default=0, help="seeds the masks measured")
    p.add_argument("--sample-tokens", type=int, default=100_000, help="measure masking on at least this many tokens")
    add_masking_arguments(p)
    p.set_defaults(run=_inspect)

    p = verbs.add_parser("demo-corpus", help="write the built-in synthetic demo corpus")
    p.add_argument("out", metavar="OUT", help="directory to write demo_corpus.txt into")
    p.add_argument("--seed", type=int, default=0, help="seeds the generated sentences")
    p.set_defaults(run=_demo_corpus)
