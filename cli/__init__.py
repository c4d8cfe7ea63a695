"""Command-line client: submit jobs or sweeps, wait for results, tabulate and plot."""
