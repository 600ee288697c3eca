"""assets.extra/tf_serving_warmup_requests: real requests TF Serving replays when it loads a version.

Warm-up runs every signature once per batch size before the version takes traffic, so the first
user does not pay for graph optimisation and kernel set-up. A warm-up request that fails makes TF
Serving refuse to load the version, so the exporter replays them itself before publishing it.

The file is a TFRecord of `PredictionLog` protos (tensorflow-serving-api), one `PredictRequest` per
(signature, batch size), built from the same texts for every signature.
"""

import os

import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def serving_apis():
    """tensorflow-serving-api's proto modules, or a clear error when the package is missing."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        from keras_mlm.errors import UserInputError

        raise UserInputError("export needs tensorflow-serving-api: pip install 'keras-mlm[serving]'") from None
    return model_pb2, predict_pb2, prediction_log_pb2


def default_texts(vocabulary, count=4, with_mask=True):
    """`count` short texts made of the vocabulary's own words (its first word-start pieces that read as
    letters), each with one or two of its mask tokens (or, for task models, `with_mask=False`, a word
    in each mask's place). `vocabulary`: a `Vocabulary` of any kind or a WordPiece token list."""
    from keras_mlm.tokenizers.vocabulary import as_vocabulary

    vocabulary = as_vocabulary(vocabulary)
    specials = set(vocabulary.special_token_ids)
    words = [
        vocabulary.piece_text(t).strip() for i, t in enumerate(vocabulary.tokens)
        if i not in specials and vocabulary.starts_word(t) and vocabulary.piece_text(t).strip().isalpha()
    ][:4] or ["a"]
    words = (words * 4)[:4]
    m = vocabulary.mask_token if with_mask else words[2]
    patterns = [f"{words[0]} {m} {words[1]}", f"{m} {words[2]}", f"{words[1]} {m} {words[3]} {m}", f"{words[3]} {words[0]} {m}"]
    return [patterns[i % len(patterns)] for i in range(count)]


def build_requests(model_name, builders, texts, token_ids, batch_sizes=(1, None)):
    """PredictRequests for every signature builder, per batch size (None: all of `texts`), with the
    inputs each builder makes for `texts` packed as `token_ids` (batch, seq) int32."""
    model_pb2, predict_pb2, _ = serving_apis()
    requests = []
    for builder in builders:
        for size in dict.fromkeys(len(texts) if b is None else b for b in batch_sizes):
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=builder.name))
            for key, value in builder.example_inputs(texts[:size], token_ids[:size]).items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            requests.append(request)
    return requests


def write_requests(saved_model_dir, requests):
    """Writes the requests as the warm-up file of `saved_model_dir`; returns its path."""
    _, _, prediction_log_pb2 = serving_apis()
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_requests(saved_model_dir):
    """The PredictRequests of a SavedModel's warm-up file."""
    _, _, prediction_log_pb2 = serving_apis()
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        for record in tf.data.TFRecordDataset(path)
    ]


def run_request(loaded, request):
    """Feeds a PredictRequest to a loaded SavedModel's signature; returns {output: np.ndarray}."""
    function = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
    return {key: value.numpy() for key, value in function(**inputs).items()}
