"""Benchmark of islands on 1, 2, ... workers and on Ray (same as ``evozero bench scaling``)."""
from evozero.bench import scaling

if __name__ == "__main__":
    scaling.run()
