"""The studio from on-screen text: watermarks and title cards matched to Stash's studios.

Text and studio names are reduced to keys (case-folded, "www." and a domain ending such as
".com"/" com"/".c0m" removed, everything but letters and digits dropped), with a second key
without a trailing "tv". Each text span is matched as a whole and by runs of up to
``MAX_NGRAM_TOKENS`` consecutive words ("Visit BRANDX.COM now" -> "brandx"), so a name inside a
longer line is found. A span gives each studio its best similarity (rapidfuzz ``ratio``, 0-1) if
at least ``min_score``; a studio's weight is the sum over spans of on-screen seconds x similarity.
The heaviest studio wins when it has at least ``min_seconds`` of evidence and the runner-up is
clearly lighter; otherwise there is no decision.

rapidfuzz rather than difflib: a library holds thousands of studios with aliases, and
``process.extract`` scores one key against all of them in C (difflib's ``SequenceMatcher`` would
take seconds per video in pure Python).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from tagger.decide.text import TextSpan

MIN_SCORE = 0.85
"""Similarity a text key needs to a studio key: one OCR slip in a 7-letter name (0.86) passes,
two do not."""

MIN_SECONDS = 4.0
"""On-screen seconds a studio needs (two readings at 2-s sampling): one misread frame is not
evidence."""

AMBIGUITY_RATIO = 0.9
"""No decision when the runner-up's weight is at least this share of the winner's: two studios
that the text fits (nearly) equally well are a question for the user, not a guess."""

MIN_KEY_CHARS = 3
"""Keys shorter than this are not matched: "tv" or "x" would fit anything."""

MAX_NGRAM_TOKENS = 4
"""Longest run of words tried as a studio name inside a longer line."""

MAX_EVIDENCE = 5
"""Evidence lines kept for the explanation."""

_DOMAIN = re.compile(r"(?:[\s.,]+(?:c[o0]m|net|org|xxx|tv|co\s*\.?\s*uk)|(?<=[a-z0-9])c[o0]m)$")
"""A domain ending, with a separator (".com", " com", ".c0m", ".tv") or glued on ("brandxcom")."""


@dataclass(frozen=True)
class StudioName:
    """A studio as Stash knows it: id (None for a name not in Stash yet), name and aliases."""

    id: str | None
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudioMatch:
    """The studio decided on.

    Attributes:
        name: the studio's name in Stash.
        id: its id (None if the candidate had none).
        score: seconds-weighted mean similarity of the text that matched it (0-1).
        evidence: the best matching text spans, as readable lines.
        spans: those text spans themselves, line for line (what the evidence sheets show).
    """

    name: str
    id: str | None
    score: float
    evidence: tuple[str, ...]
    spans: tuple[TextSpan, ...] = ()


def name_keys(text: str) -> set[str]:
    """The comparison keys of a name or reading: letters and digits only, without "www." and a
    domain ending; also without a trailing "tv" ("BrandX TV" ~ "brandx")."""
    folded = text.casefold().strip()
    folded = re.sub(r"^(?:https?://)?(?:www\s*\.\s*)?", "", folded)
    folded = re.sub(r"(\.[a-z0-9]{2,4})/\S*$", r"\1", folded)  # "brandx.com/join" -> "brandx.com"
    folded = _DOMAIN.sub("", folded)
    key = re.sub(r"[\W_]+", "", folded)
    keys = {key}
    if key.endswith("tv") and len(key) - 2 >= MIN_KEY_CHARS:
        keys.add(key[:-2])
    return {k for k in keys if len(k) >= MIN_KEY_CHARS}


def text_keys(text: str) -> set[str]:
    """Keys of a whole reading and of its runs of up to ``MAX_NGRAM_TOKENS`` words."""
    tokens = text.split()
    keys = name_keys(text)
    for n in range(1, min(MAX_NGRAM_TOKENS, len(tokens)) + 1):
        for i in range(len(tokens) - n + 1):
            keys |= name_keys(" ".join(tokens[i:i + n]))
    return keys


def _choices(studios: Sequence[StudioName]) -> tuple[list[str], list[int]]:
    """Every key of every studio name and alias, with the index of its studio."""
    keys: list[str] = []
    owners: list[int] = []
    for index, studio in enumerate(studios):
        for key in set().union(*(name_keys(n) for n in (studio.name, *studio.aliases))):
            keys.append(key)
            owners.append(index)
    return keys, owners


def span_similarities(span: TextSpan, keys: Sequence[str], owners: Sequence[int],
                      min_score: float) -> dict[int, float]:
    """Best similarity (0-1) of ``span``'s text to each studio reaching ``min_score``."""
    best: dict[int, float] = {}
    for key in text_keys(span.text):
        found = process.extract(key, keys, scorer=fuzz.ratio, score_cutoff=min_score * 100,
                                limit=None)
        for _, score, position in found:
            owner = owners[position]
            best[owner] = max(best.get(owner, 0.0), score / 100)
    return best


def _evidence(span: TextSpan, similarity: float) -> str:
    """One readable evidence line."""
    return f"{span.text!r} on screen {span.start:.1f}-{span.end:.1f} s (similarity {similarity:.2f})"


def match_studio(
    text_spans: Iterable[TextSpan], studios: Sequence[StudioName], *,
    min_score: float = MIN_SCORE, min_seconds: float = MIN_SECONDS,
) -> StudioMatch | None:
    """The studio the on-screen text names, or None when none or more than one fits.

    Arguments:
        text_spans: merged OCR text (``merge_text``).
        studios: candidates (Stash's studios with their aliases).
        min_score: least similarity (0-1) of a text to a studio name.
        min_seconds: least on-screen seconds of matching text.
    """
    keys, owners = _choices(studios)
    weight: dict[int, float] = {}
    seconds: dict[int, float] = {}
    found: dict[int, list[tuple[float, TextSpan, float]]] = {}  # owner -> (weight, span, similarity)
    for span in text_spans:
        for owner, similarity in span_similarities(span, keys, owners, min_score).items():
            weight[owner] = weight.get(owner, 0.0) + span.seconds * similarity
            seconds[owner] = seconds.get(owner, 0.0) + span.seconds
            found.setdefault(owner, []).append((span.seconds * similarity, span, similarity))
    ranked = sorted((o for o in weight if seconds[o] >= min_seconds), key=lambda o: -weight[o])
    if not ranked or weight[ranked[0]] <= 0:
        return None
    best = ranked[0]
    if len(ranked) > 1 and weight[ranked[1]] >= AMBIGUITY_RATIO * weight[best]:
        return None
    strongest = sorted(found[best], key=lambda x: -x[0])[:MAX_EVIDENCE]
    return StudioMatch(name=studios[best].name, id=studios[best].id, score=weight[best] / seconds[best],
                       evidence=tuple(_evidence(span, similarity) for _, span, similarity in strongest),
                       spans=tuple(span for _, span, _ in strongest))
