"""Hand-checkable masked-slot logits shared by the loss and metric tests.

Row 0: slot 0 uniform over 3 (ce = ln 3), slot 1 p(label) = 2/4 (ce = ln 2), slot 2 padded with a
huge ce (100) that must not count. Row 1: all padded.
"""

import numpy as np

LOGITS = np.array(
    [
        [[0.0, 0.0, 0.0], [0.0, np.log(2.0), 0.0], [100.0, 0.0, 0.0]],
        [[0.0, 5.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]],
    ],
    "float32",
)
LABELS = np.array([[1, 1, 2], [0, 0, 0]], "int32")
WEIGHTS = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], "float32")
