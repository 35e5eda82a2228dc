"""Synthetic Aff-Wild2 (:func:`abaw.synth.dataset.generate`) and synthetic AffectNet-format data
(:func:`abaw.synth.affectnet.generate_affectnet`).

See ``docs/synthetic.md`` for the generative model. This package file imports nothing, so that reading
:mod:`abaw.synth.defaults` (the command line's help) does not load OpenCV, PyAV and pandas.
"""
