"""Decisions from detections: pure functions, tested without models, video or Stash.

``rules`` (what to tag, with which thresholds), ``segments`` (per-frame scores to time spans),
``tags`` (scene tags and markers), ``text`` (OCR readings to on-screen text spans), ``studio``
(text spans to a studio) and ``faces`` (face detections to tracks). Nothing here imports a model,
a decoder or OpenCV: re-tagging with new thresholds re-runs only these, from cached detections.
"""
