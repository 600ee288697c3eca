"""The architectures side by side: size, training speed next to keras-hub, held-out quality at equal wall-clock.

    python benchmarks/bench_variants.py [--budget 900] [--preset tiny] [--architectures bert,albert,...  (default: all)]
                                        [--out runs/bench_variants/results.json] [--work runs/bench_variants]

Every architecture of `run_config.ARCHITECTURES` (or those named) pre-trains, in this one process, on the
same text for the same wall-clock budget (`pretrain` with `training.max_time`: the schedule is planned
for the budget and the run stops when it is spent), at the same preset size, with its own defaults
otherwise (no fill-mask samples: they do not train). Text: wikitext-2 (valid, test), tinyshakespeare and
the gutenberg books; three whole books are held out and never trained on (bench_quality.py's: Sherlock
Holmes, A Tale of Two Cities, Dracula). Each vocabulary kind is learnt once on the training text
(WordPiece; byte-level BPE for an architecture that accepts only BPE, as RoBERTa), and the text is
prepared into rows once per kind, before any budget starts.

Per architecture:
- parameters of the pre-training model (ELECTRA: generator and discriminator, the embeddings counted once);
- training tokens/s of one step, keras-mlm's pre-training model next to keras-hub's model of the same
  family built from a config (random weights, nothing downloaded), both fed the same masked batch from
  the training rows, same precision, alternating timed rounds (best round; median too); CPU-seconds a
  step. keras-hub's BertMaskedLM, RobertaMaskedLM, AlbertMaskedLM. It has no ELECTRA pre-trainer, so
  ELECTRA gets a second line: its discriminator step (encoder + replaced-token head, sigmoid loss on the
  same labels) on keras-mlm's ElectraEncoder and on keras-hub's ElectraBackbone;
- steps and tokens trained in the budget;
- held-out masked loss and accuracy at the end, on the held-out books' rows with the fixed evaluation
  mask (`Evaluator`: the numbers of `keras-mlm evaluate`); ELECTRA: its generator's, and its
  discriminator's accuracy on every real token of the same held-out batches next to the accuracy of
  answering "original" everywhere (1 - the fraction of tokens its generator replaced).
Losses are per masked piece of each run's vocabulary: across vocabulary kinds they are not comparable.

The CPU is named (from /proc/cpuinfo) with its core count and load average beside every figure.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from pathlib import Path

from machine import cpu  # benchmarks/machine.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Known and harmless here: keras-hub's pooler gets no gradient from a masked-LM loss; Keras' note that a
# tf.data dataset is not reshuffled by `fit` (ours shuffles itself).
warnings.filterwarnings("ignore", message="Gradients do not exist for variables.*pooled_dense")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = ROOT / ".." / "shared" / "corpora"
HELD_OUT = ("pg1661_adventures_of_sherlock_holmes.txt", "pg98_tale_of_two_cities.txt", "pg345_dracula.txt")
SEQ_LEN = 128


def machine():
    """'CPU model (family F model M), N cores' of this machine."""
    return f"{cpu()}, {os.cpu_count()} cores"


def load():
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def split_corpus(max_mb=None):
    """(training files, held-out files): whole books held out; `max_mb` keeps the first training files
    (in a fixed order: wikitext, shakespeare, then books) up to that size, for a quick run."""
    books = sorted((CORPORA / "gutenberg").glob("*.txt"))
    held_out = [b for b in books if b.name in HELD_OUT]
    train = [CORPORA / "wikitext-2" / "valid.txt", CORPORA / "wikitext-2" / "test.txt", CORPORA / "tinyshakespeare" / "input.txt"]
    train += [b for b in books if b.name not in HELD_OUT]
    if max_mb is not None:
        kept, size = [], 0
        for path in train:
            if kept and size + path.stat().st_size > max_mb * 1e6:
                break
            kept.append(path)
            size += path.stat().st_size
        train = kept
    assert len(held_out) == len(HELD_OUT) and not set(held_out) & set(train)
    return train, held_out


def vocabulary_kind(architecture):
    """WordPiece where the architecture accepts it, else the first kind it accepts (RoBERTa: BPE)."""
    from keras_mlm.training.run_config import config_class

    kinds = getattr(config_class(architecture), "VOCABULARY_KINDS", ("wordpiece",))
    return "wordpiece" if "wordpiece" in kinds else kinds[0]


def prepared_text(kind, vocab_size, train_files, held_out, work):
    """(vocabulary path, training shards, held-out shards) of `kind`, learnt and prepared once (cached in
    `work`, keyed by the kind, size, row length and the training files)."""
    from keras_mlm.data.prepare import DataConfig, prepare
    from keras_mlm.tokenizers import learners
    from keras_mlm.tokenizers.vocabulary import SAVED_NAMES

    key = {"kind": kind, "vocab_size": vocab_size, "seq_len": SEQ_LEN, "train": [p.name for p in train_files], "held_out": list(HELD_OUT)}
    folder = work / f"text-{kind}"
    vocab, train_shards, held_out_shards = folder / SAVED_NAMES[kind], folder / "train", folder / "held_out"
    if (folder / "key.json").exists() and json.loads((folder / "key.json").read_text()) == key:
        return vocab, train_shards, held_out_shards
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    learn = {"wordpiece": learners.train_wordpiece, "bpe": learners.train_bpe, "sentencepiece": learners.train_sentencepiece}[kind]
    vocabulary = learn([str(p) for p in train_files], vocab_size)
    vocabulary.save(vocab)
    for files, shards in ((train_files, train_shards), (held_out, held_out_shards)):
        prepare([str(p) for p in files], vocabulary, str(shards), DataConfig(seq_len=SEQ_LEN), overwrite=True)
    (folder / "key.json").write_text(json.dumps(key))
    print(f"{kind}: vocabulary of {len(vocabulary)} learnt and text prepared in {time.monotonic() - started:.0f} s", flush=True)
    return vocab, train_shards, held_out_shards


# --- keras-hub's model of the same family, from a config -------------------------------------------


def _hub_masked_lm(backbone_class, masked_lm_class, **extra):
    def build(config, policy):
        backbone = backbone_class(
            vocabulary_size=config.vocabulary_size, num_layers=config.num_layers, num_heads=config.num_heads,
            hidden_dim=config.hidden_dim, intermediate_dim=config.intermediate_dim, dropout=config.dropout,
            max_sequence_length=config.max_sequence_length, dtype=policy, **{k: getattr(config, v) for k, v in extra.items()},
        )
        return masked_lm_class(backbone, preprocessor=None)

    return build


def keras_hub_masked_lms():
    """Architecture -> (keras-hub class name, builder(config, policy) -> its masked LM)."""
    import keras_hub

    m = keras_hub.models
    return {
        "bert": ("BertMaskedLM", _hub_masked_lm(m.BertBackbone, m.BertMaskedLM, num_segments="num_segments")),
        "roberta": ("RobertaMaskedLM", _hub_masked_lm(m.RobertaBackbone, m.RobertaMaskedLM)),
        "albert": ("AlbertMaskedLM", _hub_masked_lm(m.AlbertBackbone, m.AlbertMaskedLM, embedding_dim="embedding_dim",
                                                   num_groups="num_groups", num_segments="num_segments")),
    }


def discriminators(config, policy):
    """ELECTRA's discriminator step on each side: {token_ids, segment_ids, padding_mask} -> per-token
    replaced logits (batch, seq): keras-mlm's ElectraEncoder + ReplacedTokenHead; keras-hub's
    ElectraBackbone + the same head's layers (dense, GELU, dense to 1)."""
    import keras
    import keras_hub

    from keras_mlm.layers.replaced_token_head import ReplacedTokenHead
    from keras_mlm.models.electra import ElectraEncoder

    inputs = lambda: {n: keras.Input(shape=(SEQ_LEN,), dtype="int32", name=n) for n in ("token_ids", "segment_ids", "padding_mask")}  # noqa: E731
    ours_in = inputs()
    ours_encoder = ElectraEncoder.from_encoder_config(config, dtype=policy, name="encoder")
    ours = keras.Model(ours_in, ReplacedTokenHead(config.activation, dtype=policy, name="head")(ours_encoder(ours_in)))
    hub_in = inputs()
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=config.vocabulary_size, num_layers=config.num_layers, num_heads=config.num_heads, hidden_dim=config.hidden_dim,
        embedding_dim=config.embedding_dim or config.hidden_dim, intermediate_dim=config.intermediate_dim, dropout=config.dropout,
        max_sequence_length=config.max_sequence_length, num_segments=config.num_segments, dtype=policy,
    )
    x = backbone(hub_in)["sequence_output"]
    x = keras.layers.Dense(config.hidden_dim, activation="gelu", dtype=policy)(x)
    logits = keras.layers.Dense(1, dtype="float32")(x)
    hub = keras.Model(hub_in, keras.layers.Reshape((SEQ_LEN,))(logits))
    return ours, hub


def sigmoid_loss(labels, logits):
    import tensorflow as tf

    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits)  # (batch, seq)


# --- timing ----------------------------------------------------------------------------------------


def time_steps(models, steps, rounds):
    """{name: {"tokens_per_second" (best round), "median_tokens_per_second", "cpu_seconds_per_step" (best)}}
    of `models` ({name: (compiled model, (x, y, sample_weight))}): each `fit` on its batch, 3 warm-up
    steps, then `rounds` rounds of `steps`, the models alternating."""
    import tensorflow as tf

    seconds = {name: [] for name in models}
    cpu = {name: [] for name in models}
    datasets = {name: tf.data.Dataset.from_tensors(batch).repeat() for name, (_, batch) in models.items()}
    for name, (model, _) in models.items():
        model.fit(datasets[name], steps_per_epoch=3, epochs=1, verbose=0)  # trace + first steps
    for _ in range(rounds):
        for name, (model, _) in models.items():
            wall, process = time.perf_counter(), time.process_time()
            model.fit(datasets[name], steps_per_epoch=steps, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - wall)
            cpu[name].append((time.process_time() - process) / steps)
    result = {}
    for name, (_, (x, _, _)) in models.items():
        tokens = int(x["token_ids"].shape[0]) * SEQ_LEN * steps
        result[name] = {
            "tokens_per_second": tokens / min(seconds[name]),
            "median_tokens_per_second": tokens / sorted(seconds[name])[len(seconds[name]) // 2],
            "cpu_seconds_per_step": min(cpu[name]),
        }
    return result


def throughput(architecture, config, training, vocabulary, shards, policy, steps, rounds):
    """[{"what", "keras_mlm", "keras_hub" (None without a counterpart), "keras_hub_model", "keras_hub_parameters"}]."""
    import keras
    import tensorflow as tf

    from keras_mlm.data.dataset import pretraining_dataset
    from keras_mlm.masking import MLMMasker
    from keras_mlm.training.pretrain import build_pretraining_model

    masker = MLMMasker.from_vocabulary(vocabulary, SEQ_LEN, seed=training.seed)
    x, mask_ids, mask_weights = next(iter(pretraining_dataset(str(shards), training.batch_size, masker, seed=training.seed, vocabulary=vocabulary)))
    optimizer = lambda: keras.optimizers.AdamW(training.learning_rate, weight_decay=training.weight_decay)  # noqa: E731
    keras.utils.set_random_seed(training.seed)
    models = {"keras-mlm": (build_pretraining_model(architecture, config, training, total_steps=10**6), (x, mask_ids, mask_weights))}
    hub_name, hub_builders = None, keras_hub_masked_lms()
    if architecture in hub_builders:
        hub_name, build = hub_builders[architecture]
        hub = build(config, policy)
        hub.compile(optimizer=optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()])
        models["keras-hub"] = (hub, ({k: x[k] for k in hub.input}, mask_ids, mask_weights))  # RoBERTa's takes no segment_ids
    timed = time_steps(models, steps, rounds)
    rows = [{"what": "pre-training step", "keras_hub_model": hub_name, "keras_mlm": timed["keras-mlm"], "keras_hub": timed.get("keras-hub"),
             "keras_hub_parameters": models["keras-hub"][0].count_params() if hub_name else None}]
    if architecture == "electra":
        inputs = {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        labels = tf.cast(tf.random.stateless_uniform(x["token_ids"].shape, (training.seed, 1)) < 0.15, tf.float32)  # ~15% "replaced"
        weights = tf.cast(x["padding_mask"], tf.float32)  # every real token
        ours, hub = discriminators(config, policy)
        for model in (ours, hub):
            model.compile(optimizer=optimizer(), loss=sigmoid_loss)
        timed = time_steps({"keras-mlm": (ours, (inputs, labels, weights)), "keras-hub": (hub, (inputs, labels, weights))}, steps, rounds)
        rows.append({"what": "discriminator step", "keras_hub_model": "ElectraBackbone", "keras_mlm": timed["keras-mlm"],
                     "keras_hub": timed["keras-hub"], "keras_hub_parameters": hub.count_params()})
    return rows


# --- one architecture ------------------------------------------------------------------------------


def run_architecture(architecture, args, text, precision, work):
    """Pre-trains `architecture` for the budget, then times its step; returns its result dict."""
    import keras

    from keras_mlm.evaluation.evaluate import Evaluator
    from keras_mlm.tokenizers.vocabulary import Vocabulary
    from keras_mlm.training.pretrain import pretrain
    from keras_mlm.training.run_config import build_run_config
    from keras_mlm.training.strategy import set_precision

    vocab, train_shards, held_out_shards = text
    vocabulary = Vocabulary.load(vocab)
    training = {"max_time": args.budget, "seed": args.seed, "precision": precision, "sample_sentences": [],
                "eval_every": 10**9, "eval_tokens": args.eval_tokens}  # held-out numbers once, at the end
    config = build_run_config({"architecture": architecture, "preset": args.preset, "data": {"seq_len": SEQ_LEN}, "training": training})
    run_dir = work / f"run-{architecture}-{args.preset}-{args.budget:g}s"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a fresh run: a leftover backup would resume instead
    load_before = load()
    summary = pretrain(config, str(train_shards), str(vocab), str(run_dir), verbose=0, eval_data=str(held_out_shards))
    model = summary["model"]
    result = {
        "architecture": architecture,
        "vocabulary": f"{vocabulary.kind} {len(vocabulary)}",
        "parameters": model.count_params(),
        "precision": summary["precision"],
        "budget_seconds": args.budget,
        "steps": summary["step"],
        "batch_size": config.training.batch_size,  # the architecture's default (RoBERTa's is larger)
        "tokens_trained": summary["step"] * config.training.batch_size * SEQ_LEN,
        "run_seconds": summary["seconds"],
        "stop_reason": summary["stop_reason"],
        "held_out": summary["validation"],  # {"loss", "accuracy", "perplexity", "tokens"}; ELECTRA: its generator's
        "load_average_during_run": [load_before, load()],
    }
    if architecture == "electra":
        # The discriminator on the same held-out rows and fixed masks (its replacements sampled at step 0).
        evaluator = Evaluator(vocabulary, str(held_out_shards), max_tokens=args.eval_tokens)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")  # one pass over a finite dataset, as meant
            scores = model.evaluate(evaluator.dataset, verbose=0, return_dict=True)
        result["held_out_discriminator"] = {"accuracy": scores["discriminator_accuracy"], "all_original_accuracy": 1 - scores["replaced_fraction"],
                                            "replaced_recall": scores["replaced_recall"]}
    del summary["model"], model
    set_precision(precision)  # the policy both sides of the timing are built under
    encoder_config = config.encoder_config(len(vocabulary))
    result["throughput"] = throughput(architecture, encoder_config, dataclasses.replace(config.training, precision=precision), vocabulary,
                                      train_shards, keras.config.dtype_policy().name, args.steps, args.rounds)
    result["load_average_after_timing"] = load()
    keras.mixed_precision.set_global_policy("float32")
    return result


# --- report ----------------------------------------------------------------------------------------


def table(results):
    """The README's markdown table of `results`."""
    lines = [
        "| architecture | parameters | train tokens/s | keras-hub (same family) | keras-hub tokens/s | ratio | steps x batch in budget "
        "| held-out masked loss | held-out accuracy |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for i, t in enumerate(r["throughput"]):
            ours = t["keras_mlm"]["tokens_per_second"]
            hub = t["keras_hub"]["tokens_per_second"] if t["keras_hub"] else None
            name = r["architecture"] if i == 0 else f"{r['architecture']} ({t['what']})"
            hub_model = f"{t['keras_hub_model']} ({t['keras_hub_parameters'] / 1e6:.2f}M)" if t["keras_hub_model"] else "none"
            if i == 0:
                held = r["held_out"]
                loss, accuracy = f"{held['loss']:.3f}", f"{held['accuracy']:.3f}"
                if "held_out_discriminator" in r:
                    d = r["held_out_discriminator"]
                    loss += " (generator)"
                    accuracy += f" (generator); discriminator {d['accuracy']:.3f} vs {d['all_original_accuracy']:.3f} all-original"
                lines.append(f"| {name} | {r['parameters'] / 1e6:.2f}M | {ours:,.0f} | {hub_model} | {f'{hub:,.0f}' if hub else '—'} "
                             f"| {f'{ours / hub:.2f}x' if hub else '—'} | {r['steps']:,} x {r['batch_size']} | {loss} | {accuracy} |")
            else:
                lines.append(f"| {name} | | {ours:,.0f} | {hub_model} | {hub:,.0f} | {ours / hub:.2f}x | | | |")
    return "\n".join(lines)


def main(argv=None):
    from keras_mlm.training.run_config import ARCHITECTURES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=900, help="wall-clock seconds of pre-training per architecture")
    parser.add_argument("--preset", default="tiny", help="the same preset size for every architecture")
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES), help=f"comma-separated, of {', '.join(ARCHITECTURES)}")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--precision", default="auto", help="of every run and timing: auto, float32, mixed_bfloat16")
    parser.add_argument("--eval-tokens", type=int, default=200_000, help="held-out tokens read (rows x seq_len) at the end of each run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=8, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model")
    parser.add_argument("--max-text-mb", type=float, default=None, help="train on the first files up to this size (a quick run); default all")
    parser.add_argument("--work", default="runs/bench_variants")
    parser.add_argument("--out", default=None, help="JSON of every result (default WORK/results.json)")
    args = parser.parse_args(argv)

    from keras_mlm.training.strategy import resolve_precision

    architectures = args.architectures.split(",")
    unknown = [a for a in architectures if a not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)} (allowed: {', '.join(ARCHITECTURES)})")
    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    precision, why = resolve_precision(args.precision)
    train_files, held_out = split_corpus(args.max_text_mb)
    size = sum(p.stat().st_size for p in train_files) / 1e6
    print(f"machine: {machine()}; load average {load()}\n"
          f"text: {len(train_files)} files, {size:.1f} MB trained on; held out: {', '.join(HELD_OUT)}\n"
          f"preset {args.preset}, {args.budget:g} s per architecture, precision {precision} ({why}), rows of {SEQ_LEN}", flush=True)
    texts = {}
    for kind in dict.fromkeys(vocabulary_kind(a) for a in architectures):
        texts[kind] = prepared_text(kind, args.vocab_size, train_files, held_out, work)

    from keras_mlm.errors import UserInputError

    out = Path(args.out) if args.out else work / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "precision": precision, "preset": args.preset, "budget_seconds": args.budget,
              "train_files": [p.name for p in train_files], "held_out": list(HELD_OUT), "seq_len": SEQ_LEN, "results": []}
    results, failed = report["results"], {}
    for architecture in architectures:
        started = time.monotonic()
        try:
            result = run_architecture(architecture, args, texts[vocabulary_kind(architecture)], precision, work)
        except UserInputError as e:  # e.g. a budget too short for this architecture's setup: the others still run
            failed[architecture] = str(e)
            print(f"{architecture}: not measured: {e}", flush=True)
            continue
        results.append(result)
        out.write_text(json.dumps({**report, "failed": failed}, indent=2))  # kept as each architecture finishes
        t = result["throughput"][0]
        hub = f", keras-hub {t['keras_hub']['tokens_per_second']:,.0f}" if t["keras_hub"] else ""
        print(f"{architecture}: {result['parameters'] / 1e6:.2f}M parameters, {result['steps']} steps, held-out loss "
              f"{result['held_out']['loss']:.3f} accuracy {result['held_out']['accuracy']:.3f}; "
              f"{t['keras_mlm']['tokens_per_second']:,.0f} tokens/s{hub} ({time.monotonic() - started:.0f} s; load {load()})", flush=True)
    out.write_text(json.dumps({**report, "failed": failed}, indent=2))
    if not results:
        sys.exit("no architecture was measured")
    print(f"\nmachine: {machine()} (load average now {load()}); precision {precision}; preset {args.preset}; "
          f"{args.budget:g} s of pre-training each; tokens/s: best of {args.rounds} rounds of {args.steps} steps on the run's batch; "
          f"held-out: {results[0]['held_out']['tokens']:,} masked tokens of 3 unseen books\n")
    print(table(results))
    for architecture, error in failed.items():
        print(f"\nnot measured: {architecture}: {error}")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
