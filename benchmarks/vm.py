"""Benchmark of the program VM (same as ``evozero bench vm``)."""
from evozero.bench import vm

if __name__ == "__main__":
    vm.run()
