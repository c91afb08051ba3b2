"""Benchmarks behind ``evozero bench``: each prints ratios against a reference timed in the same run."""
