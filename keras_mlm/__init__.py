"""keras-mlm: masked language model pre-training of bidirectional encoders in TensorFlow/Keras 3."""

__version__ = "0.1.0"
