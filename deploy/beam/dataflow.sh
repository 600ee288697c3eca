#!/usr/bin/env bash
# `keras-mlm prepare` as a Google Cloud Dataflow job: text in a bucket -> shards + manifest.json in a bucket.
#
#   PROJECT=my-project BUCKET=gs://my-bucket deploy/beam/dataflow.sh
#
# This machine builds the pipeline and waits for it (the command returns when manifest.json is written,
# and prints the same summary line as a local prepare); Dataflow's workers read, tokenize, pack and write.
# The shards are the ones a single-process `keras-mlm prepare` writes from the same text, byte for byte.
# A failed or cancelled job leaves no manifest.json, so nothing trains on half-prepared data; rerun the
# same command (with --overwrite only to replace a finished run).
#
# The workers need keras-mlm and its dependencies (TensorFlow, keras-hub): here the package built from
# this repository is staged with --extra_package and installed on each worker at start-up. For faster
# starts, build a worker image once (FROM apache/beam_python3.11_sdk:2.77.0, RUN pip install keras-mlm)
# and pass --sdk_container_image IMAGE instead.
set -euo pipefail

PROJECT=${PROJECT:?set PROJECT to your Google Cloud project}
BUCKET=${BUCKET:?set BUCKET, e.g. gs://my-bucket}
REGION=${REGION:-us-central1}

python -m build --sdist --outdir dist .

keras-mlm prepare "$BUCKET/corpus/" \
  --vocab "$BUCKET/vocab.txt" \
  --out "$BUCKET/shards" \
  --seq-len 128 \
  --runner DataflowRunner \
  -- \
  --project "$PROJECT" \
  --region "$REGION" \
  --temp_location "$BUCKET/beam-tmp" \
  --job_name keras-mlm-prepare \
  --extra_package dist/keras_mlm-0.1.0.tar.gz \
  --max_num_workers 32 \
  --worker_machine_type n2-standard-8
