"""The latent affect process of one synthetic person: expression states with dwell times drive facial action
intensities; the expression label is read back from the action pattern; valence/arousal follow the state.

Every array is per frame. Internal action channels are the 12 labelled AUs of :data:`abaw.tasks.AU_NAMES_12`
followed by hidden channels the face shows but no label names (upper lid raise, nose wrinkle, lip stretch,
one-sided dimple, blink, speech).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from abaw.synth.params import Cues
from abaw.tasks import AU_NAMES_12, EXPR_CLASSES_8

HIDDEN: tuple[str, ...] = ("AU5", "AU9", "AU20", "AU14R", "blink", "speech")
CHANNELS: tuple[str, ...] = AU_NAMES_12 + HIDDEN
CH = {name: i for i, name in enumerate(CHANNELS)}
N_LABELLED = len(AU_NAMES_12)
#: An AU is labelled active when its intensity exceeds this.
AU_THRESHOLD = 0.5

#: Expression states (ABAW's 8 classes; "Other" is rendered as contempt: a one-sided dimple).
STATES: tuple[str, ...] = EXPR_CLASSES_8
#: Prototype action pattern of each state (FACS-style; AU9/AU20/AU5/AU14R are hidden channels).
PROTOTYPES: dict[str, dict[str, float]] = {
    "Neutral": {},
    "Anger": {"AU4": 1.0, "AU7": 0.9, "AU23": 0.8, "AU24": 0.7},
    "Disgust": {"AU9": 1.0, "AU10": 1.0, "AU4": 0.4, "AU7": 0.3},
    "Fear": {"AU1": 0.9, "AU2": 0.6, "AU4": 0.7, "AU5": 0.9, "AU20": 1.0, "AU25": 0.8},
    "Happiness": {"AU6": 0.85, "AU12": 1.0, "AU25": 0.55},
    "Sadness": {"AU1": 0.9, "AU4": 0.7, "AU15": 1.0},
    "Surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 0.8, "AU25": 0.9, "AU26": 0.9},
    "Other": {"AU14R": 1.0, "AU24": 0.35},
}
#: Circumplex position (valence, arousal) of each state at full intensity.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, -0.1),
    "Anger": (-0.65, 0.6),
    "Disgust": (-0.7, 0.25),
    "Fear": (-0.55, 0.8),
    "Happiness": (0.75, 0.35),
    "Sadness": (-0.65, -0.4),
    "Surprise": (0.2, 0.8),
    "Other": (-0.35, 0.1),
}
#: How often each state is entered (real affect data is dominated by neutral and happiness).
STATE_WEIGHTS: dict[str, float] = {
    "Neutral": 0.26, "Anger": 0.1, "Disgust": 0.07, "Fear": 0.07, "Happiness": 0.2, "Sadness": 0.12,
    "Surprise": 0.11, "Other": 0.07,
}


def prototype_matrix() -> np.ndarray:
    """(n_states, n_channels) prototype action patterns."""
    mat = np.zeros((len(STATES), len(CHANNELS)), dtype=np.float64)
    for k, state in enumerate(STATES):
        for au, w in PROTOTYPES[state].items():
            mat[k, CH[au]] = w
    return mat


@dataclass
class AffectTrack:
    """The latent process of one person over a video (all arrays have one row per frame)."""

    state: np.ndarray  # (n,) int, index into STATES (the driving state, before smoothing)
    weights: np.ndarray  # (n, n_states) smoothed state weights times intensity
    actions: np.ndarray  # (n, n_channels) action intensities in [0, 1] (what the labels follow)
    shown: np.ndarray  # (n, n_channels) what the face shows in each frame: actions + per-frame jitter
    va: np.ndarray  # (n, 2) valence, arousal in [-1, 1]
    expr: np.ndarray  # (n,) int index into STATES, read back from the action pattern
    au: np.ndarray  # (n, 12) int 0/1
    masked: np.ndarray | None = None  # (n,) in [0, 1]: how much the face hides the feeling in each frame


def ou_process(rng: np.random.Generator, n: int, tau: float, sigma: float, dims: int = 1) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck noise, ``tau`` in frames, stationary std ``sigma``: (n, dims)."""
    phi = float(np.exp(-1.0 / max(tau, 1e-3)))
    eps = rng.standard_normal((n, dims)) * sigma * np.sqrt(1.0 - phi**2)
    eps[0] = rng.standard_normal(dims) * sigma  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], eps, axis=0)


def low_pass(x: np.ndarray, tau: float) -> np.ndarray:
    """First-order smoothing along time (``tau`` in frames), starting at the first value."""
    alpha = 1.0 - float(np.exp(-1.0 / max(tau, 1e-3)))
    zi = (1.0 - alpha) * x[:1]
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=zi)
    return y


def state_sequence(rng: np.random.Generator, n: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Expression states with gamma dwell times; returns (state index (n,), peak intensity (n,))."""
    probs = np.array([STATE_WEIGHTS[s] for s in STATES])
    probs = probs * rng.dirichlet(np.full(len(STATES), 4.0)) * len(STATES)  # each person has a temperament
    probs /= probs.sum()
    mean_dwell = float(np.clip(n / 5.0, 0.5 * fps, 2.2 * fps))
    state = np.zeros(n, dtype=np.int64)
    peak = np.zeros(n)
    t, prev = 0, -1
    while t < n:
        p = probs.copy()
        if prev >= 0:
            p[prev] *= 0.15  # a new segment is usually a new state
        p /= p.sum()
        k = int(rng.choice(len(STATES), p=p))
        dwell = max(int(0.3 * fps), int(rng.gamma(3.0, mean_dwell / 3.0)))
        state[t:t + dwell] = k
        peak[t:t + dwell] = rng.uniform(0.55, 1.0)
        t += dwell
        prev = k
    return state, peak


def blinks(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Eye closure (n,) in [0, 1]: brief blinks every few seconds."""
    out = np.zeros(n)
    t = int(rng.uniform(0.2, 3.0) * fps)
    shape = np.array([0.5, 1.0, 1.0, 0.6, 0.2])
    while t < n:
        seg = out[t:t + len(shape)]
        seg[:] = np.maximum(seg, shape[: len(seg)])
        t += int(rng.uniform(1.5, 5.0) * fps)
    return out


def speech_activity(rng: np.random.Generator, arousal: np.ndarray, fps: float, talk: float = 0.5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Talking: (voiced envelope (n,) in [0, 1] at syllable rate, talking turn mask (n,) bool).

    Turns of 1-4 s; an aroused person takes more and longer turns; ``talk`` is about the fraction of turns spoken
    at middling arousal (the rest is silence)."""
    n = len(arousal)
    talking = np.zeros(n, dtype=bool)
    t = 0
    while t < n:
        energy = float(np.clip((arousal[t] + 1.0) / 2.0, 0.0, 1.0))
        speaking = bool(rng.random() < min(0.95, talk * (0.4 + 1.2 * energy)))
        dur = int(rng.uniform(1.0, 2.5 + 2.0 * energy * speaking) * fps)
        talking[t:t + dur] = speaking
        t += max(dur, 1)
    rate = rng.uniform(3.0, 5.0)  # syllables per second
    phase = np.cumsum(np.full(n, 2 * np.pi * rate / fps) * (1 + 0.3 * ou_process(rng, n, fps, 1.0)[:, 0]))
    env = np.clip(np.sin(phase), 0, None) ** 0.7
    return env * talking, talking


def masking_episodes(rng: np.random.Generator, n: int, fps: float, fraction: float) -> np.ndarray:
    """(n,) in [0, 1]: episodes of 1-3 s covering about ``fraction`` of the time in which the face masks the
    expression, with onsets and offsets of about 150 ms."""
    out = np.zeros(n)
    if fraction <= 0:
        return out
    fraction = min(fraction, 0.9)
    mean_gap = 2.0 * (1.0 - fraction) / fraction  # seconds between episodes of 2 s on average
    # stationary start: a clip opens inside an episode with probability ``fraction`` (with what is left of it) or
    # inside a gap (what is left of an exponential gap is exponential), so that a clip of a few seconds is masked
    # about ``fraction`` of the time and not only after a whole first gap
    inside = rng.random() < fraction
    t = 0 if inside else int(rng.exponential(mean_gap) * fps)
    while t < n:
        dur = int(rng.uniform(1.0, 3.0) * fps * (rng.random() if inside else 1.0)) + 1
        inside = False
        out[t:t + dur] = 1.0
        t += dur + int(rng.exponential(mean_gap) * fps) + 1
    return np.clip(low_pass(out, 0.15 * fps), 0.0, 1.0)


def faint_valence(actions: np.ndarray, valence: np.ndarray) -> None:
    """Add a faint smile (AU12, AU6) for positive ``valence`` (n,), a faint frown with lowered lip corners (AU4,
    AU15) for negative, in place; at most 0.35, below the AU labels' threshold."""
    up, down = np.clip(valence, 0.0, 0.35), np.clip(-valence, 0.0, 0.35)
    actions[:, CH["AU12"]] += up
    actions[:, CH["AU6"]] += 0.5 * up
    actions[:, CH["AU4"]] += 0.6 * down
    actions[:, CH["AU15"]] += down


def read_expression(actions: np.ndarray, protos: np.ndarray) -> np.ndarray:
    """The expression an observer reads from the action pattern: the prototype that best explains the actions
    (least squares with a non-negative scale); neutral when no prototype is expressed at scale 0.3 or more."""
    x = actions[:, : protos.shape[1]]
    x = x.copy()
    x[:, CH["blink"]] = 0.0
    x[:, CH["speech"]] = 0.0
    norms = (protos**2).sum(axis=1)
    norms[norms == 0] = 1.0
    scale = np.clip(x @ protos.T / norms, 0.0, 1.2)  # (n, k)
    resid = ((x[:, None, :] - scale[:, :, None] * protos[None]) ** 2).sum(axis=2)
    best = resid.argmin(axis=1)
    weak = scale[np.arange(len(best)), best] < 0.3
    best[weak] = STATES.index("Neutral")
    return best


def simulate_person(rng: np.random.Generator, n: int, fps: float, cues: Cues | None = None) -> AffectTrack:
    """Simulate one person's affect over ``n`` frames at ``fps`` with the cue strengths ``cues``."""
    cues = cues or Cues()
    protos = prototype_matrix()
    state, peak = state_sequence(rng, n, fps)
    target = np.zeros((n, len(STATES)))
    target[np.arange(n), state] = peak
    # onsets and offsets take a few hundred ms; intensity wobbles slowly within a segment
    wobble = np.clip(1.0 + ou_process(rng, n, 0.8 * fps, 0.12), 0.6, 1.3)
    weights = low_pass(target, 0.2 * fps) * wobble
    actions = weights @ protos
    actions += ou_process(rng, n, 0.4 * fps, 0.07, len(CHANNELS))  # idiosyncratic micro-movements
    pos = np.array([CIRCUMPLEX[s] for s in STATES])  # (k, 2)
    mood = rng.normal(0.0, [0.12, 0.1])
    drift = ou_process(rng, n, 3.0 * fps, 0.12, 2)
    felt = weights @ pos  # (n, 2) where the expressed states sit on the circumplex
    va = felt + mood + drift + ou_process(rng, n, 0.3 * fps, 0.03, 2)
    # the slow valence (mood and drift) shows as a tonic expression: a faint smile, or a faint frown and lowered lip
    # corners, below the AU labels' threshold
    faint_valence(actions, cues.face_tonic * (mood[0] + drift[:, 0]))
    shown_arousal = va[:, 1].copy()
    # arousal the face does not show (body and voice do): an activation of its own over about a second (slower, it
    # was mostly a per-person offset of a short clip, which the pooled CCC of a few dozen people turned into noise)
    va[:, 1] += ou_process(rng, n, 1.0 * fps, cues.arousal_hidden)[:, 0]
    va = np.clip(va, -0.98, 0.98)

    env, _ = speech_activity(rng, va[:, 1], fps, cues.talk)
    actions[:, CH["speech"]] = env
    actions[:, CH["AU25"]] += 0.3 * env  # talking parts the lips, rarely past the label threshold
    actions[:, CH["AU26"]] += 0.1 * env
    actions[:, CH["blink"]] = blinks(rng, n, fps)
    actions = np.clip(actions, 0.0, 1.0)

    # a masking face shows a trace of the felt actions (speech still parts the lips) and leaks the valence; the
    # expression label follows the feeling (annotators hear the voice and see the body), the AU labels what the face
    # visibly does
    masked = masking_episodes(rng, n, fps, cues.face_masking)
    unpleasant = np.clip(-felt[:, 0] / 0.3, 0.0, 1.0)  # how negative the felt expression is
    masked *= 1.0 - min(cues.masked_negative, 1.0) * (1.0 - unpleasant)
    displayed = actions.copy()
    displayed[:, : CH["blink"]] *= 1.0 - (1.0 - min(cues.masked_trace, 1.0)) * masked[:, None]
    faint_valence(displayed, cues.masked_leak * va[:, 0] * masked)  # it leaks how pleasant, not which feeling
    displayed[:, CH["AU25"]] = np.maximum(displayed[:, CH["AU25"]], 0.3 * env * masked)
    displayed[:, CH["AU26"]] = np.maximum(displayed[:, CH["AU26"]], 0.1 * env * masked)
    # alertness shows in the eyes whatever the display rule: wide eyes (AU5) when aroused, heavy lids (a partial
    # closure on the blink channel) when calm; both are unlabelled, so no label changes
    aperture = 0.5 * cues.face_arousal * shown_arousal
    displayed[:, CH["AU5"]] = np.clip(displayed[:, CH["AU5"]] + np.clip(aperture, 0.0, 0.5), 0.0, 1.0)
    displayed[:, CH["blink"]] = np.maximum(displayed[:, CH["blink"]], np.clip(-aperture, 0.0, 0.5))
    au = (displayed[:, :N_LABELLED] > AU_THRESHOLD).astype(np.int64)
    expr = read_expression(actions, protos)
    # each frame shows the actions with independent jitter (blinks and speech excepted): one frame is a noisy view,
    # a few frames together are not
    shown = displayed.copy()
    jitter = rng.standard_normal((n, CH["blink"])) * cues.face_noise
    shown[:, : CH["blink"]] = np.clip(displayed[:, : CH["blink"]] + jitter, 0.0, 1.0)
    return AffectTrack(state=state, weights=weights, actions=actions, shown=shown, va=va, expr=expr, au=au,
                       masked=masked)
