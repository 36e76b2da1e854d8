"""The ``gallery`` mode: the performer face gallery from Stash's performer images, and the unknown
faces of tagged scenes grouped into suggested performers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tagger import families
from tagger.analyzers import build_analyzers
from tagger.errors import ConfigError
from tagger.faces.recognition import PerformerRecognition
from tagger.run.context import RunContext


def gallery(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Build or refresh the performer face gallery from Stash's performer images, then group the
    unknown faces of tagged scenes into suggested performers."""
    if families.FACES not in context.config.analyzers:
        raise ConfigError(
            "analyzers: 'faces' is off, so there is no face gallery; add faces to the analyzers"
        )
    context.client.use_api_key_if_set()
    (faces,) = build_analyzers(
        replace(context.config, analyzers=(families.FACES,)), context.data_dir, context.log.log
    )
    recognition = PerformerRecognition(context.store, context.client, faces, context.log.log)
    with context.store.recorded_run("gallery") as run_id:
        report = recognition.refresh(lambda f: context.log.progress(0.9 * f))
        assert report is not None
        clusters = recognition.cluster_unknown(run_id)
    context.log.progress(1.0)
    embeddings = len(recognition.index())
    context.log.info(
        f"face gallery: {report.performers} performer(s), {embeddings} face(s); "
        f"{len(report.updated)} updated, {len(report.problems)} problem(s); "
        f"{clusters} unknown person(s) suggested"
    )
    return {
        "mode": "gallery",
        "run_id": run_id,
        **report.to_dict(),
        "embeddings": embeddings,
        "unknown_people": clusters,
    }
