"""abaw: affective behaviour analysis in-the-wild (valence/arousal, expressions, action units)."""

__version__ = "0.1.0"
