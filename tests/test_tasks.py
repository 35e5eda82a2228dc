"""The task definitions every module relies on: class orders, AU lists, headers, folders and protocols."""

from __future__ import annotations

import pytest

from abaw import tasks


def test_class_orders_and_au_lists() -> None:
    assert tasks.EXPR_CLASSES_7 == ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
    assert tasks.EXPR_CLASSES_8[:7] == tasks.EXPR_CLASSES_7 and tasks.EXPR_CLASSES_8[7] == "Other"
    assert tasks.AU_NAMES_12 == ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25",
                                 "AU26")
    assert tasks.AU_NAMES_8 == ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
    assert tasks.INVALID == {"va": -5.0, "expr": -1, "au": -1}


@pytest.mark.parametrize(("name", "n_expr", "n_au", "expr_metric", "layout"), [
    ("abaw2020", 7, 8, "f1_acc", "abaw2021"),
    ("abaw2021", 7, 12, "f1_acc", "abaw2021"),
    ("abaw2022", 8, 12, "f1", "abaw2022"),
    ("abaw2023", 8, 12, "f1", "abaw2022"),
    ("abaw2024", 8, 12, "f1", "abaw2022"),
    ("abaw2025", 8, 12, "f1", "abaw2022"),
])
def test_protocols(name: str, n_expr: int, n_au: int, expr_metric: str, layout: str) -> None:
    proto = tasks.get_protocol(name)
    assert (proto.n_expr, proto.n_au, proto.expr_metric, proto.au_metric, proto.layout) == (
        n_expr, n_au, expr_metric, expr_metric, layout)
    assert proto.n_outputs("va") == 2 and proto.n_outputs("expr") == n_expr and proto.n_outputs("au") == n_au
    assert proto.header("expr").split(",") == list(proto.expr_classes)
    assert proto.header("au").split(",") == list(proto.au_names)
    assert proto.header("va") == "valence,arousal"
    assert proto.annotation_dir("va") == tasks.ANNOTATION_DIRS[layout]["va"]
    assert tasks.get_protocol(proto) is proto
    # 2020-2022: a folder per track; 2023 on: one file per track, image_location first
    assert proto.result_format == ("single" if name >= "abaw2023" else "folder")
    assert proto.single_header("va") == "image_location,valence,arousal"
    assert proto.single_header("expr") == "image_location," + proto.header("expr")
    assert proto.result_file("au") == tasks.ANNOTATION_DIRS[layout]["au"] + ".txt"


def test_the_2023_to_2025_protocols_are_2022_with_single_files() -> None:
    base = tasks.get_protocol("abaw2022")
    for name in ("abaw2023", "abaw2024", "abaw2025"):
        proto = tasks.get_protocol(name)
        assert (proto.expr_classes, proto.au_names, proto.expr_metric, proto.au_metric, proto.layout) == (
            base.expr_classes, base.au_names, base.expr_metric, base.au_metric, base.layout)
    assert tasks.RESULT_FORMATS == ("folder", "single") and tasks.IMAGE_LOCATION == "image_location"


def test_default_protocol_and_errors() -> None:
    assert tasks.get_protocol().name == tasks.DEFAULT_PROTOCOL == "abaw2021"
    assert tasks.get_protocol("ABAW2022").name == "abaw2022"
    with pytest.raises(ValueError, match="unknown protocol"):
        tasks.get_protocol("abaw2019")


def test_check_track() -> None:
    assert [tasks.check_track(t) for t in (1, 2, 3, "1", "VA", "expr", "au")] == [
        "va", "expr", "au", "va", "va", "expr", "au"]
    for bad in (0, 4, "valence", ""):
        with pytest.raises(ValueError, match="unknown track"):
            tasks.check_track(bad)


def test_annotation_folders_and_splits() -> None:
    assert tasks.ANNOTATION_DIRS["abaw2021"] == {"va": "VA_Set", "expr": "EXPR_Set", "au": "AU_Set"}
    assert tasks.ANNOTATION_DIRS["abaw2022"]["expr"] == "EXPR_Classification_Challenge"
    assert tasks.SPLIT_DIRS == {"train": "Train_Set", "validation": "Validation_Set"}
    # the hidden test split: a label root's folder only, never among the splits training and evaluation read
    assert tasks.TEST_SPLIT == "test" and tasks.TEST_SPLIT_DIR == "Test_Set"
    assert tasks.TEST_SPLIT not in tasks.SPLITS
    assert tasks.RESULT_SPLITS == ("train", "validation", "test")
    assert tasks.LABEL_SPLIT_DIRS == {**tasks.SPLIT_DIRS, "test": "Test_Set"}
    assert tasks.CROP_PATTERN.format(7) == "00007.jpg"


def test_prediction_columns_and_names() -> None:
    assert tasks.expr_columns("abaw2022")[-1] == "other" and tasks.expr_columns()[0] == "neutral"
    assert tasks.au_columns()[:3] == ["AU01", "AU02", "AU04"] and tasks.au_column("AU26") == "AU26"
    assert tasks.split_two_person("10-60-1280x720_left") == ("10-60-1280x720", "left")
    assert tasks.split_two_person("video1_right") == ("video1", "right")
    assert tasks.split_two_person("left_video") == ("left_video", "")


def test_class_mapping_leaves_contempt_out() -> None:
    mapping = tasks.class_mapping(tasks.AFFECTNET_CLASSES, tasks.EXPR_CLASSES_7)
    assert mapping[0] == 0 and mapping[1] == 4 and mapping[6] == 1 and 7 not in mapping
    c25 = tasks.class_mapping(tasks.AFFECTNETC25_CLASSES, tasks.EXPR_CLASSES_8)
    assert c25 == {0: 4, 1: 5, 2: 6, 3: 3, 4: 2, 5: 1, 7: 0}
    assert tasks.AFFECTNETC25_VA_LEVELS[0] == -1.0 and tasks.AFFECTNETC25_VA_LEVELS[-1] == 1.0


def test_valid_mask_is_task_vocabulary() -> None:
    import numpy as np

    from abaw.data import affwild2

    assert affwild2.valid_mask is tasks.valid_mask  # the reader re-exports it for its users
    va = np.array([[0.1, 0.2], [-5.0, 0.3], [np.nan, 0.1]])
    np.testing.assert_array_equal(tasks.valid_mask("va", va), [True, False, False])
    np.testing.assert_array_equal(tasks.valid_mask(2, np.array([0, -1, 7])), [True, False, True])
    np.testing.assert_array_equal(tasks.valid_mask("au", np.array([[0, 1], [1, -1]])), [True, False])


def test_streams() -> None:
    assert tasks.IMAGE_STREAMS == ("face", "body", "context")
    assert tasks.ENCODED_STREAMS == ("face", "body", "context", "audio")
    assert tasks.STREAMS == ("face", "body", "context", "audio", "landmarks")
