"""CLI verbs `import` (a local checkpoint folder -> a run folder) and `export-weights` (a run -> keras-hub / HF)."""

DEFAULT_SEQ_LEN = 128  # keras_mlm.checkpoints.importer.DEFAULT_SEQ_LEN, without importing TensorFlow here
EXPORT_FORMATS = ("keras-hub", "hf")


def _import(args):
    from keras_mlm.checkpoints import import_checkpoint

    result = import_checkpoint(args.source, args.out, seq_len=args.seq_len, seed=args.seed, overwrite=args.overwrite)
    print(result.summary())


def _export_weights(args):
    from keras_mlm.checkpoints import export_weights

    result = export_weights(
        args.run_dir, args.format, args.out, model_path=args.model_path, seed=args.seed, overwrite=args.overwrite,
        check=args.check,
    )
    print(result.summary())


def register(verbs):
    import argparse

    p = verbs.add_parser(
        "import", help="turn a local BERT checkpoint folder (keras-hub, Hugging Face, google-research) into a run folder"
    )
    p.add_argument("source", metavar="SOURCE", help="the checkpoint folder (its format is detected from its files)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write (model.keras, vocab.txt, config.yaml)")
    p.add_argument("--seq-len", type=int, default=None,
                   help=f"the run's row length (default {DEFAULT_SEQ_LEN}, or the model's maximum when shorter)")
    p.add_argument("--seed", type=int, default=0, help="initialises the MLM head when the source has none")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty RUN_DIR")
    p.set_defaults(run=_import)

    p = verbs.add_parser("export-weights", help="write a BERT run as a keras-hub preset or a Hugging Face BertForMaskedLM folder")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="keras-hub: a BertMaskedLM preset folder; hf: a BertForMaskedLM folder (safetensors)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (whole or not at all)")
    p.add_argument("--model-path", default=None, help="export this checkpoint instead of RUN_DIR/model.keras")
    p.add_argument("--seed", type=int, default=0, help="initialises the pooler (keras-mlm trains none)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="load DIR back with keras-hub and report the largest output difference (default on)")
    p.set_defaults(run=_export_weights)
