#!/usr/bin/env bash
# `keras-mlm prepare` on an Apache Flink cluster (Flink 1.19 to 2.2, the versions Beam 2.77 runs on).
#
#   FLINK_MASTER=flink-jobmanager:8081 DATA=gs://my-bucket deploy/beam/flink.sh
#
# Beam starts its Flink job server here (it needs Java 11+; the jar is downloaded on first use) and
# submits the pipeline to the cluster at FLINK_MASTER; the command waits and returns once manifest.json
# is written. Flink's task managers run the Python steps in Beam's SDK worker containers
# (--environment_type DOCKER), which need keras-mlm installed: build that image once, e.g.
#   FROM apache/beam_python3.11_sdk:2.77.0
#   RUN pip install keras-mlm
# The text and the shards must be on storage that every task manager reaches, through tf.io.gfile: a
# bucket (gs://; s3:// and hdfs:// where tensorflow-io adds them), or one network file system mounted
# at the same path everywhere.
# Spark is the same with --runner SparkRunner -- --spark_master_url spark://HOST:7077.
set -euo pipefail

FLINK_MASTER=${FLINK_MASTER:?set FLINK_MASTER, e.g. flink-jobmanager:8081}
DATA=${DATA:?set DATA to the folder holding corpus/ and vocab.txt, e.g. gs://my-bucket}
SDK_IMAGE=${SDK_IMAGE:-registry.example.com/keras-mlm-beam-sdk:0.1.0}

keras-mlm prepare "$DATA/corpus/" \
  --vocab "$DATA/vocab.txt" \
  --out "$DATA/shards" \
  --seq-len 128 \
  --runner FlinkRunner \
  -- \
  --flink_master "$FLINK_MASTER" \
  --flink_version 1.19 \
  --parallelism 16 \
  --environment_type DOCKER \
  --environment_config "$SDK_IMAGE"
