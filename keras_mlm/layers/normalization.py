"""LayerNorm whose math is the `layer_norm` kernel the fused training path also uses."""

import keras

from keras_mlm.layers.fused import layer_norm


@keras.saving.register_keras_serializable(package="keras_mlm")
class LayerNorm(keras.layers.Layer):
    """LayerNorm over the last axis: statistics in float32, gamma/beta kept float32, output in the
    compute dtype. Blocks that fuse it with a residual add read `gamma` and `beta` directly.
    `center=False` has no beta (`beta` is None): ModernBERT's LayerNorm without bias.
    """

    def __init__(self, epsilon=1e-12, center=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = bool(center)

    def build(self, inputs_shape):
        dim = inputs_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones", autocast=False)
        self.beta = None
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros", autocast=False)

    def call(self, inputs):
        return layer_norm(inputs, self.gamma, self.beta, self.epsilon)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "center": self.center})
        return config
