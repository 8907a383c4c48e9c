"""Screens: main (jobs, workers, throughput), job detail, help, and the modal dialogs."""
