"""Default size of the synthetic Aff-Wild2 (kept import-light: the command line reads it to build its help)."""

#: 72 short videos rather than 24 long ones: model selection and a stable test score need many validation and test
#: videos more than long ones; the frame count (7,200) and so the demo's time stay those of the former 24 x 300.
DEFAULTS: dict = {"videos": 72, "frames": 100, "fps": 25.0, "size": (320, 240)}
AFFECTNET_DEFAULTS: dict = {"images": 2000, "size": 128}
