"""Scoring outside the worker: a history through the pure core, replays under a new model, model
diffs."""
