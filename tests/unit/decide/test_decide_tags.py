"""Tag rules, and scene tags and markers decided from content detections (the content family's
shipped rules live with the family, in ``tagger.analyzers.content``)."""

from __future__ import annotations

import pytest

from tagger.analyzers.content import EXPLICIT_LABELS, default_rules
from tagger.analyzers.content import LABELS as NUDENET_LABELS
from tagger.decide.rules import TagRule, readable_tag, rules_from_config
from tagger.decide.tags import MarkerDecision, SceneTag, decide_tags, top_k_mean
from tagger.detections import Detection
from tagger.media.shots import TechnicalSpan

DURATION = 100.0
SAMPLES = [float(t) for t in range(0, 100, 2)]
"""A 100-s video sampled every 2 s."""


def seen(label: str, start: float, stop: float, score: float = 0.9) -> list[Detection]:
    """``label`` in every sample frame from ``start`` up to (not including) ``stop``."""
    return [Detection(t, "content", label, score) for t in SAMPLES if start <= t < stop]


def rule(**changes: object) -> dict[str, TagRule]:
    """Rules holding one rule for FEET_EXPOSED, tagged "Feet"."""
    settings: dict = {"tag": "Feet", "threshold": 0.5, "min_duration_s": 3.0, "max_gap_s": 2.0,
                      "scene_min_share": 0.1, "scene_min_seconds": None, **changes}
    return {"FEET_EXPOSED": TagRule("FEET_EXPOSED", **settings)}


class TestSceneTags:
    def test_the_scene_is_tagged_when_segments_reach_the_share(self) -> None:
        # Hits at 10..20 stand until 22: 12 s of 100 is 12 %, above the 10 % bar.
        decided = decide_tags(seen("FEET_EXPOSED", 10, 21), SAMPLES, DURATION, rule())
        assert decided.scene_tags == [SceneTag("Feet", "FEET_EXPOSED", pytest.approx(0.9), 12.0, 0.12)]

    def test_a_scene_tag_needs_the_share(self) -> None:
        # 8 s is 8 %: markers yes, scene tag no.
        decided = decide_tags(seen("FEET_EXPOSED", 10, 17), SAMPLES, DURATION, rule())
        assert decided.scene_tags == []
        assert [(m.start, m.end) for m in decided.markers] == [(10.0, 18.0)]

    def test_either_bar_is_enough(self) -> None:
        # 12 s is far below a 50 % share but reaches the 10-s bar.
        rules = rule(scene_min_share=0.5, scene_min_seconds=10.0)
        decided = decide_tags(seen("FEET_EXPOSED", 10, 21), SAMPLES, DURATION, rules)
        assert [t.name for t in decided.scene_tags] == ["Feet"]

    def test_the_share_is_of_the_time_not_black(self) -> None:
        # Half the video is black: 8 s of the 50 analysed seconds is 16 %.
        decided = decide_tags(seen("FEET_EXPOSED", 60, 67), SAMPLES, DURATION, rule(),
                              technical=[TechnicalSpan("black", 0.0, 50.0)])
        assert [(t.seconds, t.share) for t in decided.scene_tags] == [(8.0, 0.16)]

    def test_the_score_is_the_mean_of_the_best_five_frames(self) -> None:
        # One freak frame (1.0) does not decide alone; the weak tail (0.55, 0.5) does not count.
        scores = [0.5, 0.55, 0.9, 0.8, 1.0, 0.7, 0.6]
        found = [Detection(10.0 + 2 * i, "content", "FEET_EXPOSED", s) for i, s in enumerate(scores)]
        (tag,) = decide_tags(found, SAMPLES, DURATION, rule()).scene_tags
        assert tag.score == pytest.approx((1.0 + 0.9 + 0.8 + 0.7 + 0.6) / 5)

    def test_scene_tags_come_best_score_first(self) -> None:
        rules = {**rule(), "BELLY_EXPOSED": TagRule("BELLY_EXPOSED", scene_min_share=0.1,
                                                    scene_min_seconds=None)}
        found = seen("FEET_EXPOSED", 0, 30, 0.6) + seen("BELLY_EXPOSED", 0, 30, 0.95)
        decided = decide_tags(found, SAMPLES, DURATION, rules)
        assert [t.name for t in decided.scene_tags] == ["Belly Exposed", "Feet"]


class TestMarkers:
    def test_each_segment_becomes_a_marker_named_by_the_tag(self) -> None:
        # A 10-s hole splits the hits into two segments.
        found = seen("FEET_EXPOSED", 10, 15, 0.8) + seen("FEET_EXPOSED", 26, 31, 0.6)
        decided = decide_tags(found, SAMPLES, DURATION, rule())
        assert decided.markers == [
            MarkerDecision("Feet", "Feet", 10.0, 16.0, pytest.approx(0.8), label="FEET_EXPOSED"),
            MarkerDecision("Feet", "Feet", 26.0, 32.0, pytest.approx(0.6), label="FEET_EXPOSED")]

    def test_no_markers_when_the_rule_says_so(self) -> None:
        decided = decide_tags(seen("FEET_EXPOSED", 10, 31), SAMPLES, DURATION, rule(marker=False))
        assert decided.markers == []
        assert len(decided.scene_tags) == 1

    def test_a_single_frame_is_too_short_for_a_marker(self) -> None:
        decided = decide_tags(seen("FEET_EXPOSED", 10, 11), SAMPLES, DURATION, rule())
        assert decided == ([], [])


class TestWhatIsIgnored:
    def test_a_disabled_rule_decides_nothing(self) -> None:
        decided = decide_tags(seen("FEET_EXPOSED", 0, 100), SAMPLES, DURATION, rule(enabled=False))
        assert decided == ([], [])

    def test_labels_without_a_rule_and_other_kinds(self) -> None:
        found = seen("BELLY_EXPOSED", 0, 100) + [Detection(t, "face", "FEET_EXPOSED", 0.9)
                                                 for t in SAMPLES]
        assert decide_tags(found, SAMPLES, DURATION, rule()) == ([], [])

    def test_hits_in_black_do_not_count(self) -> None:
        decided = decide_tags(seen("FEET_EXPOSED", 10, 31), SAMPLES, DURATION, rule(),
                              technical=[(0.0, 40.0)])
        assert decided == ([], [])

    def test_black_spans_may_come_as_lists_read_from_json(self) -> None:
        decided = decide_tags(seen("FEET_EXPOSED", 10, 31), SAMPLES, DURATION, rule(),
                              technical=[[0.0, 40.0]])
        assert decided == ([], [])


class TestTopKMean:
    def test_fewer_scores_than_k_are_all_averaged(self) -> None:
        assert top_k_mean([0.8, 0.6]) == pytest.approx(0.7)

    def test_no_scores_is_zero(self) -> None:
        assert top_k_mean([]) == 0.0


class TestDefaultRules:
    def test_every_nudenet_class_has_a_rule(self) -> None:
        assert sorted(default_rules()) == sorted(NUDENET_LABELS)
        assert len(NUDENET_LABELS) == 18

    def test_explicit_classes_are_scene_tags_and_markers(self) -> None:
        rules = default_rules()
        assert all(rules[label].enabled and rules[label].scene_tag and rules[label].marker
                   for label in EXPLICIT_LABELS)

    def test_everyday_body_classes_are_scene_tags_only_at_a_higher_bar(self) -> None:
        feet, breasts = default_rules()["FEET_EXPOSED"], default_rules()["FEMALE_BREAST_EXPOSED"]
        assert feet.enabled and feet.scene_tag and not feet.marker
        assert feet.threshold > breasts.threshold

    @pytest.mark.parametrize("label", ["FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED", "FACE_FEMALE",
                                       "FACE_MALE", "FEET_COVERED", "ANUS_COVERED"])
    def test_covered_classes_and_faces_are_off(self, label: str) -> None:
        assert not default_rules()[label].enabled

    def test_tag_names_are_readable(self) -> None:
        assert default_rules()["FEMALE_BREAST_EXPOSED"].tag == "Female Breast Exposed"
        assert readable_tag("MALE_GENITALIA_EXPOSED") == "Male Genitalia Exposed"


class TestTagRuleValidation:
    @pytest.mark.parametrize(("changes", "field"), [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": True}, "threshold"),  # a bool is not a score
        ({"min_duration_s": -1}, "min_duration_s"),
        ({"max_gap_s": "2"}, "max_gap_s"),
        ({"scene_min_share": 2.0}, "scene_min_share"),
        ({"scene_min_seconds": -5}, "scene_min_seconds"),
        ({"marker": "yes"}, "marker"),
        # A scene tag without any bar would tag every scene with a single segment.
        ({"scene_min_share": None, "scene_min_seconds": None}, "scene_min_share"),
    ])
    def test_a_bad_value_is_named_with_its_rule(self, changes: dict, field: str) -> None:
        with pytest.raises(ValueError, match=rf"'FEET_EXPOSED'.*{field}"):
            TagRule("FEET_EXPOSED", **changes)

    def test_no_bar_is_fine_without_a_scene_tag(self) -> None:
        assert not TagRule("X", scene_tag=False, scene_min_share=None, scene_min_seconds=None).scene_tag


class TestRulesFromConfig:
    def test_no_overrides_gives_the_defaults(self) -> None:
        assert rules_from_config({}, default_rules()) == default_rules()
        assert rules_from_config(None, default_rules()) == default_rules()

    def test_overrides_rename_retune_and_blacklist(self) -> None:
        rules = rules_from_config({
            "FEMALE_BREAST_EXPOSED": {"tag": "Topless", "threshold": 0.7, "marker": False},
            "BUTTOCKS_EXPOSED": {"enabled": False},
            "FEET_COVERED": {"enabled": True, "scene_tag": False, "marker": True},
        }, default_rules())
        breasts = rules["FEMALE_BREAST_EXPOSED"]
        assert (breasts.tag, breasts.threshold, breasts.marker) == ("Topless", 0.7, False)
        assert not rules["BUTTOCKS_EXPOSED"].enabled
        assert rules["FEET_COVERED"].marker and rules["FEET_COVERED"].enabled
        assert rules["ANUS_EXPOSED"] == default_rules()["ANUS_EXPOSED"]  # untouched

    def test_an_empty_name_falls_back_to_the_readable_one(self) -> None:
        rules = rules_from_config({"ANUS_EXPOSED": {"tag": ""}}, default_rules())
        assert rules["ANUS_EXPOSED"].tag == "Anus Exposed"

    def test_an_unknown_label_is_named(self) -> None:
        with pytest.raises(ValueError, match="unknown label 'FEMALE_BREASTS_EXPOSED'"):
            rules_from_config({"FEMALE_BREASTS_EXPOSED": {"threshold": 0.6}}, default_rules())

    def test_an_unknown_key_is_named(self) -> None:
        with pytest.raises(ValueError, match="'FEET_EXPOSED': unknown key 'treshold'"):
            rules_from_config({"FEET_EXPOSED": {"treshold": 0.6}}, default_rules())

    def test_the_label_itself_cannot_be_overridden(self) -> None:
        with pytest.raises(ValueError, match="unknown key 'label'"):
            rules_from_config({"FEET_EXPOSED": {"label": "BELLY_EXPOSED"}}, default_rules())

    def test_a_bad_value_is_named(self) -> None:
        with pytest.raises(ValueError, match="'FEET_EXPOSED': threshold"):
            rules_from_config({"FEET_EXPOSED": {"threshold": 7}}, default_rules())
