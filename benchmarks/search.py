"""Benchmark of the whole search loop (same as ``evozero bench search``)."""
from evozero.bench import search

if __name__ == "__main__":
    search.run()
