"""``mode: review``: the review queue's API for the UI, through ``runPluginOperation``.

    {"mode": "review", "action": "list", "scene_id"?: "12", "status"?: "pending", "page"?: 1, "per_page"?: 25}
    {"mode": "review", "action": "accept", "id": 7}   applied (journaled, confirmed by the user)
    {"mode": "review", "action": "reject", "id": 7}   never suggested again for that scene

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
    return _accept(context, queue, suggestion)


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
