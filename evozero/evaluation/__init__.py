"""Evaluation: tasks (the data sets), the virtual machine that runs a program on them, and
the functional-equivalence cache.
"""
