"""``mode: review``: the review queue's API for the UI, through ``runPluginOperation``.

    {"mode": "review", "action": "list", "scene_id"?: "12", "status"?: "pending", "page"?: 1, "per_page"?: 25}
    {"mode": "review", "action": "accept", "id": 7}   applied (journaled, confirmed by the user)
    {"mode": "review", "action": "reject", "id": 7}   never suggested again for that scene
    {"mode": "review", "action": "scene", "scene_id": "12"}   what the tagger applied to the
        scene (tags, markers, performers, studio, each with score, model and evidence times) and
        its pending suggestions: the scene page's AI tab
    {"mode": "review", "action": "evidence", "scene_id": "12", "times": [3.5, 10]}   JPEG
        thumbnails (data URLs) of the scene's video at those times (at most 8, each within the
        scene's length; another value is refused, named)
    {"mode": "review", "action": "accept", "id": 9, "name": "New Name"}    an unknown person
        (kind ``cluster``) becomes a new performer, with its best face crop as image, added to
        its scenes; or ``"performer_id": "12"`` links it to an existing performer. Either way its
        faces join that performer's gallery.

It runs beside a tagging task (it does not take the run lock); an accept takes the write lock for
the second it needs, as every change to Stash does.
"""

from __future__ import annotations

import math
from typing import Any

from tagger.errors import ConfigError, MediaError
from tagger.run.args import required_text, required_whole, whole
from tagger.run.context import RunContext
from tagger.writeback.review import ReviewQueue
from tagger.writeback.session import write_lock, writing_run

ACTIONS = ("list", "accept", "reject", "scene", "evidence")
MAX_PER_PAGE = 200


def review(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Answer one review request (see the module's docstring)."""
    action = str(args.get("action") or "list")
    if action not in ACTIONS:
        raise ConfigError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    queue = ReviewQueue(context.store)
    if action == "list":
        page = whole(args, "page", default=1, low=1, high=10**9)
        per_page = whole(args, "per_page", default=25, low=1, high=MAX_PER_PAGE)
        scene_id = str(args["scene_id"]) if args.get("scene_id") not in (None, "") else None
        count, items = queue.list(
            scene_id=scene_id, status=str(args.get("status") or "pending"), page=page, per_page=per_page
        )
        return {
            "mode": "review",
            "action": "list",
            "count": count,
            "page": page,
            "per_page": per_page,
            "suggestions": [item.to_dict() for item in items],
        }
    if action == "scene":
        return scene_results(context, _scene_id(args))
    if action == "evidence":
        return evidence(context, _scene_id(args), args.get("times"))
    suggestion_id = required_whole(args, "id", low=1, high=2**62, hint="give the suggestion's id")
    suggestion = queue.get(suggestion_id)
    if suggestion is None:
        raise ConfigError(
            f"id: suggestion {suggestion_id} does not exist; list the suggestions for their ids"
        )
    if suggestion.status != "pending":
        raise ConfigError(f"suggestion {suggestion_id} was already {suggestion.status}")
    if action == "reject":
        queue.decide(suggestion_id, "rejected")
        context.log.info(f"scene {suggestion.scene_id}: suggestion {suggestion.title!r} rejected")
        return {"mode": "review", "action": "reject", "id": suggestion_id, "status": "rejected"}
    if suggestion.kind == "cluster":
        return _accept_cluster(context, queue, suggestion, args)
    return _accept(context, queue, suggestion)


def _review_run(context: RunContext) -> Any:
    """One review action's writing run: (run id, applier), settled after any killed run."""
    return writing_run(context.store, context.client, context.config.tag_parent, context.log.log,
                       context.data_dir, "review")


def _accept_cluster(
    context: RunContext, queue: ReviewQueue, suggestion: Any, args: dict[str, Any]
) -> dict[str, Any]:
    """An unknown person becomes a performer (new, or one the user names) in its scenes."""
    import base64

    from tagger.analyzers import faces_version
    from tagger.faces.recognition import PerformerRecognition
    from tagger.writeback.plan import REVIEW_SOURCE, PerformerChange, ScenePlan

    name = str(args.get("name") or "").strip()
    performer_id = str(args.get("performer_id") or "").strip()
    if bool(name) == bool(performer_id):
        raise ConfigError("accept: give either name (a new performer) or performer_id (an existing one)")
    recognition = PerformerRecognition(
        context.store, context.client, None, context.log.log, model=faces_version()
    )
    cluster_id = int(suggestion.payload["cluster_id"])
    members = recognition.cluster_members(cluster_id)
    with _review_run(context) as (run_id, applier), write_lock(context.data_dir):
        if name:
            crop = recognition.best_crop(members)
            image = ("data:image/jpeg;base64," + base64.b64encode(crop.read_bytes()).decode()
                     if crop else None)
            performer_id = applier.create_performer(name, image)
            context.log.info(f"performer {name!r} created ({performer_id}) "
                             f"from unknown person #{cluster_id}")
        added = []
        for scene_id in dict.fromkeys(scene for _, scene, _ in members):
            scene = context.client.find_scene(scene_id)
            if scene is None or performer_id in scene.performer_ids:
                continue
            change = PerformerChange(
                performer_id, name or performer_id, REVIEW_SOURCE, {"cluster": cluster_id}
            )
            applier.apply(
                ScenePlan(scene.id, add_performers=(change,)),
                reason={"confirmed": True, "suggestion": suggestion.id},
            )
            added.append(scene_id)
        recognition.adopt_cluster(cluster_id, performer_id, name or performer_id, members)
        queue.decide(suggestion.id, "accepted")
    return {
        "mode": "review",
        "action": "accept",
        "id": suggestion.id,
        "status": "accepted",
        "run_id": run_id,
        "performer_id": performer_id,
        "scenes": added,
    }


def _accept(context: RunContext, queue: ReviewQueue, suggestion: Any) -> dict[str, Any]:
    from tagger.writeback.apply import scene_state
    from tagger.writeback.plan import plan_from_suggestion

    with _review_run(context) as (run_id, applier), write_lock(context.data_dir):
        scene = context.client.find_scene(suggestion.scene_id)
        if scene is None:
            queue.decide(suggestion.id, "rejected")
            raise ConfigError(
                f"scene {suggestion.scene_id} no longer exists in Stash; suggestion dropped")
        names = [suggestion.payload["name"]] if suggestion.kind == "tag" else []
        plan = plan_from_suggestion(
            scene_state(scene), suggestion.kind, suggestion.payload, applier.resolve_tags(names)
        )
        applied = applier.apply(plan, reason={"confirmed": True, "suggestion": suggestion.id})
        queue.decide(suggestion.id, "accepted")
    context.log.info(f"scene {suggestion.scene_id}: suggestion {suggestion.title!r} accepted")
    return {
        "mode": "review",
        "action": "accept",
        "id": suggestion.id,
        "status": "accepted",
        "run_id": run_id,
        "applied": applied.to_dict(),
    }


def _scene_id(args: dict[str, Any]) -> str:
    return required_text(args, "scene_id", hint="give the id of the scene")


def scene_results(context: RunContext, scene_id: str) -> dict[str, Any]:
    """What the tagger added to a scene and still owns, with why, and what waits for review."""
    from tagger.writeback.journal import Action, Journal
    from tagger.writeback.plan import owned_on_scene

    entries = Journal(context.store, "").done(scene_id=scene_id)
    owned = owned_on_scene(entries)
    reasons: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        if entry.target and entry.action in (
            Action.ADD_TAG,
            Action.CREATE_MARKER,
            Action.UPDATE_MARKER,
            Action.ADD_PERFORMER,
            Action.SET_STUDIO,
        ):
            reasons[(entry.action.split("_")[-1], entry.target)] = {
                **(entry.reason or {}),
                "run_id": entry.run_id,
            }
    _, pending = ReviewQueue(context.store).list(scene_id=scene_id, per_page=MAX_PER_PAGE)
    return {
        "mode": "review",
        "action": "scene",
        "scene_id": scene_id,
        "tags": [
            {"id": t.tag_id, "name": t.name, "source": t.source, "confirmed": t.confirmed,
             **reasons.get(("tag", t.tag_id), {})}
            for t in owned.tags.values()
        ],
        "markers": [
            {
                "id": m.marker_id,
                "title": m.state.title,
                "seconds": m.state.seconds,
                "end_seconds": m.state.end_seconds,
                "tag": m.tag_name,
                "source": m.source,
                **reasons.get(("marker", m.marker_id), {}),
            }
            for m in owned.markers.values()
        ],
        "performers": [
            {
                "id": p.tag_id,
                "name": p.name,
                "confirmed": p.confirmed,
                **reasons.get(("performer", p.tag_id), {}),
            }
            for p in owned.performers.values()
        ],
        "studio": (
            {
                "id": owned.studio.studio_id,
                "confirmed": owned.studio.confirmed,
                **reasons.get(("studio", owned.studio.studio_id), {}),
            }
            if owned.studio
            else None
        ),
        "suggestions": [item.to_dict() for item in pending],
    }


MAX_EVIDENCE_FRAMES = 8
EVIDENCE_WIDTH = 240


def evidence(context: RunContext, scene_id: str, times: Any) -> dict[str, Any]:
    """Small JPEG frames of the scene at ``times`` (the frames behind a decision), as data URLs."""
    import base64

    import cv2

    from tagger.media.seek import decode_at, thumb_size
    from tagger.media.video import probe
    from tagger.stashside.stash import media_source

    wanted = _evidence_times(times)
    scene = context.client.find_scene(scene_id)
    if scene is None:
        raise ConfigError(f"scene {scene_id} does not exist in Stash")
    source = media_source(scene, context.config.map_path, context.client.auth_headers)
    try:
        info = probe(source.location, http_headers=source.headers or None)
        for t in wanted:
            if t > info.duration:
                raise ConfigError(f"times: {t!r} is past the end of the scene ({info.duration:.1f} s)")
        images = decode_at(source.location, info, wanted, thumb_size(info, EVIDENCE_WIDTH),
                           http_headers=source.headers or None)
    except MediaError as error:
        raise MediaError(source.read_failed(error)) from None
    frames = []
    for t in wanted:
        image = images.get(t)
        if image is None:
            continue
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            frames.append(
                {"time": t, "image": "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()}
            )
    return {"mode": "review", "action": "evidence", "scene_id": scene_id, "frames": frames}


def _evidence_times(times: Any) -> list[float]:
    """The seconds asked for, checked before any video is opened (a time like 1e19 would overflow
    the decoder's seek)."""
    if not isinstance(times, list) or not times or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) for t in times
    ):
        raise ConfigError("times: give a list of seconds, e.g. [3.5, 10]")
    if len(times) > MAX_EVIDENCE_FRAMES:
        raise ConfigError(f"times: {len(times)} times given; at most {MAX_EVIDENCE_FRAMES} at once")
    for t in times:
        if not math.isfinite(t):
            raise ConfigError(f"times: {t!r} is not a finite number of seconds")
        if t < 0:
            raise ConfigError(f"times: {t!r} is before the start of the scene")
    return [round(float(t), 6) for t in times]
