"""Cost and calibration: parameters, FLOPs and latency per device profile, the host's
calibration and the latency drift a run measures once."""
