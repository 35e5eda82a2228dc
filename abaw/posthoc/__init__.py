"""Post-hoc fusion of trained runs' outputs: ensembles, smoothing, thresholds, and the label-only baselines."""
