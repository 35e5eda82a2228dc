"""Default size of the synthetic Aff-Wild2 (kept import-light: the command line reads it to build its help)."""

#: 120 short videos rather than 24 long ones: model selection and a stable test score need many validation and test
#: people (36 videos each) more than long videos; 9,600 frames keep the demo within about 5 minutes on 2 cores.
DEFAULTS: dict = {"videos": 120, "frames": 80, "fps": 25.0, "size": (320, 240)}
AFFECTNET_DEFAULTS: dict = {"images": 2000, "size": 128}
