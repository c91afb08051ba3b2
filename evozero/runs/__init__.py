"""Runs: islands in worker processes or Ray actors, the migration broker, the run flow, the
run directory and its checkpoints.
"""
