"""Box geometry shared by the decisions: boxes are (x, y, w, h) in pixels of the analysed frame."""

from __future__ import annotations

Box = tuple[float, float, float, float]
"""(x, y, w, h): top-left corner, width and height."""


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: Box, b: Box) -> float:
    """Distance between the centres of two boxes."""
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    return float((dx * dx + dy * dy) ** 0.5)
