"""Results and reports: a run's results, show, plots, export, the cost command and
accuracy at equal training compute."""
