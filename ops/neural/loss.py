"""Softmax cross-entropy loss."""
from __future__ import annotations

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of the softmax of ``logits`` (N, K) against integer ``labels`` (N,),
    and its gradient with respect to ``logits``."""
    n = logits.shape[0]
    rows = np.arange(n)
    # Shifting by the row maximum keeps exp from overflowing; softmax is unchanged.
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
    dlogits = exp / total
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, dlogits
