"""Activation names the encoder configs accept, resolved to functions.

"gelu" is the exact (erf) GELU; "gelu_approximate" is the tanh approximation that the original BERT
code and keras-hub's BertBackbone use. Any other name goes to `keras.activations.get`.
"""

import keras


@keras.saving.register_keras_serializable(package="keras_mlm")
def gelu_approximate(x):
    """GELU with the tanh approximation (original BERT, keras-hub)."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name):
    """The activation function for `name` ("gelu", "gelu_approximate", "relu", "silu", ...)."""
    if name == "gelu_approximate":
        return gelu_approximate
    return keras.activations.get(name)
