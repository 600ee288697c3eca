"""The cluster examples in deploy/ are the commands and TF_CONFIG keras-mlm runs with, not prose that drifts."""

import json
import logging
import shlex
import types
from pathlib import Path

import pytest
import yaml

from keras_mlm.cli.main import build_parser
from keras_mlm.training import multi_worker, strategy

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
TFJOB_PORT = 2222  # the port the training operator names in TF_CONFIG for every pod


def load_tfjob():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "tfjob.yaml").read_text()))
    (job,) = [d for d in documents if d["kind"] == "TFJob"]
    claims = {d["metadata"]["name"]: d for d in documents if d["kind"] == "PersistentVolumeClaim"}
    return job, claims


def operator_tf_config(job, replica_type, index, namespace="default"):
    """The TF_CONFIG the Kubeflow training operator sets in a TFJob pod: every replica type's pods by
    lower-case type, at `{job}-{type}-{index}.{namespace}.svc:{port}`, and this pod's type and index."""
    name = job["metadata"]["name"]
    cluster = {
        kind.lower(): [f"{name}-{kind.lower()}-{i}.{namespace}.svc:{TFJOB_PORT}" for i in range(spec["replicas"])]
        for kind, spec in job["spec"]["tfReplicaSpecs"].items()
    }
    return json.dumps({"cluster": cluster, "task": {"type": replica_type.lower(), "index": index}, "environment": "cloud"})


def chief_under(tf_config, monkeypatch):
    """Whether keras-mlm (`strategy.is_chief`) takes the process with this TF_CONFIG for the chief, which
    alone writes RUN_DIR; the resolver is TensorFlow's own, reading TF_CONFIG as MultiWorkerMirrored does."""
    import tensorflow as tf

    monkeypatch.setenv("TF_CONFIG", tf_config)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    multi_worker_strategy = types.SimpleNamespace(cluster_resolver=resolver, extended=types.SimpleNamespace(_in_multi_worker_mode=lambda: True))
    return strategy.is_chief(multi_worker_strategy), strategy.cluster_size()


def test_tfjob_runs_one_pretrain_command_on_chief_and_workers_over_a_shared_run_dir():
    job, claims = load_tfjob()
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "TFJob")
    replicas = job["spec"]["tfReplicaSpecs"]
    assert set(replicas) == {"Chief", "Worker"} and replicas["Chief"]["replicas"] == 1 and replicas["Worker"]["replicas"] >= 1
    pods = [replicas[kind]["template"]["spec"] for kind in ("Chief", "Worker")]
    assert pods[0] == pods[1]  # the same container, command and volume in every pod
    (container,) = pods[0]["containers"]
    assert container["name"] == "tensorflow"  # the container the operator gives TF_CONFIG
    assert {"name": "tfjob-port", "containerPort": TFJOB_PORT} in container["ports"]
    command = [str(c) for c in container["command"]]
    assert command[0] == "keras-mlm"
    args = build_parser().parse_args(command[1:])  # the real CLI parses it: no stale or misspelt flag
    assert args.verb == "pretrain" and args.strategy == "multi-worker" and args.num_workers is None
    # The inputs and RUN_DIR are on the one volume every pod mounts, backed by a ReadWriteMany claim.
    (mount,) = container["volumeMounts"]
    (volume,) = pods[0]["volumes"]
    assert volume["name"] == mount["name"]
    for path in [*args.data, args.vocab, args.out]:
        assert path.startswith(mount["mountPath"] + "/")
    assert claims[volume["persistentVolumeClaim"]["claimName"]]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_tfjob_tf_config_matches_the_local_launchers(monkeypatch):
    job, _ = load_tfjob()
    replicas = job["spec"]["tfReplicaSpecs"]
    pods = [("Chief", 0)] + [("Worker", i) for i in range(replicas["Worker"]["replicas"])]
    tasks = len(pods)
    launcher = [multi_worker.tf_config([f"127.0.0.1:{2222 + i}" for i in range(tasks)], i) for i in range(tasks)]
    operator = [operator_tf_config(job, kind, index) for kind, index in pods]
    # The same form: a cluster of task type -> addresses, and this task's type and index.
    for config in launcher + operator:
        parsed = json.loads(config)
        assert set(parsed["cluster"]) <= {"chief", "worker"} and set(parsed["task"]) == {"type", "index"}
        assert parsed["cluster"][parsed["task"]["type"]][parsed["task"]["index"]]
    # The same cluster size and exactly one chief: the TFJob's Chief pod where the launcher has worker 0.
    on_cluster = [chief_under(config, monkeypatch) for config in operator]
    on_one_machine = [chief_under(config, monkeypatch) for config in launcher]
    assert on_cluster == on_one_machine == [(True, tasks)] + [(False, tasks)] * (tasks - 1)


def beam_command(script):
    """The `keras-mlm prepare` command line of a deploy/beam script, line continuations joined."""
    text = (DEPLOY / "beam" / script).read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("keras-mlm prepare ")]
    return shlex.split(line)[1:]


@pytest.mark.parametrize("script, runner", [("dataflow.sh", "DataflowRunner"), ("flink.sh", "FlinkRunner")])
def test_beam_scripts_run_prepare_with_options_beam_knows(script, runner, caplog):
    pytest.importorskip("apache_beam")
    from apache_beam.options.pipeline_options import PipelineOptions

    argv = beam_command(script)
    ours, beams = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = build_parser().parse_args(ours)
    assert args.verb == "prepare" and args.runner == runner
    assert all(path.startswith("$") for path in [*args.inputs, args.vocab, args.out])  # on storage the user names, all workers reach
    with caplog.at_level(logging.WARNING):
        options = PipelineOptions(beams).get_all_options()
    assert "Discarding unparseable args" not in caplog.text  # every option after `--` is one of Beam's
    assert options["runner"] is None  # the runner is ours to set (--runner), not repeated after `--`
