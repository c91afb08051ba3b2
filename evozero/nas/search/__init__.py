"""Search strategies over cells, one module per family, and the island that runs them."""
