"""``mode: review``: the review queue's API for the UI, through ``runPluginOperation``.

    {"mode": "review", "action": "list", "scene_id"?: "12", "status"?: "pending", "page"?: 1, "per_page"?: 25}
    {"mode": "review", "action": "accept", "id": 7}   applied (journaled, confirmed by the user)
    {"mode": "review", "action": "reject", "id": 7}   never suggested again for that scene
    {"mode": "review", "action": "accept", "id": 9, "name": "New Name"}    an unknown person
        (kind ``cluster``) becomes a new performer, with its best face crop as image, added to
        its scenes; or ``"performer_id": "12"`` links it to an existing performer. Either way its
        faces join that performer's gallery.

It runs beside a tagging task (it does not take the run lock); an accept takes the write lock for
the second it needs, as every change to Stash does.
"""

from __future__ import annotations

from typing import Any

from tagger.errors import ConfigError
from tagger.review import ReviewQueue
from tagger.tasks import RunContext, write_lock

ACTIONS = ("list", "accept", "reject")
MAX_PER_PAGE = 200


def review(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Answer one review request (see the module's docstring)."""
    action = str(args.get("action") or "list")
    if action not in ACTIONS:
        raise ConfigError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    queue = ReviewQueue(context.store)
    if action == "list":
        page = _whole(args, "page", 1, 1, 10**9)
        per_page = _whole(args, "per_page", 25, 1, MAX_PER_PAGE)
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
    suggestion_id = _whole(args, "id", None, 1, 2**62)
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


def _accept_cluster(
    context: RunContext, queue: ReviewQueue, suggestion: Any, args: dict[str, Any]
) -> dict[str, Any]:
    """An unknown person becomes a performer (new, or one the user names) in its scenes."""
    import base64

    from tagger.analyzers import faces_version
    from tagger.apply import Applier, scene_state
    from tagger.journal import Journal
    from tagger.performers import PerformerRecognition
    from tagger.plan import REVIEW_SOURCE, PerformerChange, ScenePlan

    name = str(args.get("name") or "").strip()
    performer_id = str(args.get("performer_id") or "").strip()
    if bool(name) == bool(performer_id):
        raise ConfigError("accept: give either name (a new performer) or performer_id (an existing one)")
    recognition = PerformerRecognition(
        context.store, context.client, None, context.log.log, model=faces_version()
    )
    gallery = recognition.gallery
    assert gallery is not None
    cluster_id = int(suggestion.payload["cluster_id"])
    members = recognition.cluster_members(cluster_id)
    run_id = context.store.start_run("review")
    applier = Applier(
        context.client, Journal(context.store, run_id), context.config.tag_parent, context.log.log
    )
    with write_lock(context):
        applier.reconcile()
        if name:
            crops = [recognition.crop_path(key) for key, _, _ in members]
            crop = next((path for path in crops if path.is_file()), None)
            image = (
                ("data:image/jpeg;base64," + base64.b64encode(crop.read_bytes()).decode()) if crop else None
            )
            performer_id = context.client.create_performer(name, image)
            context.log.info(f"performer {name!r} created ({performer_id}) from unknown person #{cluster_id}")
        scenes = list(dict.fromkeys(scene for _, scene, _ in members))
        added = []
        for scene_id in scenes:
            scene = context.client.find_scene(scene_id)
            if scene is None or performer_id in scene.performer_ids:
                continue
            change = PerformerChange(
                performer_id, name or performer_id, REVIEW_SOURCE, {"cluster": cluster_id}
            )
            applier.apply(
                ScenePlan(scene_state(scene).id, add_performers=(change,)),
                reason={"confirmed": True, "suggestion": suggestion.id},
            )
            added.append(scene_id)
        gallery.set_faces(
            performer_id,
            f"cluster:{cluster_id}",
            [vector for _, _, vector in members],
            [1.0] * len(members),
            name=name or performer_id,
        )
        with context.store.transaction() as db:
            db.execute("DELETE FROM unknown_faces WHERE cluster_id = ?", (cluster_id,))
        queue.decide(suggestion.id, "accepted")
    context.store.finish_run(run_id, "done")
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
    from tagger.apply import Applier, scene_state
    from tagger.journal import Journal
    from tagger.plan import plan_from_suggestion

    run_id = context.store.start_run("review")
    applier = Applier(
        context.client, Journal(context.store, run_id), context.config.tag_parent, context.log.log
    )
    with write_lock(context):
        applier.reconcile()
        scene = context.client.find_scene(suggestion.scene_id)
        if scene is None:
            queue.decide(suggestion.id, "rejected")
            context.store.finish_run(run_id, "done")
            raise ConfigError(f"scene {suggestion.scene_id} no longer exists in Stash; suggestion dropped")
        names = [suggestion.payload["name"]] if suggestion.kind == "tag" else []
        plan = plan_from_suggestion(
            scene_state(scene), suggestion.kind, suggestion.payload, applier.resolve_tags(names)
        )
        applied = applier.apply(plan, reason={"confirmed": True, "suggestion": suggestion.id})
        queue.decide(suggestion.id, "accepted")
    context.store.finish_run(run_id, "done")
    context.log.info(f"scene {suggestion.scene_id}: suggestion {suggestion.title!r} accepted")
    return {
        "mode": "review",
        "action": "accept",
        "id": suggestion.id,
        "status": "accepted",
        "run_id": run_id,
        "applied": applied.to_dict(),
    }


def _whole(args: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int:
    value = args.get(key)
    if value in (None, ""):
        if default is None:
            raise ConfigError(f"{key}: missing; give the suggestion's id")
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(f"{key}: {value!r} is out of range; allowed: {low}..{high}")
    return number
