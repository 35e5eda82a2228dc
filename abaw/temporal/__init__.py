"""The CNU_ADL temporal statistical model: block statistics of a per-frame model's outputs into multi-task heads."""
