"""Weight-sharing and differentiable search over a supernet of the NAS-Bench-201 cell space."""
