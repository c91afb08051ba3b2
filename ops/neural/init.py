"""Weight initialisation."""
from __future__ import annotations

import numpy as np


def he_normal(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    """Kaiming normal weights: float32 draws from N(0, 2 / fan_in)."""
    std = np.float32(np.sqrt(2.0 / fan_in))
    return rng.standard_normal(shape, dtype=np.float32) * std
