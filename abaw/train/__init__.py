"""Training: config schema (``config``), the loop (``loop.train``), checkpoints and ``checkpoint.load_model``,
torchrun DDP helpers (``distributed``), evaluation (``evaluate.evaluate_run``), plots and run folders."""
