"""The base of pre-training models that compute their own losses and metrics (ELECTRA, NSP/SOP)."""

import keras


class OwnLossModel(keras.Model):
    """A model whose `train_step`/`test_step` compute its losses and metrics: compiled with an optimizer only.

    Keras does not call `compile_from_config` on a loaded model whose `compile` is overridden, so it is
    restored here: a loaded `.keras` file comes back compiled, its optimizer built, as it was saved.
    """

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None, **kwargs):
        if loss is not None or metrics or weighted_metrics:
            raise ValueError(f"{type(self).__name__} computes its own loss and metrics; compile it with an optimizer only")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Compiles a loaded model as it was saved."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)
