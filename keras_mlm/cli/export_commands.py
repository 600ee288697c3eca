"""CLI verb `export`: a run folder -> saved_models/NAME/VERSION for TF Serving."""

from keras_mlm.errors import UserInputError


def _signature_names(value):
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise UserInputError("--signatures: give comma-separated names, e.g. fill_mask,encode")
    return names


def _export(args):
    from keras_mlm.export import export_run

    serving_version = None if args.serving_version.lower() == "none" else args.serving_version
    result = export_run(
        args.run_dir,
        args.name,
        model_path=args.model_path,
        version=args.version,
        to=args.to,
        serving_version=serving_version,
        top_k=args.top_k,
        signatures=_signature_names(args.signatures) if args.signatures else None,
        warmup_texts=args.warmup_text or None,
        base_path=args.base_path,
    )
    print(result.summary())


def register(verbs):
    from keras_mlm.export.model_config import DEFAULT_BASE_PATH
    from keras_mlm.export.serving_ops import DEFAULT_SERVING_VERSION

    p = verbs.add_parser("export", help="write a SavedModel version for TF Serving (text and ids signatures)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--name", required=True, help="model name: the folder under --to and the name clients ask for")
    p.add_argument("--version", type=int, default=None, help="version number (default: the next free one)")
    p.add_argument("--to", default="saved_models", help="model base folder (default saved_models)")
    p.add_argument("--serving-version", default=DEFAULT_SERVING_VERSION,
                   help=f"TF Serving release every signature must run on (default {DEFAULT_SERVING_VERSION}); 'none': no check")
    p.add_argument("--top-k", type=int, default=5, help="predictions per mask (default 5)")
    p.add_argument("--signatures", default=None, help="comma-separated subset, e.g. fill_mask,encode (default: all)")
    p.add_argument("--warmup-text", action="append", default=[], metavar="TEXT", help="warm-up text (repeatable; with a [MASK] for a masked LM)")
    p.add_argument("--base-path", default=DEFAULT_BASE_PATH, help=f"where the server sees --to, for models.config (default {DEFAULT_BASE_PATH})")
    p.add_argument("--model-path", default=None, help="export this checkpoint instead of RUN_DIR/model.keras")
    p.set_defaults(run=_export)
