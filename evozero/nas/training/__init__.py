"""Training and data: the data sets, the model that runs a network's layers forward and
backward, and brief SGD training."""
