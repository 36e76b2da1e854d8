"""The studio from on-screen text: fuzzy matching of watermarks to studio names and aliases."""

from __future__ import annotations

import pytest

from tagger.decide.studio import StudioMatch, StudioName, match_studio, name_keys, text_keys
from tagger.decide.text import TextSpan

BRAND_X = StudioName("1", "Brand X", ("BrandX",))
ACME = StudioName("2", "Acme Pictures")
LIBRARY = [BRAND_X, ACME, StudioName("3", "Blue Harbor Films", ("BHF",))]


def shown(text: str, start: float = 0.0, seconds: float = 30.0) -> TextSpan:
    """``text`` on screen for ``seconds``."""
    return TextSpan(text, start, start + seconds, 0.9, (1100.0, 680.0, 150.0, 24.0), 15)


class TestMatchStudio:
    def test_a_watermark_url_matches_the_studio(self) -> None:
        watermark = shown("brandx.com")
        match = match_studio([watermark], LIBRARY)
        assert match == StudioMatch("Brand X", "1", 1.0, ("'brandx.com' on screen 0.0-30.0 s "
                                                          "(similarity 1.00)",), (watermark,))

    @pytest.mark.parametrize("text", ["BRANDX.COM", "BRANDX.C0M", "www.brandx.com", "brandx com",
                                      "Brand X", "Visit BRANDX.COM today", "brandx.com/join"])
    def test_readings_of_the_watermark(self, text: str) -> None:
        match = match_studio([shown(text)], LIBRARY)
        assert match is not None and match.name == "Brand X"

    def test_an_ocr_slip_lowers_the_score_but_still_matches(self) -> None:
        # "brandk" vs "brandx": one substitution in six letters.
        match = match_studio([shown("BRANDK.COM")], [BRAND_X], min_score=0.8)
        assert match is not None and match.score == pytest.approx(0.833, abs=0.001)

    def test_unrelated_text_matches_nothing(self) -> None:
        assert match_studio([shown("Subscribe now"), shown("HD 1080p")], LIBRARY) is None

    def test_a_similar_but_different_name_does_not_match(self) -> None:
        # "brandy" is 0.83 like "brandx": below the 0.85 bar.
        assert match_studio([shown("brandy.com")], LIBRARY) is None

    def test_two_studios_the_text_fits_equally_are_refused(self) -> None:
        # Two entries that normalise alike ("brandx"): a question for the user, not a guess.
        twins = [BRAND_X, StudioName("9", "Brand-X")]
        assert match_studio([shown("brandx.com")], twins) is None

    def test_the_studio_with_more_seconds_times_similarity_wins(self) -> None:
        spans = [shown("brandx.com", 0, 30), shown("ACME PICTURES", 30, 5)]
        match = match_studio(spans, LIBRARY)
        assert match is not None and match.name == "Brand X"

    def test_evidence_adds_up_over_spans(self) -> None:
        # Each span alone is under min_seconds; together they are enough.
        spans = [shown("brandx.com", 0, 3), shown("BRANDX.COM", 100, 3)]
        assert match_studio(spans, LIBRARY, min_seconds=5.0) is not None
        assert match_studio(spans[:1], LIBRARY, min_seconds=5.0) is None

    def test_a_tv_suffix_is_a_variant_of_the_name(self) -> None:
        match = match_studio([shown("brandx.com")], [StudioName("4", "Brand X TV")])
        assert match is not None and match.id == "4"

    def test_an_alias_matches(self) -> None:
        match = match_studio([shown("bhf.com")], LIBRARY)
        assert match is not None and match.name == "Blue Harbor Films"

    def test_a_candidate_without_an_id_is_returned_by_name(self) -> None:
        match = match_studio([shown("brandx.com")], [StudioName(None, "Brand X")])
        assert match is not None and match.id is None

    def test_no_studios_no_match(self) -> None:
        assert match_studio([shown("brandx.com")], []) is None


class TestKeys:
    @pytest.mark.parametrize(("text", "keys"), [
        ("Brand X", {"brandx"}),
        ("BRANDX.COM", {"brandx"}),
        ("https://www.BrandX.com/", {"brandx"}),
        ("brandx.co.uk", {"brandx"}),
        ("Brand X TV", {"brandx"}),  # a " TV" ending is dropped like a domain
        ("BrandXTV", {"brandxtv", "brandx"}),  # glued "tv": both readings kept
        ("TV", set()),  # too short to match anything
    ])
    def test_name_keys(self, text: str, keys: set[str]) -> None:
        assert name_keys(text) == keys

    def test_text_keys_include_runs_of_words(self) -> None:
        assert {"brandx", "visitbrandx", "today"} <= text_keys("Visit BRAND X today")
