"""The strength of every cue of the synthetic Aff-Wild2, one field each (docs/synthetic.md says why each default).

Import-light (no numpy): the command line reads the fields to build ``abaw synth --cue KEY=VALUE``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from abaw.errors import AbawError


@dataclass(frozen=True)
class Cues:
    """How strongly each stream carries each label. 0 switches a cue off; the defaults mimic the wild."""

    #: Face: sd of independent per-frame jitter of the shown action intensities (the labels follow the unjittered
    #: ones), like a real face seen through compression, blur and tracking noise; averaging over frames removes it.
    face_noise: float = 0.12
    #: Face: sd of the per-frame landmark jitter of the crop alignment, in eye distances (a noisy detector).
    align_jitter: float = 0.03
    #: Face: fraction of frames in which a hand flicks across part of the face for that frame only (the label
    #: stays; a single frame is misleading, its neighbours are not).
    face_occlusion: float = 0.1
    #: Face: fraction of the time in masking episodes (social display rules): 1-3 s in which the face hides the felt
    #: actions (all but ``masked_trace`` of them; with ``masked_negative`` only an unpleasant feeling's) while voice
    #: and body still show the feeling. The expression and VA labels follow the feeling; the AU labels follow what
    #: the face visibly does, as AU coders code movement.
    face_masking: float = 0.5
    #: Face: how much of the felt actions a masking face still shows (0.15: a trace near the per-frame jitter, the
    #: display rule "de-intensify"; 0: a neutral face, "neutralize").
    masked_trace: float = 0.0
    #: Face: gain of the valence a masking face leaks (Ekman and Friesen's "nonverbal leakage"): a faint smile or frown
    #: of the felt valence, below the AU threshold like the tonic display; it says how pleasant the feeling is, not
    #: which one it is. 0: a masking face leaks nothing.
    masked_leak: float = 1.5
    #: Face: how much masking is confined to unpleasant feelings (display rules hide anger, disgust, fear and sadness
    #: far more than joy or surprise): 0 masks any feeling, 1 only those of negative valence.
    masked_negative: float = 1.0
    #: Face: gain of the tonic display of the slow valence (the person's mood and its drift over seconds): a faint
    #: smile or frown, below the AU threshold. Without it a tenth of valence was a per-person offset only the scene
    #: showed, and half the face model's error was in the per-person means.
    face_tonic: float = 1.5
    #: Face: gain of the eyelid aperture on the arousal the face shows (wide eyes when aroused, heavy lids when calm),
    #: kept while the face masks a feeling: display rules govern the expression, not alertness. It moves only
    #: unlabelled channels (AU5 and the lids), so no label changes. 0: the face shows arousal only through the
    #: expression.
    face_arousal: float = 1.5
    #: Arousal not shown by the face (sd of a slow component): what body and voice carry beyond the expression.
    arousal_hidden: float = 0.1
    #: Audio: how much loudness and pitch follow arousal (1 = up to an octave and 7x louder over the range).
    audio_arousal: float = 1.0
    #: Audio: harmonic roll-off change per unit valence (timbre); each voice has its own roll-off besides.
    audio_valence: float = 0.25
    #: Audio: how much the voice's quality shows the expression (laughter in happiness, a pressed voice in anger and
    #: disgust, a dark voice in sadness, a tremor in fear): what a voice says about the category beyond arousal.
    audio_expression: float = 1.5
    #: Audio: how much of the time a person talks (scaled up with arousal); silent otherwise (room noise only).
    talk: float = 0.5
    #: Body: gain of arm openness, gestures and sway on arousal.
    body_arousal: float = 0.5
    #: Body: gain of the bodily expression of the state (posture and arms: :data:`abaw.synth.scene.BODY_POSTURE`);
    #: each person shows it to their own degree.
    body_expression: float = 0.7
    #: Context: amplitude of the scene's valence cue (the colour of a window or lamp behind the person).
    context_valence: float = 1.0
    #: Context: the scene follows the valence smoothed over this many seconds (a slow cue).
    context_seconds: float = 1.5
    #: Context: sd of a per-video offset of the scene's cue (rooms differ; 0 = the same colour means the same mood).
    context_offset: float = 0.1

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def make_cues(values: Cues | dict[str, Any] | None = None) -> Cues:
    """A :class:`Cues` from itself, None (defaults) or a dict of fields; unknown keys and negatives are one line."""
    if values is None:
        return Cues()
    if isinstance(values, Cues):
        return values
    names = {f.name for f in dataclasses.fields(Cues)}
    out: dict[str, float] = {}
    for key, value in values.items():
        if key not in names:
            raise AbawError(f"unknown cue {key!r}; choose from {', '.join(sorted(names))}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise AbawError(f"cue {key!r} must be a number, got {value!r}") from None
        if not number >= 0:
            raise AbawError(f"cue {key!r} must be at least 0, got {value!r}")
        out[key] = number
    return Cues(**out)


def parse_cue(text: str) -> tuple[str, float]:
    """``KEY=VALUE`` of the command line's ``--cue``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise AbawError(f"--cue must look like KEY=VALUE, not {text!r}")
    cue = make_cues({key.strip(): value.strip()})
    return key.strip(), getattr(cue, key.strip())
