"""Default size of the synthetic Aff-Wild2 (kept import-light: the command line reads it to build its help)."""

DEFAULTS: dict = {"videos": 24, "frames": 300, "fps": 25.0, "size": (320, 240)}
AFFECTNET_DEFAULTS: dict = {"images": 2000, "size": 128}
