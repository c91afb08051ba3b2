"""Search: one population evolving in numba (regularized evolution or random search), and the
settings and seeds that set it up.
"""
