"""Unknown faces across the library grouped into stable clusters ("unknown person #k"). Pure numpy.

Density-based on cosine distance (1 - similarity of the L2-normalised SFace embeddings), as
self-hosted photo managers cluster faces (Immich: DBSCAN-like, ``maxDistance`` 0.5, ``minFaces`` 3):

- A face is a *core* face when at least ``min_faces`` faces, itself included, lie within
  ``max_distance`` of it. Core faces within ``max_distance`` of each other are one person.
- A face that is not core joins the person of its nearest core face within ``max_distance``.
- A face near no core face is left out: one stray face (a blurred frame, an extra in the
  background) is not a person yet; it may become one when more faces like it arrive.

Density, rather than plain nearest-neighbour linkage, is what keeps one unlucky pair of faces from
chaining two people into one cluster: a cluster only grows through faces that have ``min_faces``
neighbours of their own.

Runs are incremental and stable, so the ids a user has seen (and perhaps named) never move:

1. A face that had an id in ``previous`` keeps it. Clusters are never merged, split or renumbered,
   and an id whose faces are all gone is not reused.
2. New faces join the existing cluster they are density-reachable from: the cluster of their
   nearest core member within ``max_distance``. This repeats, so a new face that joined as a core
   face passes its cluster on to further new faces, as one DBSCAN run over everything would.
   Core status here counts every face of the run, old and new.
3. The remaining faces are clustered by DBSCAN among themselves (a new cluster needs
   ``min_faces`` faces of its own, not neighbours borrowed from existing clusters), and the new
   clusters are numbered in order of their earliest sample key, upwards from
   ``max(next_id, largest previous id + 1)``.

Everything is computed on the samples sorted by key, and ties go to the earlier key, so the result
does not depend on the input order. Similarities are computed in blocks of at most
``BLOCK_CELLS`` entries and never stored whole, so memory stays bounded for any library size;
time is quadratic (6,000 faces in 300 people: 1.2 s on a 2-core machine).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAX_DISTANCE = 0.5
"""Default neighbourhood radius, cosine distance (similarity at least 0.5).

Measured with SFace (``shared/MODELS.md``): different people score median 0.11, 99th percentile
0.33, at most 0.43 (distance 0.57), so 0.5 keeps a margin of 0.07 over the closest impostor pair
ever seen and 0.17 over the 99th percentile: two people do not come near enough to link. The same
person scores median 0.905 (distance 0.1); only the worst single pairs (JPEG quality 8: 0.35, a 15
degree rotation: 0.60, a low-quality video still against portraits: about 0.5) fall outside, and
density bridges those: such a face still joins if any one of its person's core faces is within
reach. It equals Immich's default and ``tagger.decide.faces.LINK_SIMILARITY``."""

MIN_FACES = 3
"""Default number of faces (itself included) a core face needs within ``MAX_DISTANCE``.

Three, as Immich: one or two look-alike faces are too little evidence for a new person, and a
person seen in two frames is rarely worth a name; a real person of a library appears many times."""

TOLERANCE = 1e-5
"""Slack on the similarity threshold for float32 rounding: a pair at exactly ``max_distance`` is
in each other's neighbourhood, however the dot product rounds."""

BLOCK_CELLS = 2048 * 2048
"""Most similarity entries computed at once (16 MB of float32); rows per block follow from it."""


@dataclass(frozen=True)
class FaceSample:
    """One face to cluster (usually the best face of a track).

    Attributes:
        key: unique across the samples, e.g. ``"scene:12/track:3"``; ``previous`` refers to it.
        scene_id: the scene it was seen in.
        embedding: (128,) float32, L2-normalised (re-normalised here anyway).
        quality: 0-1, higher is better; decides the order of a cluster's members.
    """

    key: str
    scene_id: str
    embedding: np.ndarray
    quality: float


@dataclass(frozen=True)
class Cluster:
    """One unknown person.

    Attributes:
        id: stable across runs (see the module docstring).
        members: sample keys, best quality first (equal quality: by key), so ``members[0]`` is
            the representative to show.
        scenes: distinct scene ids, in order of first appearance in ``members``.
        centroid: L2-normalised mean of the members' embeddings, float32.
    """

    id: int
    members: tuple[str, ...]
    scenes: tuple[str, ...]
    centroid: np.ndarray


def cluster_faces(samples: Sequence[FaceSample], previous: Mapping[str, int] | None = None, *,
                  max_distance: float = MAX_DISTANCE, min_faces: int = MIN_FACES,
                  next_id: int = 1) -> list[Cluster]:
    """Clusters of ``samples``. Stable across runs: a sample that had cluster id X in ``previous``
    keeps X (if X's other kept members still exist it stays with them); new samples join the
    existing cluster they are density-reachable from (nearest core member within max_distance);
    the remaining samples form new clusters by DBSCAN (core = at least min_faces samples, itself
    included, within max_distance) with ids from max(next_id, max previous id + 1) upwards, in a
    deterministic order (e.g. by the earliest sample key). Samples in no cluster are left out.
    Two existing clusters are never merged or renumbered.

    Arguments:
        samples: the faces; keys must be unique.
        previous: sample key to cluster id, from the last run (keys no longer present are
            ignored, but their ids are never handed out again).
        max_distance: neighbourhood radius in cosine distance, 0-2.
        min_faces: faces a core face needs in its neighbourhood, itself included; at least 1.
        next_id: the lowest id a new cluster may get (for ids kept outside ``previous``).

    Returns:
        The clusters, by id.

    Raises:
        ValueError: duplicate keys, embeddings of different lengths or not finite, or a setting
            out of range (the message names it).
    """
    if not 0.0 <= max_distance <= 2.0:
        raise ValueError(f"max_distance must be between 0 and 2, got {max_distance}")
    if min_faces < 1:
        raise ValueError(f"min_faces must be at least 1, got {min_faces}")
    if not samples:
        return []
    ordered = sorted(samples, key=lambda sample: sample.key)
    vectors = _unit_rows(ordered)
    threshold = 1.0 - max_distance - TOLERANCE
    previous = previous or {}

    labels = np.array([int(previous.get(sample.key, 0)) for sample in ordered], np.int64)
    known = np.array([sample.key in previous for sample in ordered], bool)
    everyone = np.arange(len(ordered))
    core = _neighbour_counts(vectors, everyone, everyone, threshold) >= min_faces
    _absorb(vectors, labels, known, core, threshold)

    first_id = max([next_id, *(int(value) + 1 for value in previous.values())])
    _new_clusters(vectors, labels, known, threshold, min_faces, first_id)
    return _clusters(ordered, vectors, labels, known)


def _unit_rows(samples: Sequence[FaceSample]) -> np.ndarray:
    """(N, D) float32 embeddings scaled to unit length; refuses mixed lengths and NaN/inf."""
    rows = [np.asarray(sample.embedding, np.float32).reshape(-1) for sample in samples]
    if len({row.shape for row in rows}) > 1:
        raise ValueError(f"embeddings must all have one length, got {sorted({len(row) for row in rows})}")
    keys = [sample.key for sample in samples]
    duplicates = sorted({a for a, b in zip(keys, keys[1:]) if a == b})
    if duplicates:
        raise ValueError(f"sample keys must be unique, repeated: {duplicates[:5]}")
    vectors = np.stack(rows)
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings must be finite")
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _blocks(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(offset into ``rows``, similarities of those rows to every col), at most ``BLOCK_CELLS``."""
    step = max(1, BLOCK_CELLS // max(1, len(cols)))
    col_vectors = vectors[cols].T
    for start in range(0, len(rows), step):
        yield start, vectors[rows[start:start + step]] @ col_vectors


def _neighbour_counts(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                      threshold: float) -> np.ndarray:
    """Per row, how many cols are within the threshold (itself included when it is a col)."""
    counts = np.zeros(len(rows), np.int64)
    for start, sims in _blocks(vectors, rows, cols):
        counts[start:start + len(sims)] = np.count_nonzero(sims >= threshold, axis=1)
    return counts


def _nearest(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float) -> np.ndarray:
    """Per row, the position in ``cols`` of the most similar col within the threshold, else -1.

    Ties go to the earlier col (``cols`` are in key order)."""
    nearest = np.full(len(rows), -1, np.int64)
    if not len(cols):
        return nearest
    for start, sims in _blocks(vectors, rows, cols):
        best = sims.argmax(axis=1)
        near = sims[np.arange(len(sims)), best] >= threshold
        nearest[start:start + len(sims)] = np.where(near, best, -1)
    return nearest


def _absorb(vectors: np.ndarray, labels: np.ndarray, known: np.ndarray, core: np.ndarray,
            threshold: float) -> None:
    """Give new samples the id of the existing cluster they are density-reachable from (in place).

    Each round, an unassigned sample joins the cluster of its nearest core member within the
    threshold; the core samples that just joined are the only new members the next round needs
    to look at (the rest were already out of reach of the older ones)."""
    sources = np.flatnonzero(known & core)
    while sources.size:
        open_rows = np.flatnonzero(~known)
        nearest = _nearest(vectors, open_rows, sources, threshold)
        joined = open_rows[nearest >= 0]
        labels[joined] = labels[sources[nearest[nearest >= 0]]]
        known[joined] = True
        sources = joined[core[joined]]


def _new_clusters(vectors: np.ndarray, labels: np.ndarray, known: np.ndarray, threshold: float,
                  min_faces: int, first_id: int) -> None:
    """DBSCAN over the samples not yet in a cluster; ids from ``first_id`` (in place).

    Core samples are counted among these samples only. Core samples within reach of each other
    form a cluster (connected components); a non-core sample joins the cluster of its nearest
    core sample rather than whichever cluster happens to be expanded first, so the result does
    not depend on an expansion order. Clusters are numbered by their earliest member (key order)."""
    rest = np.flatnonzero(~known)
    if not rest.size:
        return
    is_core = _neighbour_counts(vectors, rest, rest, threshold) >= min_faces
    cores, border = rest[is_core], rest[~is_core]
    if not cores.size:
        return
    group = np.full(len(labels), -1, np.int64)
    group[cores] = _components(vectors, cores, threshold)
    nearest = _nearest(vectors, border, cores, threshold)
    group[border[nearest >= 0]] = group[cores[nearest[nearest >= 0]]]
    members = np.flatnonzero(group >= 0)  # ascending, so in key order
    found, first = np.unique(group[members], return_index=True)
    new_ids = np.empty(len(found), np.int64)
    new_ids[np.argsort(first)] = np.arange(first_id, first_id + len(found))
    labels[members] = new_ids[np.searchsorted(found, group[members])]
    known[members] = True


def _components(vectors: np.ndarray, nodes: np.ndarray, threshold: float) -> np.ndarray:
    """Connected components of ``nodes`` linked within the threshold: per node, its component's
    smallest position in ``nodes``.

    Union-find without storing the graph: sweep the similarity blocks, hook the roots of every
    node's neighbours onto the smallest of them, until a sweep changes nothing. Vectorised, and
    the edge list (quadratic in a large cluster) never exists at once; two or three sweeps are
    usual. Parents only ever point to smaller positions, so the forest has no cycles."""
    parent = np.arange(len(nodes))
    changed = True
    while changed:
        changed = False
        for start, sims in _blocks(vectors, nodes, nodes):
            rows, cols = np.nonzero(sims >= threshold)
            root = _roots(parent)
            low = root[start:start + len(sims)].copy()
            np.minimum.at(low, rows, root[cols])
            targets, values = root[cols], low[rows]
            if np.any(values < parent[targets]):
                np.minimum.at(parent, targets, values)
                changed = True
    return _roots(parent)


def _roots(parent: np.ndarray) -> np.ndarray:
    """Each node's root; compresses ``parent`` in place (pointer jumping) and returns a copy."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent.copy()
        parent[:] = grand


def _clusters(ordered: Sequence[FaceSample], vectors: np.ndarray, labels: np.ndarray,
              known: np.ndarray) -> list[Cluster]:
    """The ``Cluster`` records of the labelled samples, by id."""
    by_id: dict[int, list[int]] = {}
    for position in np.flatnonzero(known):
        by_id.setdefault(int(labels[position]), []).append(int(position))
    clusters = []
    for cluster_id in sorted(by_id):
        positions = sorted(by_id[cluster_id], key=lambda p: (-_rank(ordered[p].quality), ordered[p].key))
        mean = vectors[positions].astype(np.float64).mean(axis=0)
        centroid = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        clusters.append(Cluster(
            id=cluster_id,
            members=tuple(ordered[p].key for p in positions),
            scenes=tuple(dict.fromkeys(ordered[p].scene_id for p in positions)),
            centroid=centroid))
    return clusters


def _rank(quality: float) -> float:
    """Sortable quality: NaN counts as the worst."""
    value = float(quality)
    return value if value == value else float("-inf")
