"""Cell spaces and their compilation: NAS-Bench-101 and -201 cells, the space a search
draws and mutates them in, the skeleton that compiles a cell into a network of layers."""
