"""Crowd learning: reading multi-annotator labels, aggregating them (majority vote, soft labels, mean/median,
Dawid-Skene), crowd layers, simulated annotators, and training with crowd labels."""

from abaw.crowd.aggregate import (
    DawidSkene,
    MajorityVote,
    dawid_skene,
    majority_vote,
    majority_vote_codes,
    mean_values,
    median_values,
    soft_labels,
)
from abaw.crowd.layers import CrowdClassification, CrowdModel, CrowdRegression, crowd_cross_entropy, crowd_mse
from abaw.crowd.votes import AnnotatorTable, VoteCounts, read_annotator_table, read_c25, read_cremad_votes

__all__ = [
    "AnnotatorTable",
    "CrowdClassification",
    "CrowdModel",
    "CrowdRegression",
    "DawidSkene",
    "MajorityVote",
    "VoteCounts",
    "crowd_cross_entropy",
    "crowd_mse",
    "dawid_skene",
    "majority_vote",
    "majority_vote_codes",
    "mean_values",
    "median_values",
    "read_annotator_table",
    "read_c25",
    "read_cremad_votes",
    "soft_labels",
]
