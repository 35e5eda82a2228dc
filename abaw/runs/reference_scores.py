"""Published scores (docs: abaw-reference.md section 5) as leaderboard reference rows.

They were reported on the real Aff-Wild / Aff-Wild2 data, so the leaderboard shows them apart from runs on other data
(the synthetic set above all) and never ranks them together with those runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from abaw.tasks import TRACKS


@dataclass(frozen=True)
class ReferenceScore:
    """One published result on one track."""

    system: str
    track: str
    #: Competition year whose metric the score uses (``abaw2020`` ...), or the older challenge's name.
    protocol: str
    #: Where it was measured, e.g. "ABAW 2021 validation" or "Aff-Wild test".
    setting: str
    dataset: str
    score: float | None
    components: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "track": self.track, "protocol": self.protocol, "setting": self.setting,
                "dataset": self.dataset, "score": self.score, "components": dict(self.components),
                "note": self.note, "reported": True}


AFF_WILD = "Aff-Wild (real, reported)"
AFF_WILD2 = "Aff-Wild2 (real, reported)"


def _va(system: str, protocol: str, setting: str, valence: float | None = None, arousal: float | None = None,
        score: float | None = None, dataset: str = AFF_WILD2, note: str = "") -> ReferenceScore:
    components = {}
    if valence is not None and arousal is not None:
        components = {"ccc_valence": valence, "ccc_arousal": arousal}
        if score is None:
            score = round((valence + arousal) / 2, 4)
    return ReferenceScore(system, "va", protocol, setting, dataset, score, components, note)


REFERENCE_SCORES: tuple[ReferenceScore, ...] = (
    # Valence-arousal: score = mean CCC of valence and arousal.
    _va("Aff-Wild challenge 2017 baseline (CNN-M)", "affwild2017", "Aff-Wild test", 0.15, 0.10, dataset=AFF_WILD),
    _va("FATAUVA-Net (2017 winner)", "affwild2017", "Aff-Wild test", 0.396, 0.282, dataset=AFF_WILD),
    _va("AffWildNet (VGG-Face + 2xGRU128)", "affwild2017", "Aff-Wild test", 0.57, 0.43, score=0.50, dataset=AFF_WILD,
        note="MSE 0.08 / 0.06"),
    _va("ABAW 2020 baseline", "abaw2020", "ABAW 2020 validation", score=0.19),
    _va("CNU_ADL temporal statistical model", "abaw2020", "ABAW 2020 validation", score=0.534),
    _va("ABAW 2021 baseline", "abaw2021", "ABAW 2021 validation", 0.21, 0.23),
    _va("ABAW 2022 multi-task winner", "abaw2022", "ABAW 2022 validation", 0.447, 0.499),
    _va("Netease Fuxi (ABAW 2023, 1st EXPR and AU)", "abaw2023", "ABAW 2023 test", score=0.637),
    _va("HSEmotion: frozen EfficientNet features + MLP", "abaw2023", "ABAW 2023 validation", score=0.489),
    _va("HSEmotion: the same + temporal smoothing (window 25)", "abaw2023", "ABAW 2023 validation", score=0.538),
    _va("ABAW 2024 baseline (ResNet-50)", "abaw2024", "ABAW 2024 validation", score=0.22),
    # Expressions: 2020/2021 0.67 * macro F1 + 0.33 * accuracy; 2022 on macro F1.
    ReferenceScore("ABAW 2020 baseline", "expr", "abaw2020", "ABAW 2020 validation", AFF_WILD2, 0.36),
    ReferenceScore("CNU_ADL temporal statistical model", "expr", "abaw2020", "ABAW 2020 validation", AFF_WILD2, 0.543,
                   note="as reported, computed with support-weighted F1 (a defect); about 0.40 with the official "
                        "macro F1"),
    ReferenceScore("ABAW 2022 multi-task winner", "expr", "abaw2022", "ABAW 2022 validation", AFF_WILD2, 0.518,
                   {"f1": 0.518}),
    ReferenceScore("Netease Fuxi (ABAW 2023, 1st EXPR and AU)", "expr", "abaw2023", "ABAW 2023 test", AFF_WILD2, 0.412,
                   {"f1": 0.412}),
    ReferenceScore("HSEmotion: frozen EfficientNet features + MLP", "expr", "abaw2023", "ABAW 2023 validation",
                   AFF_WILD2, 0.384, {"f1": 0.384}),
    ReferenceScore("HSEmotion: the same + temporal smoothing (window 25)", "expr", "abaw2023", "ABAW 2023 validation",
                   AFF_WILD2, 0.439, {"f1": 0.439}),
    # Action units: 2022 on mean per-AU F1.
    ReferenceScore("ABAW 2022 multi-task winner", "au", "abaw2022", "ABAW 2022 validation", AFF_WILD2, 0.548,
                   {"f1": 0.548}),
    ReferenceScore("Netease Fuxi (ABAW 2023, 1st EXPR and AU)", "au", "abaw2023", "ABAW 2023 test", AFF_WILD2, 0.555,
                   {"f1": 0.555}),
)


def reference_scores(track: str | None = None, protocol: str | None = None) -> list[ReferenceScore]:
    """Published rows, best first within each track, optionally filtered."""
    rows = [r for r in REFERENCE_SCORES
            if (track is None or r.track == track) and (protocol is None or r.protocol == protocol)]
    return sorted(rows, key=lambda r: (TRACKS.index(r.track), -(r.score if r.score is not None else float("-inf"))))
