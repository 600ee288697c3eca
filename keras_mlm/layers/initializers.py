"""Initializer helpers."""

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer` for one weight.

    An unseeded Keras initializer draws its integer seed once, at construction, so one instance used
    for two weights gives both the same random stream. Rebuilding it from its config draws a new seed
    (from the Python RNG that `keras.utils.set_random_seed` seeds, so runs stay reproducible).
    """
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())
