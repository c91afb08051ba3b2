"""Studies: many seeds of several arms, their statistics, show and plot."""
