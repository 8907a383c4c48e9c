"""Launching one attempt of one job."""
