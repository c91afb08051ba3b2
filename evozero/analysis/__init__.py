"""Analysis: reading a run and reusing what it found (show, export, plots, evaluation on
other tasks, the scikit-learn estimator).
"""
