"""Applications built on the whole pipeline: the demo and predictions on a user's own videos."""
