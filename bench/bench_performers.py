"""Performer recognition accuracy: the real engine (YuNet + SFace, tracks) and the real matcher
(``tagger.faces.match``) on generated scenes with known people, over a sweep of thresholds.

    .venv/bin/python bench/bench_performers.py [--rebuild]
    .venv/bin/python bench/bench_performers.py --search

Gallery: p01-p04 are performers, one embedding each from their 1.jpg. Scenes (made once into
bench/.data/performers/scenes/, with their ground truth next to them as JSON) show those
performers from their OTHER photos and from group-photo crops (g01, g03), with the non-performer
p05 and the impostors p06, p07, p10, p11 (and a few strangers from g04/g05) as extra people: 1-3
people per scene, overlapping in time, face heights about 120-300 px at 1280x720, different
positions, a hard cut in each scene. Ground truth comes from what was placed (which photo's face
is where and when), never from the model: a detection is that person's when its centre lies on
the placed face; a track takes the majority of its detections.

Prints, for auto thresholds 0.35-0.75 and min_appearances 1-3, per track (appearance) and per
scene precision / recall / F1; then the review band (suggestions) over review thresholds; the
track score distributions of genuine and non-performer tracks; and a recommendation line.
``--search`` instead times exact gallery search (5-face query) against 1k, 10k and 100k random
128-d unit vectors, with one BLAS thread and with the default (each in its own process; on
shared cores the multi-threaded figures are noisy). Prints numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / ".data" / "performers"
SHARED = Path(os.environ.get("AI_TAGGER_SHARED") or ROOT.parent / "shared")
FACES = SHARED / "faces"

SIZE = (1280, 720)
FPS = 25.0
PERFORMERS = ("p01", "p02", "p03", "p04")
GALLERY_PHOTO = {p: f"{p}/1.jpg" for p in PERFORMERS}
"""The one gallery photo per performer; scenes never use it (nor g02, which reuses its pixels)."""

AUTO_SWEEP = tuple(round(0.35 + 0.05 * i, 2) for i in range(9))
MIN_APPEARANCES_SWEEP = (1, 2, 3)
REVIEW_SWEEP = tuple(round(0.15 + 0.05 * i, 2) for i in range(9))
TARGET_PRECISION = 0.97
RARE_WRONG_PER_SCENE = 0.02
"""'Rare' impostor suggestions: at most one wrong suggestion per 50 scenes."""

Cast = Sequence[Union[str, tuple[str, float, float]]]
SCENES: tuple[Cast, ...] = (
    ("p01/2",),
    ("p02/2", "p06/1"),
    ("p03/2", "p05/1"),
    ("p04/2",),
    ("p01/3", "g01:0", "p07/1"),
    ("p05/2",),
    ("g03:1", "g03:0"),
    ("p03/3", "p10/1"),
    ("p01/4", "p04/3"),
    ("g01:0", "g01:1"),
    ("p11/1",),
    ("p03/2", "p11/1", "p05/2"),
    ("p04/3", "p06/1"),
    ("p01/2", "p03/3"),
    ("p07/1", "p10/1"),
    ("p02/2",),
    ("p04/2", "p05/1", "p01/4"),
    ("p03/3", "g04:0"),
    (("p01/2", 0.0, 0.4), ("p01/4", 0.6, 1.0), "g05:4"),
    ("g04:5", "g03:1", "p02/2"),
    ("g03:0", "p06/1", "p10/1"),
    ("g01:1", "p05/2"),
    ("p04/3", ("p03/2", 0.5, 0.72), "p07/1"),
    (("p01/3", 0.2, 0.42), "p11/1", "g01:0"),
    (("p02/2", 0.6, 0.8), ("p10/1", 0.1, 0.3)),
)
"""Per scene, who appears: ``pNN/k`` is a photo, ``gNN:i`` a face of a group photo; a tuple gives
its own span as fractions of the scene (the same person twice, photos differing; short cameos of
2-4 s, one or two samples, for ``min_appearances``)."""


@dataclass(frozen=True)
class Source:
    """A face to paste: the photo cropped around it, and where the face is in the crop."""

    key: str
    identity: str
    crop: np.ndarray
    face: tuple[float, float, float, float]  # x, y, w, h in crop pixels (detector box)


@dataclass(frozen=True)
class Placed:
    """One face as placed in a scene (truth): its face box at the first frame, in video pixels."""

    identity: str
    key: str
    start: float
    end: float
    face: tuple[float, float, float, float]


@dataclass(frozen=True)
class TrackRecord:
    """One engine track: its truth and its gallery scores."""

    truth: str  # identity on screen, or "none" (a detection on no placed face)
    pure: bool
    detections: int
    scores: dict[str, float]


@dataclass
class Scene:
    """One generated scene, analysed."""

    number: int
    placed: list[Placed]
    tracks: list[object]  # FaceTrack
    detections: list[object]  # Detection
    records: list[TrackRecord]
    untracked: list[str]  # performers placed with no track of theirs at all

    @property
    def truth(self) -> set[str]:
        return {p.identity for p in self.placed if p.identity in PERFORMERS}


def _detect_largest(
    analyzer: object, image: np.ndarray, inside: tuple[float, float, float, float] | None = None
) -> object | None:
    """The largest detected face (whose centre lies in ``inside`` x0, y0, x1, y1, when given)."""
    faces = analyzer.detect(image)  # type: ignore[attr-defined]
    if inside is not None:
        x0, y0, x1, y1 = inside
        faces = [
            f for f in faces if x0 <= f.box[0] + f.box[2] / 2 <= x1 and y0 <= f.box[1] + f.box[3] / 2 <= y1
        ]
    return max(faces, key=lambda f: float(f.box[2] * f.box[3]), default=None)


def load_sources(analyzer: object, keys: set[str]) -> dict[str, Source]:
    """Every face the scenes use, cropped from its photo around the detector's box of that face."""
    import cv2

    groups: dict[tuple[str, int], tuple[str, tuple[float, ...]]] = {}
    with open(FACES / "group_faces.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            name = Path(row["file"]).stem
            box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            groups[(name, int(row["face_index"]))] = (row["identity_id"], box)
    sources = {}
    for key in sorted(keys):
        if ":" in key:
            group, index = key.split(":")
            identity, inside = groups[(group, int(index))]
            image = cv2.imread(str(FACES / "groups" / f"{group}.jpg"))
        else:
            identity, inside = key.split("/")[0], None
            image = cv2.imread(str(FACES / f"{key}.jpg"))
        face = _detect_largest(analyzer, image, inside)  # type: ignore[arg-type]
        if face is None:
            print(f"note: no face found in {key}; left out", file=sys.stderr)
            continue
        x, y, w, h = (float(v) for v in face.box)  # type: ignore[attr-defined]
        cx, cy = x + w / 2, y + h / 2
        x0, x1 = int(max(0, cx - 0.8 * w)), int(min(image.shape[1], cx + 0.8 * w))
        y0, y1 = int(max(0, cy - 0.75 * h)), int(min(image.shape[0], cy + 0.75 * h))
        sources[key] = Source(key, identity, image[y0:y1, x0:x1].copy(), (x - x0, y - y0, w, h))
    return sources


def build_gallery(analyzer: object) -> object:
    """The performers' gallery: one embedding each, from the gallery photo's largest face."""
    import cv2

    from tagger.analyzers.faces import align_face
    from tagger.faces.match import GalleryIndex

    ids, vectors = [], []
    for performer in PERFORMERS:
        image = cv2.imread(str(FACES / GALLERY_PHOTO[performer]))
        face = _detect_largest(analyzer, image)
        crop = align_face(image, face.landmarks)  # type: ignore[attr-defined]
        vectors.append(analyzer.embed(crop[None])[0])  # type: ignore[attr-defined]
        ids.append(performer)
    return GalleryIndex(tuple(ids), np.stack(vectors).astype(np.float32), {p: f"Performer {p}" for p in ids})


def _layout(number: int, cast: Cast, sources: dict[str, Source]) -> tuple[float, float, list[dict]]:
    """Duration, cut time and the faces of one scene (seeded by its number)."""
    rng = np.random.default_rng(1000 + number)
    duration = float(round(rng.uniform(10, 20) * 2) / 2)
    cut = float(round(rng.uniform(0.35, 0.65) * duration, 1))
    people = len(cast)
    heights = {1: (120, 300), 2: (120, 240), 3: (120, 170)}[min(people, 3)]
    slots = {1: [0.5], 2: [0.28, 0.72], 3: [0.17, 0.5, 0.83]}[min(people, 3)]
    order = rng.permutation(people)
    faces = []
    for slot, item in zip(order, cast):
        key, span = (item, None) if isinstance(item, str) else (item[0], item[1:])
        if key not in sources:
            continue
        if span is None:
            start = float(rng.uniform(0, 0.4 * duration))
            end = min(duration, max(start + 4.0, float(rng.uniform(0.6, 1.0)) * duration))
        else:
            start, end = span[0] * duration, span[1] * duration
        jitter = 0.03 if people > 1 else 0.15
        faces.append(
            {
                "key": key,
                "start": round(start, 2),
                "end": round(end, 2),
                "height": int(rng.uniform(*heights)),
                "x": float(slots[slot] + rng.uniform(-jitter, jitter)),
                "y": float(rng.uniform(0.42, 0.58)),
            }
        )
    return duration, cut, faces


def make_scene(
    number: int, cast: Cast, sources: dict[str, Source], rebuild: bool
) -> tuple[Path, list[Placed]]:
    """The scene's video and truth (made once per layout, then reused)."""
    import cv2

    from tagger.media.sample import FaceSpec, make_sample_video

    duration, cut, layout = _layout(number, cast, sources)
    spec = json.dumps(
        {"duration": duration, "cut": cut, "faces": layout, "size": SIZE, "fps": FPS}, sort_keys=True
    )
    digest = hashlib.sha1(spec.encode()).hexdigest()[:10]
    folder = DATA / "scenes"
    path, truth_path = folder / f"scene{number:02d}_{digest}.mp4", folder / f"scene{number:02d}_{digest}.json"
    if path.exists() and truth_path.exists() and not rebuild:
        return path, [Placed(**{**p, "face": tuple(p["face"])}) for p in json.loads(truth_path.read_text())]
    folder.mkdir(parents=True, exist_ok=True)
    specs, scales = [], []
    for face in layout:
        source = sources[face["key"]]
        scale = face["height"] / source.face[3]
        h, w = source.crop.shape[:2]
        image = cv2.resize(
            source.crop,
            (max(2, round(w * scale)), max(2, round(h * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
        )
        specs.append(FaceSpec(image, face["start"], face["end"], (face["x"], face["y"])))
        scales.append(image.shape[1] / w)
    tmp = path.with_suffix(".tmp.mp4")
    truth = make_sample_video(
        tmp,
        duration_s=duration,
        size=SIZE,
        fps=FPS,
        cut_times=[cut],
        black_spans=(),
        faces=specs,
        seed=number + 1,
    )
    tmp.replace(path)
    placed = []
    for face, span, scale in zip(layout, truth.face_spans, scales):
        source = sources[face["key"]]
        fx, fy, fw, fh = source.face
        x, y = span.box[0], span.box[1]
        placed.append(
            Placed(
                source.identity,
                face["key"],
                span.start,
                span.end,
                (x + fx * scale, y + fy * scale, fw * scale, fh * scale),
            )
        )
    truth_path.write_text(json.dumps([p.__dict__ for p in placed], indent=1))
    return path, placed


def detection_truth(detection: object, placed: Sequence[Placed], scale: float) -> str:
    """Whose face a detection is: the placed face its centre lies on (drift and breathing allowed)."""
    x, y, w, h = (v * scale for v in detection.box)  # type: ignore[attr-defined]
    cx, cy, t = x + w / 2, y + h / 2, float(detection.time)  # type: ignore[attr-defined]
    best, best_distance = "none", float("inf")
    for p in placed:
        if not p.start - 1e-3 <= t < p.end + 1e-3:
            continue
        px, py, pw, ph = p.face
        dx, dy = abs(cx - (px + pw / 2)), abs(cy - (py + ph / 2))
        if dx <= 0.35 * pw + 20 and dy <= 0.35 * ph + 20 and dx + dy < best_distance:
            best, best_distance = p.identity, dx + dy
    return best


def analyse_scene(number: int, engine: object, gallery: object, path: Path, placed: list[Placed]) -> Scene:
    """Run the engine on one scene and label its tracks from the placed truth."""
    from tagger.faces.match import best_faces

    result = engine.analyze(str(path))  # type: ignore[attr-defined]
    detections, tracks = result.detections, result.decisions.faces
    frame_w = (result.record.frame_size or (SIZE[0] // 2, 0))[0]
    scale = SIZE[0] / frame_w
    labels = [detection_truth(d, placed, scale) if d.kind == "face" else "none" for d in detections]
    records = []
    for track in tracks:
        votes = Counter(labels[i] for i in track.members)
        truth, count = votes.most_common(1)[0]
        faces = [detections[i].embedding for i in best_faces(track, detections)]
        scores = gallery.performer_scores(np.stack(faces)) if faces else {}  # type: ignore[attr-defined]
        records.append(TrackRecord(truth, count == track.detections, track.detections, scores))
    tracked = {r.truth for r in records}
    untracked = sorted({p.identity for p in placed if p.identity in PERFORMERS} - tracked)
    return Scene(number, placed, list(tracks), list(detections), records, untracked)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 (1.0 when there is nothing to get wrong)."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass
class Outcome:
    """Counts of one threshold setting over all scenes."""

    track_ok: int = 0
    track_wrong: int = 0  # a performer's track given another performer
    track_impostor: int = 0  # a non-performer's track given a performer
    track_missed: int = 0  # a performer's track (or untracked placement) left unknown
    scene_tp: int = 0
    scene_fp: int = 0
    scene_fn: int = 0
    scenes_with_fp: int = 0

    def track_prf(self) -> tuple[float, float, float]:
        wrong = self.track_wrong
        return prf(self.track_ok, wrong + self.track_impostor, self.track_missed + wrong)

    def scene_prf(self) -> tuple[float, float, float]:
        return prf(self.scene_tp, self.scene_fp, self.scene_fn)


def evaluate(
    scenes: Sequence[Scene],
    gallery: object,
    auto: float,
    min_appearances: int,
    review: float,
    keep: Callable[[object], bool],
) -> Outcome:
    """Counts for one setting; ``keep`` chooses which scene performers count as found."""
    from tagger.faces.match import identify_tracks, scene_performers

    outcome = Outcome()
    for scene in scenes:
        identities = identify_tracks(
            scene.tracks,
            scene.detections,
            gallery,  # type: ignore[arg-type]
            review_similarity=review,
        )
        found = scene_performers(
            identities,
            gallery,
            auto_similarity=auto,  # type: ignore[arg-type]
            min_appearances=min_appearances,
        )
        chosen = {p.performer_id for p in found if keep(p)}
        for identity, record in zip(identities, scene.records):
            predicted = identity.performer_id if identity.performer_id in chosen else None
            if record.truth in PERFORMERS:
                if predicted == record.truth:
                    outcome.track_ok += 1
                elif predicted is None:
                    outcome.track_missed += 1
                else:
                    outcome.track_wrong += 1
            elif predicted is not None:
                outcome.track_impostor += 1
        outcome.track_missed += len(scene.untracked)
        truth = scene.truth
        outcome.scene_tp += len(chosen & truth)
        outcome.scene_fp += len(chosen - truth)
        outcome.scene_fn += len(truth - chosen)
        outcome.scenes_with_fp += bool(chosen - truth)
    return outcome


def _fmt(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:5.3f}" for v in values)


def _stats(values: Sequence[float]) -> str:
    if not values:
        return "n=0"
    v = np.asarray(values)
    return (
        f"n={len(v):3d}  min {v.min():5.3f}  p10 {np.percentile(v, 10):5.3f}  median {np.median(v):5.3f}"
        f"  p90 {np.percentile(v, 90):5.3f}  max {v.max():5.3f}"
    )


def report_scores(scenes: Sequence[Scene]) -> None:
    """Track score distributions: genuine (own performer, best other) and non-performers (max)."""
    own, other, lookalike, impostor, stranger, none = [], [], [], [], [], []
    for record in (r for s in scenes for r in s.records):
        if not record.scores:
            continue
        if record.truth in PERFORMERS:
            if record.truth in record.scores:  # performer_scores returns the top few only
                own.append(record.scores[record.truth])
            other.append(max((v for p, v in record.scores.items() if p != record.truth), default=0.0))
            continue
        best = max(record.scores.values())
        if record.truth == "p05":
            lookalike.append(best)
        elif record.truth in ("p06", "p07", "p10", "p11"):
            impostor.append(best)
        elif record.truth == "none":
            none.append(best)
        else:
            stranger.append(best)
    print("\ntrack scores (mean over a track's best faces of the best similarity to a performer):")
    print(f"  genuine, own performer         {_stats(own)}")
    print(f"  genuine, best other performer  {_stats(other)}")
    print(f"  p05 (no performer), max        {_stats(lookalike)}")
    print(f"  impostors p06/07/10/11, max    {_stats(impostor)}")
    print(f"  strangers g04/g05, max         {_stats(stranger)}")
    print(f"  false detections, max          {_stats(none)}")
    non = lookalike + impostor + stranger + none
    if own and non:
        print(
            f"  gap: lowest genuine {min(own):.3f} - highest non-performer {max(non):.3f} "
            f"= {min(own) - max(non):+.3f}"
        )


def run_accuracy(rebuild: bool) -> None:
    from tagger.config import build_config
    from tagger.engine.engine import Engine

    started = time.time()
    DATA.mkdir(parents=True, exist_ok=True)
    engine = Engine(build_config({"analyzers": ["faces"]}), DATA, lambda *_: None)
    analyzer = engine.analyzers[0].inner
    gallery = build_gallery(analyzer)
    keys = {item if isinstance(item, str) else item[0] for cast in SCENES for item in cast}
    sources = load_sources(analyzer, keys)
    scenes = []
    for number, cast in enumerate(SCENES):
        path, placed = make_scene(number, cast, sources, rebuild)
        scenes.append(analyse_scene(number, engine, gallery, path, placed))
    engine.close()
    report(scenes, gallery, started)
    report_clusters(scenes, gallery)


def report_clusters(scenes: Sequence[Scene], gallery: object) -> None:
    """Unknown-person clustering: the tracks the matcher leaves unknown (at its defaults), clustered
    across all scenes as the plugin does; purity and how each identity is split."""
    from tagger.faces.cluster import FaceSample, cluster_faces
    from tagger.faces.match import best_faces, face_quality, identify_tracks

    samples, truth = [], {}
    for scene in scenes:
        identities = identify_tracks(scene.tracks, scene.detections, gallery)  # type: ignore[arg-type]
        for identity, record in zip(identities, scene.records):
            if identity.performer_id is not None or identity.track.detections < 2:
                continue
            chosen = best_faces(identity.track, scene.detections)
            if not chosen:
                continue
            mean = np.mean([scene.detections[i].embedding for i in chosen], axis=0)
            key = f"scene:{scene.number}/track:{identity.track.track}"
            samples.append(
                FaceSample(
                    key,
                    str(scene.number),
                    (mean / np.linalg.norm(mean)).astype(np.float32),
                    max(face_quality(scene.detections[i]) for i in chosen),
                )
            )
            truth[key] = record.truth
    clusters = cluster_faces(samples)
    clustered = sum(len(c.members) for c in clusters)
    majority = sum(Counter(truth[k] for k in c.members).most_common(1)[0][1] for c in clusters)
    print(
        f"\nunknown people: {len(samples)} unmatched tracks of {len(set(truth.values()))} identities; "
        f"{len(clusters)} clusters holding {clustered} tracks; purity {majority / max(clustered, 1):.3f}"
    )
    for cluster in clusters:
        who = Counter(truth[k] for k in cluster.members)
        print(f"  cluster {cluster.id}: {dict(who)} in {len(cluster.scenes)} scenes")
    left = Counter(truth[s.key] for s in samples if not any(s.key in c.members for c in clusters))
    print(f"  not clustered (fewer than 3 close tracks): {dict(left)}")


def report(scenes: Sequence[Scene], gallery: object, started: float) -> None:
    """All the tables and the recommendation."""
    from tagger.faces import match

    records = [r for s in scenes for r in s.records]
    genuine = sum(r.truth in PERFORMERS for r in records)
    seconds = sum(max(p.end for p in s.placed) for s in scenes)
    print(
        f"scenes {len(scenes)} ({seconds:.0f} s), placed faces {sum(len(s.placed) for s in scenes)}, "
        f"performers in scenes {sum(len(s.truth) for s in scenes)}, tracks {len(records)} "
        f"(performers {genuine}, non-performers {len(records) - genuine}, "
        f"impure {sum(not r.pure for r in records)}), performer placements without a track "
        f"{sum(len(s.untracked) for s in scenes)}; prepared+analysed in {time.time() - started:.0f} s"
    )
    print(
        f"gallery: {', '.join(f'{p}={GALLERY_PHOTO[p]}' for p in PERFORMERS)}; "
        f"matcher defaults AUTO {match.AUTO_SIMILARITY} MIN_APPEARANCES {match.MIN_APPEARANCES} "
        f"REVIEW {match.REVIEW_SIMILARITY}"
    )
    print("per scene: identity(source span height) | tracks truth:max score/detections")
    for scene in scenes:
        people = ", ".join(
            f"{p.identity}({p.key} {p.start:.0f}-{p.end:.0f}s {p.face[3]:.0f}px)" for p in scene.placed
        )
        tracks = ", ".join(
            f"{r.truth}:{max(r.scores.values(), default=0):.2f}/{r.detections}" for r in scene.records
        )
        missing = f" | untracked {','.join(scene.untracked)}" if scene.untracked else ""
        print(f"  scene {scene.number:2d}: {people} | {tracks}{missing}")

    print(
        "\nauto sweep (review_similarity = min(REVIEW_SIMILARITY, auto)); track = appearance: ok / wrong "
        "performer / non-performer accepted / missed (incl. untracked);\nscene = the set of auto-added "
        "performers against the performers placed"
    )
    print(" auto min |  ok wrong imp miss   track P R F1     |  tp  fp  fn   scene P R F1     | scenes w/ FP")
    rows = []
    for auto in AUTO_SWEEP:
        for min_appearances in MIN_APPEARANCES_SWEEP:
            o = evaluate(
                scenes, gallery, auto, min_appearances, min(match.REVIEW_SIMILARITY, auto), lambda p: p.auto
            )
            rows.append((auto, min_appearances, o))
            print(
                f" {auto:4.2f} {min_appearances:3d} | {o.track_ok:3d} {o.track_wrong:5d} "
                f"{o.track_impostor:3d} {o.track_missed:4d}  {_fmt(o.track_prf())} | {o.scene_tp:3d} "
                f"{o.scene_fp:3d} {o.scene_fn:3d}  {_fmt(o.scene_prf())} | {o.scenes_with_fp:3d}"
            )
    good = [r for r in rows if r[2].scene_prf()[0] >= TARGET_PRECISION]
    good.sort(key=lambda r: (-r[2].scene_prf()[1], r[0], -r[2].scene_prf()[0], -r[1]))
    rec_auto, rec_min = (good[0][0], good[0][1]) if good else (match.AUTO_SIMILARITY, match.MIN_APPEARANCES)

    review_rows = review_sweep(scenes, gallery, rec_auto, rec_min)
    if (rec_auto, rec_min) != (match.AUTO_SIMILARITY, match.MIN_APPEARANCES):
        review_sweep(scenes, gallery, match.AUTO_SIMILARITY, match.MIN_APPEARANCES)  # the current defaults
    report_scores(scenes)

    if good:
        o = good[0][2]
        p, r, f = o.scene_prf()
        tp, tr, _ = o.track_prf()
        same = [
            a
            for a, m, x in rows
            if m == rec_min and x.scene_prf()[:2] == (p, r) and x.track_prf()[:2] == (tp, tr)
        ]
        print(
            f"\nrecommendation: AUTO_SIMILARITY {rec_auto:.2f} with MIN_APPEARANCES {rec_min}: per scene "
            f"precision {p:.3f} recall {r:.3f} F1 {f:.3f} (per track precision {tp:.3f} recall {tr:.3f}; "
            f"identical for auto {min(same):.2f}-{max(same):.2f}); ",
            end="",
        )
    else:
        print(f"\nrecommendation: no auto setting reached scene precision {TARGET_PRECISION}; ", end="")
    rare = [row for row in review_rows if row[3] <= RARE_WRONG_PER_SCENE]
    if rare:
        review, s, a, rate = rare[0]
        p, r, _ = a.scene_prf()
        print(
            f"REVIEW_SIMILARITY {review:.2f}: wrong suggestions {s.scene_fp} in {len(scenes)} scenes "
            f"({rate:.3f}/scene, limit {RARE_WRONG_PER_SCENE}), non-performer tracks suggested "
            f"{s.track_impostor}, auto+suggested per scene precision {p:.3f} recall {r:.3f}"
        )
    else:
        print("no review threshold kept wrong suggestions rare")


def review_sweep(
    scenes: Sequence[Scene], gallery: object, auto: float, min_appearances: int
) -> list[tuple[float, Outcome, Outcome, float]]:
    """Print the review band's table for one auto setting; return its rows."""
    print(
        f"\nreview sweep (auto {auto:.2f}, min_appearances {min_appearances}); suggestions = performers "
        "found but not auto-added; 'all' = auto + suggestions"
    )
    print(
        " review | sugg tracks ok wrong imp | sugg scene ok wrong | all-track P R F1  | all-scene P R F1  "
        "| wrong sugg/scene"
    )
    rows = []
    for review in (r for r in REVIEW_SWEEP if r <= auto):
        s = evaluate(scenes, gallery, auto, min_appearances, review, lambda p: not p.auto)
        a = evaluate(scenes, gallery, auto, min_appearances, review, lambda p: True)
        rate = s.scene_fp / len(scenes)
        rows.append((review, s, a, rate))
        print(
            f"  {review:4.2f} |             {s.track_ok:3d} {s.track_wrong:5d} {s.track_impostor:3d} "
            f"|          {s.scene_tp:3d} {s.scene_fp:5d} | {_fmt(a.track_prf())} | {_fmt(a.scene_prf())} "
            f"| {rate:5.3f}"
        )
    return rows


def _timed(run: Callable[[], object], budget_s: float = 1.0) -> tuple[float, float]:
    """(median, min) ms per call over calls until ``budget_s`` is spent (at least one), after one
    warm-up call unless that took over a second. Medians, since other processes share the cores."""
    tick = time.perf_counter()
    run()
    times = [] if time.perf_counter() - tick < 1.0 else [time.perf_counter() - tick]
    started = time.perf_counter()
    while not times or time.perf_counter() - started < budget_s:
        tick = time.perf_counter()
        run()
        times.append(time.perf_counter() - tick)
    return 1000 * float(np.median(times)), 1000 * min(times)


def run_search(threads: str) -> None:
    """ms per 5-face query for exact search at several gallery sizes (5 embeddings per performer)."""
    from tagger.faces.match import GalleryIndex

    rng = np.random.default_rng(0)
    print(
        f"\nexact gallery search, BLAS threads {threads}, 128-d float32, 5-face query, 5 embeddings per "
        f"performer, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; ms per query, "
        "median (min)"
    )
    print(
        "  gallery performers   MB |  matmul        | +max per face  | +max per performer | "
        "GalleryIndex.performer_scores"
    )
    for size in (1_000, 10_000, 100_000):
        vectors = rng.standard_normal((size, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = tuple(f"perf{i // 5:06d}" for i in range(size))
        starts = np.arange(0, size, 5)
        query = rng.standard_normal((5, 128)).astype(np.float32)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        index = GalleryIndex(ids, vectors, {})

        def matmul() -> np.ndarray:
            return query @ vectors.T  # noqa: B023

        def per_face() -> np.ndarray:
            return (query @ vectors.T).max(axis=1)  # noqa: B023

        def per_performer() -> int:
            similarity = query @ vectors.T  # noqa: B023
            return int(np.maximum.reduceat(similarity, starts, axis=1).mean(axis=0).argmax())  # noqa: B023

        cells = [_timed(run) for run in (matmul, per_face, per_performer)]
        cells.append(_timed(lambda: index.performer_scores(query), 2.0))  # noqa: B023
        print(
            f"  {size:7d} {size // 5:10d} {vectors.nbytes / 1e6:4.0f} | "
            + " | ".join(f"{median:8.3f} ({low:.3f})" for median, low in cells)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", action="store_true", help="time exact gallery search instead")
    parser.add_argument("--rebuild", action="store_true", help="re-make the scene videos")
    parser.add_argument("--search-child", choices=("1", "default"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_child:
        run_search(args.search_child)
    elif args.search:
        # BLAS threads are fixed when numpy loads, so each setting runs in its own process.
        for threads in ("1", "default"):
            env = dict(os.environ)
            if threads == "1":
                env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            subprocess.run([sys.executable, __file__, "--search-child", threads], env=env, check=True)
    else:
        run_accuracy(args.rebuild)


if __name__ == "__main__":
    main()
