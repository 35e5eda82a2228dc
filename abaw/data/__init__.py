"""Data access: the Aff-Wild2 reader (:mod:`abaw.data.affwild2`)."""

from abaw.data.affwild2 import (
    AffWild2,
    VideoEntry,
    dataset_fingerprint,
    detect_layout,
    parse_label_file,
    read_boxes,
    valid_mask,
    video_info,
    write_table,
)

__all__ = [
    "AffWild2",
    "VideoEntry",
    "dataset_fingerprint",
    "detect_layout",
    "parse_label_file",
    "read_boxes",
    "valid_mask",
    "video_info",
    "write_table",
]
