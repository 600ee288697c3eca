"""Runs signatures of an exported SavedModel in a process without keras-hub or keras_mlm, as TF Serving does.

    python signature_client.py SAVED_MODEL_DIR REQUESTS.json OUT.json [SAVED_MODEL_DIR REQUESTS.json OUT.json ...]

REQUESTS.json: [{"signature": "classify", "inputs": {"texts": ["..."]}}, ...]. Each request goes
through PredictRequest/PredictResponse protos (tensorflow-serving-api) as on the wire; the warm-up
file is replayed first. OUT.json: one {output: nested list} per request (bytes decoded), or
{"error": first line} for a request the model refused. Several models may be given, one triple
each, to pay for one process start. Used by the task-model and vocabulary-kind export tests.
"""

import json
import sys

for _name in ("keras_hub", "keras_nlp", "keras_mlm", "tf_keras"):
    sys.modules[_name] = None  # importing any of them now fails: the SavedModel must not need them

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the tensorflow-text ops of text signatures)
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # noqa: E402


def predict(loaded, signature, inputs):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="model", signature_name=signature))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    feeds = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
    outputs = loaded.signatures[request.model_spec.signature_name](**feeds)
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def jsonable(outputs):
    decode = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])
    return {key: (decode(v) if v.dtype == object else v).tolist() for key, v in outputs.items()}


def as_array(value):
    array = np.array(value)
    return array.astype(object) if array.dtype.kind == "U" else array.astype(np.int32) if array.dtype.kind == "i" else array


def main(saved_model, requests_path, out_path):
    loaded = tf.saved_model.load(saved_model)
    warmup = tf.data.TFRecordDataset(f"{saved_model}/assets.extra/tf_serving_warmup_requests")
    replayed = 0
    for record in warmup:
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        predict(loaded, request.model_spec.signature_name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        replayed += 1
    with open(requests_path, encoding="utf-8") as f:
        requests = json.load(f)
    results = []
    for request in requests:
        try:
            outputs = predict(loaded, request["signature"], {k: as_array(v) for k, v in request["inputs"].items()})
            results.append(jsonable(outputs))
        except tf.errors.InvalidArgumentError as e:
            results.append({"error": next((l.strip() for l in e.message.splitlines() if "assertion failed" in l), e.message.splitlines()[0])})
    keras_modules = sorted(m for m in sys.modules if m.split(".")[0] in ("keras_hub", "keras_mlm") and sys.modules[m] is not None)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"results": results, "warmup_replayed": replayed, "signatures": sorted(loaded.signatures), "keras_mlm_modules": keras_modules}, f)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    for start in range(0, len(arguments), 3):
        main(*arguments[start : start + 3])
