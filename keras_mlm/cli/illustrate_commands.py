"""CLI verb `illustrate`: one sentence -> a picture of its masking, the attention and the predictions."""


def _illustrate(args):
    from keras_mlm.illustrate import illustrate_run

    path, summary = illustrate_run(
        args.run_dir,
        args.text,
        args.out,
        seed=args.seed,
        top_k=args.top_k,
        layer=args.layer,
        answers=args.answer or None,
        width=args.width,
        model_path=args.model_path,
    )
    print(f"wrote {path}: {len(summary['tokens'])} tokens, {len(summary['masked_positions'])} predicted")
    for target in summary["predictions"]:
        guesses = ", ".join(f"{p['token']} {p['probability']:.2f}" for p in target["predictions"])
        truth = target["token"] or "?"
        loss = "" if target["loss"] is None else f"  loss {target['loss']:.3f}"
        print(f"  position {target['position']}: {truth} -> {target['seen']} ({target['kind']}): {guesses}{loss}")


def register(verbs):
    p = verbs.add_parser(
        "illustrate",
        help="draw one sentence's masking, the attention of each masked position and the predictions (.svg, .png, .html)",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("text", metavar="TEXT", help="a sentence; without [MASK] the run's masking picks the tokens, with [MASK]s those are predicted")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.svg, FILE.png or FILE.html (one self-contained page)")
    p.add_argument("--seed", type=int, default=0, help="masking seed: the same seed draws the same picture")
    p.add_argument("--top-k", type=int, default=5, help="predictions shown per masked position")
    p.add_argument("--layer", type=int, default=-1, help="encoder layer whose attention is drawn (0-based; -1 the last)")
    p.add_argument("--answer", action="append", default=[], metavar="TOKEN",
                   help="the true token of each [MASK] written in TEXT, in order (repeatable), for the loss")
    p.add_argument("--width", type=int, default=None, help="picture width in pixels; rows wrap to it (default 960)")
    p.add_argument("--model-path", default=None, help="illustrate this checkpoint instead of RUN_DIR/model.keras")
    p.set_defaults(run=_illustrate)
