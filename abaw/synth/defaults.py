"""Default size of the synthetic Aff-Wild2 (kept import-light: the command line reads it to build its help)."""

#: 96 short videos rather than 24 long ones: model selection and a stable test score need many validation and test
#: videos (24 each) more than long ones; 9,600 frames keep the demo within about 5 minutes on 2 cores.
DEFAULTS: dict = {"videos": 96, "frames": 100, "fps": 25.0, "size": (320, 240)}
AFFECTNET_DEFAULTS: dict = {"images": 2000, "size": 128}
