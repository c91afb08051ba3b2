"""The tabular benchmark: NAS-Bench-201 cells trained once with one recipe, looked up by
every search that uses the table (``store``), built and verified on the workers
(``build``)."""
