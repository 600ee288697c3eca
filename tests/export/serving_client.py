"""What TF Serving does with an exported version, in a process without keras, keras-hub or keras_mlm.

    python serving_client.py SAVED_MODEL_DIR REQUEST.json OUT.json

REQUEST.json: {"texts": [...], "token_ids": [[...]], "segment_ids": [[...]], "grpc_snippet": "..."}. The script
  1. loads the SavedModel with tensorflow + tensorflow_text only and replays the warm-up file;
  2. sends PredictRequest protos (tensorflow-serving-api) to fill_mask_text, serving_default,
     fill_mask and encode, converting them to tensors and the outputs back to a PredictResponse,
     exactly as the model server's predict path does;
  3. sends bad requests through a TF1 Session, as the C++ server does (no Python shape checks on
     feeds: TF Serving checks dtypes, never shapes), and records each error's first line;
  4. sends a good request again: the process must still serve;
  5. runs the README's gRPC client snippet against a PredictionService served from this process.
It writes what it got to OUT.json for the test to compare with the in-memory model.
"""

import contextlib
import io
import json
import sys
from concurrent import futures

BLOCKED = ("keras_hub", "keras_nlp", "keras_mlm", "tf_keras")
for _name in BLOCKED:
    sys.modules[_name] = None  # importing any of them now fails: the SavedModel must not need them

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the tensorflow-text ops the text signature uses)
from tensorflow.core.protobuf import config_pb2  # noqa: E402
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc  # noqa: E402

# `import tensorflow` (2.16+) itself imports keras for tf.keras, and tensorflow_text subclasses
# tf.keras.layers.Layer at import: keras cannot be kept out of a Python process that uses them. What
# must hold is that loading and serving the SavedModel imports no Keras code beyond that.
KERAS_AT_START = sorted(m for m in sys.modules if m.split(".")[0] == "keras")

MODEL_NAME = "mlm"


def predict(loaded, signature, inputs):
    """PredictRequest -> signature -> PredictResponse, through the protos and back."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=signature))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # as received on the wire
    feeds = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
    outputs = loaded.signatures[request.model_spec.signature_name](**feeds)
    response = predict_pb2.PredictResponse(model_spec=request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def jsonable(outputs):
    """Arrays -> nested lists, bytes decoded."""
    decode = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])
    return {key: (decode(v) if v.dtype == object else v).tolist() for key, v in outputs.items()}


def replay_warmup(loaded, saved_model_dir):
    replayed = []
    for record in tf.data.TFRecordDataset(f"{saved_model_dir}/assets.extra/tf_serving_warmup_requests"):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        feeds = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**feeds)
        batch = len(next(iter(feeds.values())))
        replayed.append({"signature": request.model_spec.signature_name, "batch": batch, "outputs": sorted(outputs)})
    return replayed


class SessionServer:
    """The SavedModel in a TF1 Session, fed like tensorflow_model_server feeds it."""

    def __init__(self, saved_model_dir):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], saved_model_dir)
        self.signatures = meta_graph.signature_def
        self.callables = {}

    def run(self, signature, inputs):
        """Returns ("ok", output keys) or ("error", first line of the message)."""
        signature_def = self.signatures[signature]
        feeds = sorted(inputs)
        key = (signature, tuple(feeds))
        if key not in self.callables:
            options = config_pb2.CallableOptions(
                feed=[signature_def.inputs[k].name for k in feeds],
                fetch=[v.name for v in signature_def.outputs.values()],
            )
            # The callable path, unlike Session.run, does not check feed shapes in Python.
            self.callables[key] = self.session._make_callable_from_options(options)
        try:
            self.callables[key](*[inputs[k] for k in feeds])
            return ["ok", sorted(signature_def.outputs)]
        except tf.errors.OpError as e:
            return ["error", e.message.strip().splitlines()[0]]


def bad_requests(server, request):
    texts = request["texts"]
    token_ids = np.array(request["token_ids"], np.int32)
    padding = (token_ids != 0).astype(np.int32)
    no_mask = np.where(token_ids == request["mask_id"], 5, token_ids).astype(np.int32)
    out_of_range = token_ids.copy()
    out_of_range[0, 1] = request["vocabulary_size"] + 7
    two = padding.copy()
    two[0, 0] = 2
    cases = {
        "texts rank 2": ("fill_mask_text", {"texts": np.array([texts[:2]], dtype=object)}),
        "texts scalar": ("fill_mask_text", {"texts": np.array(texts[0], dtype=object)}),
        "empty text": ("fill_mask_text", {"texts": np.array([texts[0], ""], dtype=object)}),
        "blank text": ("fill_mask_text", {"texts": np.array(["   "], dtype=object)}),
        "text without mask": ("fill_mask_text", {"texts": np.array([texts[0], "no mask in this one"], dtype=object)}),
        "text too long": ("fill_mask_text", {"texts": np.array([texts[0], "the cat " * 20 + "[MASK]"], dtype=object)}),
        "invalid utf-8": ("fill_mask_text", {"texts": np.array([b"caf\xe9 [MASK]"], dtype=object)}),
        "default empty text": ("serving_default", {"texts": np.array([""], dtype=object)}),
        "token_ids rank 3": ("fill_mask", {"token_ids": token_ids[None], "padding_mask": padding[None]}),
        "token_ids rank 1": ("fill_mask", {"token_ids": token_ids[0], "padding_mask": padding[0]}),
        "token_ids too short": ("fill_mask", {"token_ids": token_ids[:, :7], "padding_mask": padding[:, :7]}),
        "padding_mask other shape": ("fill_mask", {"token_ids": token_ids, "padding_mask": padding[:1]}),
        "token_ids int64": ("fill_mask", {"token_ids": token_ids.astype(np.int64), "padding_mask": padding}),
        "token id out of range": ("fill_mask", {"token_ids": out_of_range, "padding_mask": padding}),
        "padding_mask 2": ("fill_mask", {"token_ids": token_ids, "padding_mask": two}),
        "row without mask": ("fill_mask", {"token_ids": no_mask, "padding_mask": padding}),
        "segment id 5": ("encode", {"token_ids": token_ids, "segment_ids": np.full_like(token_ids, 5), "padding_mask": padding}),
        "empty batch": ("fill_mask_text", {"texts": np.array([], dtype=object)}),
        "good after bad": ("fill_mask_text", {"texts": np.array(texts[:3], dtype=object)}),
    }
    return {name: server.run(signature, inputs) for name, (signature, inputs) in cases.items()}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """A stand-in for tensorflow_model_server's gRPC Predict, backed by the loaded SavedModel."""

    def __init__(self, loaded):
        self.loaded = loaded

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        import grpc

        feeds = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        try:
            outputs = self.loaded.signatures[request.model_spec.signature_name or "serving_default"](**feeds)
        except tf.errors.InvalidArgumentError as e:
            # Eager calls prefix "Graph execution error:"; the server sends the op's message, as here.
            lines = [line for line in e.message.splitlines() if line.startswith("assertion failed")]
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, (lines or [e.message])[0])
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


def run_grpc_snippet(loaded, snippet):
    """Serves PredictionService on a free local port and runs the README's client code against it."""
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(loaded), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(snippet.replace("localhost:8500", f"localhost:{port}"), {})
        bad = snippet.replace("paris is the [MASK] of france", "no mask at all")
        try:
            exec(bad.replace("localhost:8500", f"localhost:{port}"), {})
            error = None
        except grpc.RpcError as e:
            error = [e.code().name, e.details()]
        return {"printed": printed.getvalue().splitlines(), "bad_request": error}
    finally:
        server.stop(None)


def main(saved_model_dir, request_path, out_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    loaded = tf.saved_model.load(saved_model_dir)
    result = {"warmup": replay_warmup(loaded, saved_model_dir)}
    texts = np.array(request["texts"], dtype=object)
    token_ids = np.array(request["token_ids"], np.int32)
    padding_mask = (token_ids != 0).astype(np.int32)
    result["fill_mask_text"] = jsonable(predict(loaded, "fill_mask_text", {"texts": texts}))
    result["serving_default"] = jsonable(predict(loaded, "serving_default", {"texts": texts}))
    result["fill_mask"] = jsonable(predict(loaded, "fill_mask", {"token_ids": token_ids, "padding_mask": padding_mask}))
    segment_ids = np.array(request["segment_ids"], np.int32)
    result["encode"] = jsonable(predict(loaded, "encode", {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}))
    result["bad_requests"] = bad_requests(SessionServer(saved_model_dir), request)
    if request.get("grpc_snippet"):
        result["grpc"] = run_grpc_snippet(loaded, request["grpc_snippet"])
    result["keras_modules_added"] = sorted(m for m in sys.modules if m.split(".")[0] == "keras" and m not in KERAS_AT_START)
    result["blocked_modules_loaded"] = [m for m in BLOCKED if sys.modules.get(m) is not None]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
