"""Same domain: a later sample is of a window's domain when its inputs are, class by class, whatever the shares."""

from __future__ import annotations

import numpy as np

from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.same_domain import MIN_MATCHED, class_matched, moved_p

CENTRES = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def shuffled(classes: list[int]) -> np.ndarray:
    return np.random.default_rng(3).permutation(np.array(classes))


def sample(classes: np.ndarray, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(classes), 2)) + CENTRES[classes] + shift


def test_classes_in_other_shares_are_not_a_move_though_the_plain_test_sees_them():
    window_classes = np.random.default_rng(0).integers(0, 3, 450)
    later_classes = shuffled([0] * 15 + [1] * 15 + [2] * 66)  # one class twice its share

    window, later = sample(window_classes, 1), sample(later_classes, 2)

    assert mmd_permutation_test(window, later) < 0.01
    assert moved_p(window, window_classes, later, later_classes) > 0.05


def test_inputs_that_moved_within_their_classes_are_a_move():
    window_classes = np.random.default_rng(0).integers(0, 3, 450)
    later_classes = np.random.default_rng(1).integers(0, 3, 96)

    assert moved_p(sample(window_classes, 1), window_classes, sample(later_classes, 2, shift=1.0), later_classes) < 0.01


def test_the_window_is_drawn_in_the_later_shares_and_kept_in_arrival_order():
    window_classes = np.repeat([0, 1, 2], 100)
    later_classes = np.array([0] * 10 + [1] * 20 + [2] * 50)

    idx = class_matched(window_classes, later_classes)

    assert np.all(np.diff(idx) > 0)
    assert np.bincount(window_classes[idx], minlength=3).tolist() == [20, 40, 100]  # class 2 whole, the rest in scale


def test_a_class_the_window_never_had_is_left_for_the_test_to_see():
    window_classes = np.repeat([0, 1], 150)
    later_classes = shuffled([0] * 30 + [1] * 30 + [2] * 36)  # a third class appears

    idx = class_matched(window_classes, later_classes)

    assert np.bincount(window_classes[idx], minlength=3).tolist() == [150, 150, 0]
    assert moved_p(sample(window_classes, 1), window_classes, sample(later_classes, 2), later_classes) < 0.01


def test_the_whole_window_is_used_when_matching_would_leave_too_few():
    window_classes = np.array([0] * 60 + [1] * 3)
    later_classes = np.array([0] * 10 + [1] * 30)  # class 1 scarce in the window: 1 + 3 rows would remain

    assert len(class_matched(window_classes, later_classes)) == len(window_classes) > MIN_MATCHED


def test_unless_the_classes_held_equal_look_alike_the_plain_answer_stands():
    window_classes = np.random.default_rng(0).integers(0, 3, 450)
    later_classes = shuffled([0] * 10 + [1] * 10 + [2] * 44)  # few inputs, new shares, and a real move
    window, later = sample(window_classes, 1), sample(later_classes, 2, shift=0.6)

    assert moved_p(window, window_classes, later, later_classes) == mmd_permutation_test(window, later)
