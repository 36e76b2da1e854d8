"""Performer recognition in a run: the gallery kept up to date, each scene's face tracks matched
against it, confirmed scenes teaching the gallery, unknown faces kept for clustering.

The decisions are in ``tagger.faces.match`` (pure); this module is the I/O around them (the store,
Stash's performers and images, the faces analyzer of the run's engine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tagger import families
from tagger.detections import PerformerMatch
from tagger.faces.gallery import SCENE_FACES, Gallery, GalleryReport
from tagger.faces.match import (
    AUTO_SIMILARITY,
    GalleryIndex,
    ScenePerformer,
    TrackIdentity,
    best_faces,
    face_quality,
    identify_tracks,
    scene_performers,
)
from tagger.stashside.stash import StashClient
from tagger.stashside.store import Store

MIN_UNKNOWN_APPEARANCES = 2
"""A track needs this many faces to be kept as an unknown person (one face is too often noise)."""


class PerformerRecognition:
    """Recognition for one run. ``faces``: the engine's faces analyzer (None: recognition is off)."""

    def __init__(
        self,
        store: Store,
        client: StashClient | None,
        faces: Any | None,
        log: Callable[[str, str], None] = lambda *_: None,
        *,
        model: str | None = None,
        crops_dir: Path | None = None,
    ) -> None:
        """``model``: the gallery's face model when there is no analyzer (review operations)."""
        self.store = store
        self.client = client
        self.faces = faces
        self.log = log
        model = model or (faces.version if faces is not None else None)
        self.gallery = Gallery(store, model) if model is not None else None
        self.crops_dir = crops_dir or store.path.parent / "faces" / "unknown"
        self._index: GalleryIndex | None = None

    @property
    def enabled(self) -> bool:
        return self.gallery is not None

    def refresh(self, progress: Callable[[float], None] | None = None) -> GalleryReport | None:
        """Bring the gallery up to date with Stash's performers (only changed images are fetched)."""
        if self.gallery is None or self.client is None or self.faces is None:
            return None
        performers = list(self.client.iter_performers())
        report = self.gallery.refresh(performers, self.client.fetch, self.faces.inner, self.log, progress)
        self._index = None
        if report.updated or report.removed:
            self.log(
                "info",
                f"face gallery: {len(report.updated)} performer image(s) learned, "
                f"{report.removed} removed, {report.unchanged} unchanged",
            )
        return report

    def index(self) -> GalleryIndex:
        if self._index is None:
            self._index = self.gallery.index() if self.gallery is not None else GalleryIndex.empty()
        return self._index

    def identify(self, result: Any) -> tuple[list[TrackIdentity], list[ScenePerformer]]:
        """The scene's tracks with their performers, and the performers found."""
        if self.gallery is None:
            return [], []
        tracks, detections = result.decisions.faces, result.detections
        identities = identify_tracks(tracks, detections, self.index())
        return identities, scene_performers(identities, self.index())

    @staticmethod
    def matches(found: Sequence[ScenePerformer]) -> list[PerformerMatch]:
        return [PerformerMatch(p.performer_id, p.name, p.score, p.auto) for p in found]

    def learn(
        self, scene_id: str, performer_ids: Sequence[str], identities: Sequence[TrackIdentity], result: Any
    ) -> bool:
        """A scene the user tagged with exactly one performer, in which exactly one track is that
        performer (at the auto-apply bar) and no track is anyone else: its best faces join the
        gallery. Returns whether they did."""
        if self.gallery is None:
            return False
        if len(performer_ids) != 1:
            self.gallery.forget_scene(scene_id)
            return False
        (performer,) = performer_ids
        theirs = [i for i in identities if i.performer_id == performer and i.score >= AUTO_SIMILARITY]
        others = [i for i in identities if i.performer_id not in (None, performer)]
        if len(theirs) != 1 or others:
            self.gallery.forget_scene(scene_id)
            return False
        detections = result.detections
        chosen = best_faces(theirs[0].track, detections, SCENE_FACES)
        self.gallery.set_scene_faces(
            performer,
            scene_id,
            [detections[i].embedding for i in chosen],
            [face_quality(detections[i]) for i in chosen],
        )
        self._index = None
        return True

    def remember_unknown(
        self,
        scene_id: str,
        identities: Sequence[TrackIdentity],
        result: Any,
        headers: dict[str, str] | None = None,
    ) -> int:
        """Keep the scene's unmatched tracks (replacing its earlier ones) for clustering, each with
        a crop of its best face as evidence (``crops_dir``; read again from ``result.file``)."""
        if self.gallery is None:
            return 0
        detections = result.detections
        rows = []
        boxes: dict[str, tuple[float, tuple[float, ...]]] = {}
        for identity in identities:
            track = identity.track
            if identity.performer_id is not None or track.detections < MIN_UNKNOWN_APPEARANCES:
                continue
            chosen = best_faces(track, detections)
            if not chosen:
                continue
            mean = np.mean([detections[i].embedding for i in chosen], axis=0)
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
            best = detections[chosen[0]]
            boxes[f"scene:{scene_id}/track:{track.track}"] = (
                float(best.time),
                tuple(best.box or (0, 0, 0, 0)),
            )
            rows.append(
                (
                    f"scene:{scene_id}/track:{track.track}",
                    self.gallery.model,
                    str(scene_id),
                    max(face_quality(detections[i]) for i in chosen),
                    np.asarray(mean, np.float32).tobytes(),
                    float(detections[chosen[0]].time),
                    track.detections,
                    None,
                    time.time(),
                )
            )
        with self.store.transaction() as db:
            previous = dict(
                db.execute(
                    "SELECT key, cluster_id FROM unknown_faces WHERE scene_id = ? AND model = ?",
                    (str(scene_id), self.gallery.model),
                ).fetchall()
            )
            db.execute("DELETE FROM unknown_faces WHERE scene_id = ?", (str(scene_id),))
            # A track seen again keeps its cluster (track numbers are stable for cached analyses).
            rows = [(*row[:7], previous.get(row[0]), row[8]) for row in rows]
            db.executemany("INSERT INTO unknown_faces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        kept = {row[0] for row in rows}
        for key in previous:  # crops of tracks this analysis no longer has
            if key not in kept:
                self.crop_path(key).unlink(missing_ok=True)
        if rows:
            self._save_crops(result, [(row[0], boxes[row[0]]) for row in rows], headers)
        return len(rows)

    def _save_crops(
        self,
        result: Any,
        faces: Sequence[tuple[str, tuple[float, tuple[float, ...]]]],
        headers: dict[str, str] | None,
    ) -> None:
        """JPEG crops of faces (key, (time, box in analysis-frame pixels)); a failure is a warning."""
        from tagger.errors import MediaError
        from tagger.media.seek import decode_at
        from tagger.media.video import probe

        size = result.record.frame_size
        try:
            info = probe(result.file, http_headers=headers)
            images = decode_at(result.file, info, [t for _, (t, _) in faces], size, http_headers=headers)
        except MediaError as error:
            self.log("warning", f"face crops of {result.file} not saved: {error}")
            return
        self.crops_dir.mkdir(parents=True, exist_ok=True)
        for key, (t, box) in faces:
            image = images.get(round(float(t), 6))
            if image is None:
                continue
            x, y, w, h = box
            margin = 0.35 * max(w, h)
            left, top = max(0, int(x - margin)), max(0, int(y - margin))
            right, bottom = min(image.shape[1], int(x + w + margin)), min(image.shape[0], int(y + h + margin))
            if right > left and bottom > top:
                cv2.imwrite(
                    str(self.crop_path(key)), image[top:bottom, left:right], [cv2.IMWRITE_JPEG_QUALITY, 92]
                )

    def crop_path(self, key: str) -> Path:
        return self.crops_dir / (key.replace(":", "-").replace("/", "_") + ".jpg")

    def cluster_unknown(self, run_id: str) -> int:
        """Group the unknown faces of the library into stable clusters, and offer each cluster as a
        suggested performer. Returns how many clusters there are."""
        if self.gallery is None:
            return 0
        from tagger.faces.cluster import FaceSample, cluster_faces
        from tagger.writeback.plan import Suggestion
        from tagger.writeback.review import LIBRARY, ReviewQueue

        rows = self.store.db.execute(
            "SELECT key, scene_id, quality, embedding, cluster_id, appearances, best_time FROM unknown_faces "
            "WHERE model = ?",
            (self.gallery.model,),
        ).fetchall()
        samples = [
            FaceSample(key, scene, np.frombuffer(blob, np.float32), quality)
            for key, scene, quality, blob, _, _, _ in rows
        ]
        previous = {key: cluster for key, _, _, _, cluster, _, _ in rows if cluster is not None}
        (used,) = self.store.db.execute(
            "SELECT value FROM meta WHERE key = 'next_cluster_id'"
        ).fetchone() or ("1",)
        clusters = cluster_faces(samples, previous, next_id=int(used))
        assigned = {key: cluster.id for cluster in clusters for key in cluster.members}
        by_key = {row[0]: row for row in rows}
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE unknown_faces SET cluster_id = ? WHERE key = ? AND model = ?",
                [(assigned.get(key), key, self.gallery.model) for key in by_key],
            )
            top = max([int(used) - 1, *assigned.values()])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('next_cluster_id', ?)", (str(top + 1),))
        suggestions = []
        for cluster in clusters:
            appearances = sum(int(by_key[key][5]) for key in cluster.members)
            faces = [
                {
                    "key": key,
                    "scene_id": by_key[key][1],
                    "time": round(float(by_key[key][6]), 2),
                    "crop": str(self.crop_path(key)) if self.crop_path(key).is_file() else None,
                }
                for key in cluster.members[:5]
            ]
            suggestions.append(
                Suggestion(
                    f"cluster:{cluster.id}",
                    "cluster",
                    f"Unknown person #{cluster.id}",
                    1.0,
                    {
                        "cluster_id": cluster.id,
                        "scenes": list(cluster.scenes),
                        "appearances": appearances,
                        "faces": faces,
                    },
                )
            )
        ReviewQueue(self.store).offer(LIBRARY, suggestions, run_id)
        return len(clusters)

    def cluster_members(self, cluster_id: int) -> list[tuple[str, str, np.ndarray]]:
        """(key, scene id, embedding) of a cluster's faces, best quality first."""
        rows = self.store.db.execute(
            "SELECT key, scene_id, embedding FROM unknown_faces WHERE cluster_id = ? AND model = ? "
            "ORDER BY quality DESC",
            (int(cluster_id), self.gallery.model if self.gallery else ""),
        ).fetchall()
        return [(key, scene, np.frombuffer(blob, np.float32)) for key, scene, blob in rows]

    def adopt_cluster(
        self, cluster_id: int, performer_id: str, name: str, members: Sequence[tuple[str, str, np.ndarray]]
    ) -> None:
        """A cluster the user named: its faces join the performer's gallery and stop being unknown."""
        assert self.gallery is not None
        self.gallery.set_faces(
            performer_id,
            f"cluster:{cluster_id}",
            [vector for _, _, vector in members],
            [1.0] * len(members),
            name=name,
        )
        with self.store.transaction() as db:
            db.execute("DELETE FROM unknown_faces WHERE cluster_id = ?", (int(cluster_id),))
        self._index = None

    def best_crop(self, members: Sequence[tuple[str, str, np.ndarray]]) -> Path | None:
        """The crop of a cluster's best face that is on disk, if any."""
        return next((p for p in (self.crop_path(key) for key, _, _ in members) if p.is_file()), None)


def faces_analyzer(engine: Any) -> Any | None:
    """The engine's faces analyzer (with its version), if faces are analysed."""
    return next((a for a in engine.analyzers if a.name == families.FACES), None)


def identities_to_dict(identities: Sequence[TrackIdentity]) -> list[dict[str, Any]]:
    """The ``identity`` of each face track, for reports (``faces[].identity`` of the contract)."""
    return [
        {
            "track": i.track.track,
            "identity": (
                {"performer": i.performer_id, "score": round(i.score, 3)} if i.performer_id else None
            ),
        }
        for i in identities
    ]
