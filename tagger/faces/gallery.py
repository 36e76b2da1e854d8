"""The performer face gallery: embeddings of the user's own performers, from their Stash images
and from scenes already tagged with them; and the unknown faces, for clustering.

Sources of a performer's embeddings (rows of the ``gallery`` table, per model):

- ``image``: the largest clear face in the performer's image (``image_path``, fetched from Stash
  with our credentials; the default placeholder is skipped). Recomputed only when the image
  changes: ``image_path`` carries Stash's cache-busting ``t=``, which is our stamp.
- ``scene:<id>/<n>``: while tagging a scene the user tagged with exactly one performer, the one
  face track that matches that performer (at the auto-apply bar, and no other track does) gives
  its best faces. Re-tagging the scene replaces them; so the gallery follows what users confirm.

A model change (``model``) starts a new gallery: rows of other models are ignored, then dropped.
Search is exact (numpy: one matrix product, then a per-performer maximum). Measured on this
2-core machine (bench/bench_performers.py --search), a 5-face query takes 0.8 ms against 10,000
embeddings (2,000 performers) and 9 ms against 100,000 (20,000 performers); a scene needs a few
queries, against seconds of analysis. usearch 2.26 (HNSW, default settings) answered in
0.08-0.5 ms but took 45 s to build 100,000 random embeddings and found only 44 % of the exact top
10 there. An approximate index would pay off only past about a million embeddings, far beyond a
home library, so exact search stays until a gallery that size exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from tagger.errors import StashError
from tagger.faces.match import GalleryIndex
from tagger.redact import redact
from tagger.stashside.store import Store

Log = Callable[[str, str], None]

MIN_IMAGE_FACE_PX = 40
"""A performer image's face must be at least this big (shorter side) to be trusted."""

SCENE_FACES = 3
"""Faces a confirming scene adds for its performer."""


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, np.float32).tobytes()


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, np.float32)


@dataclass
class GalleryReport:
    """What a refresh did."""

    performers: int = 0
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    without_image: int = 0
    problems: list[str] = field(default_factory=list)
    removed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "performers": self.performers,
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "without_image": self.without_image,
            "problems": self.problems,
            "removed": self.removed,
        }


class Gallery:
    """The gallery of one store, for one face model (``model``: the faces analyzer's version)."""

    def __init__(self, store: Store, model: str) -> None:
        self.store = store
        self.model = model

    def index(self) -> GalleryIndex:
        """Every embedding of the current model, as a matrix."""
        rows = self.store.db.execute(
            "SELECT g.performer_id, g.embedding, p.name FROM gallery g JOIN gallery_performers p "
            "USING (performer_id) WHERE g.model = ? ORDER BY g.performer_id, g.source",
            (self.model,),
        ).fetchall()
        if not rows:
            return GalleryIndex.empty()
        vectors = np.stack([_vector(blob) for _, blob, _ in rows])
        return GalleryIndex(tuple(str(r[0]) for r in rows), vectors, {str(r[0]): r[2] for r in rows})

    def sources(self, performer_id: str) -> list[str]:
        rows = self.store.db.execute(
            "SELECT source FROM gallery WHERE performer_id = ? AND model = ? ORDER BY source",
            (str(performer_id), self.model),
        )
        return [row[0] for row in rows]

    def refresh(
        self,
        performers: Sequence[object],
        fetch: Callable[[str], bytes],
        faces: object,
        log: Log = lambda *_: None,
        progress: Callable[[float], None] | None = None,
    ) -> GalleryReport:
        """Bring the gallery up to date with Stash's performers (``tagger.stashside.stash.StashPerformer``).

        Only performers whose image changed (or that are new to this model) are fetched and
        embedded; performers gone from Stash are dropped. A broken image or one without a face is
        a warning naming the performer, and the refresh goes on.
        """
        report = GalleryReport(performers=len(performers))
        known = {
            row[0]: (row[1], row[2])
            for row in self.store.db.execute(
                "SELECT performer_id, image_stamp, model FROM gallery_performers"
            )
        }
        present = {str(p.id) for p in performers}  # type: ignore[attr-defined]
        gone = [pid for pid in known if pid not in present]
        with self.store.transaction() as db:
            db.execute("DELETE FROM gallery WHERE model != ?", (self.model,))
            for pid in gone:
                db.execute("DELETE FROM gallery WHERE performer_id = ?", (pid,))
                db.execute("DELETE FROM gallery_performers WHERE performer_id = ?", (pid,))
        report.removed = len(gone)
        for number, performer in enumerate(performers):
            pid, name = str(performer.id), performer.name  # type: ignore[attr-defined]
            stamp = performer.image_path if performer.has_image else None  # type: ignore[attr-defined]
            if known.get(pid) == (stamp, self.model):
                report.unchanged += 1
            elif stamp is None:
                report.without_image += 1
                self._set_image(pid, name, None, None, "no-image", None)
            else:
                problem = self._embed_image(pid, name, stamp, fetch, faces)
                if problem:
                    report.problems.append(problem)
                    log("warning", problem)
                else:
                    report.updated.append(name)
            if progress is not None:
                progress((number + 1) / max(len(performers), 1))
        return report

    def _embed_image(
        self, pid: str, name: str, stamp: str, fetch: Callable[[str], bytes], faces: object
    ) -> str | None:
        """Embed a performer's image; returns a problem to report, or None."""
        who = f"performer {name!r} ({pid})"
        try:
            data = fetch(stamp)
        except StashError as error:
            # No stamp: a network failure is retried at the next refresh (a bad image is not).
            self._set_image(pid, name, None, None, "broken", str(error))
            return f"{who}: image not available ({error}); skipped"
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            self._set_image(pid, name, stamp, None, "broken", "not an image")
            return f"{who}: the image cannot be decoded; skipped"
        found = [f for f in faces.detect(image) if min(f.box[2], f.box[3]) >= MIN_IMAGE_FACE_PX]  # type: ignore[attr-defined]
        if not found:
            self._set_image(pid, name, stamp, None, "no-face", None)
            return f"{who}: no clear face in the image; skipped"
        from tagger.analyzers.faces import align_face

        best = max(found, key=lambda f: float(f.score) * float(f.box[2] * f.box[3]))
        crop = align_face(image, best.landmarks)
        embedding = faces.embed(crop[None])[0]  # type: ignore[attr-defined]
        quality = float(best.score) * min(1.0, float(min(best.box[2], best.box[3])) / 112.0)
        self._set_image(pid, name, stamp, (embedding, quality), "ok", None)
        return None

    def _set_image(
        self,
        pid: str,
        name: str,
        stamp: str | None,
        embedding: tuple[np.ndarray, float] | None,
        status: str,
        detail: str | None,
    ) -> None:
        now = time.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM gallery WHERE performer_id = ? AND source = 'image'", (pid,))
            if embedding is not None:
                db.execute(
                    "INSERT INTO gallery VALUES (?, 'image', ?, ?, ?, ?)",
                    (pid, self.model, embedding[1], _blob(embedding[0]), now),
                )
            db.execute(
                "INSERT OR REPLACE INTO gallery_performers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pid, name, stamp, self.model, status, redact(detail) if detail else detail, now),
            )

    def set_scene_faces(
        self, performer_id: str, scene_id: str, embeddings: Sequence[np.ndarray], qualities: Sequence[float]
    ) -> None:
        """The faces a scene confirms for its performer (replacing that scene's earlier ones)."""
        self.set_faces(performer_id, f"scene:{scene_id}", embeddings, qualities)

    def set_faces(
        self,
        performer_id: str,
        origin: str,
        embeddings: Sequence[np.ndarray],
        qualities: Sequence[float],
        name: str | None = None,
    ) -> None:
        """Faces of a performer from ``origin`` (``scene:<id>``, ``cluster:<id>``), replacing that
        origin's earlier ones. ``name`` registers a performer the gallery does not know yet."""
        now = time.time()
        with self.store.transaction() as db:
            if name is not None:
                db.execute(
                    "INSERT OR IGNORE INTO gallery_performers VALUES (?, ?, NULL, ?, 'faces', NULL, ?)",
                    (str(performer_id), name, self.model, now),
                )
            db.execute("DELETE FROM gallery WHERE source LIKE ? AND model = ?", (f"{origin}/%", self.model))
            for number, (vector, quality) in enumerate(zip(embeddings, qualities)):
                db.execute(
                    "INSERT INTO gallery VALUES (?, ?, ?, ?, ?, ?)",
                    (str(performer_id), f"{origin}/{number}", self.model, float(quality), _blob(vector), now),
                )

    def forget_scene(self, scene_id: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM gallery WHERE source LIKE ?", (f"scene:{scene_id}/%",))
