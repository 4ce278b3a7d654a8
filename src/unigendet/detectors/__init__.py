"""Trained real/fake detectors, one module per family, one registry of kinds (`base.py`).

`load_detector(run_dir)` rebuilds any kind; `Detector.save_pretrained(run_dir)` writes one.
Importing this package registers every family.
"""

from .base import (
    DETECTORS,
    CropScorer,
    CropScores,
    Detector,
    Explainer,
    FeatureCaching,
    Generator,
    PathList,
    load_detector,
    read_run_config,
    use_feature_cache,
)
from .cnn import CNNImageDetector, cnn_from_backbone
from .ensemble import EnsembleDetector
from .features import FeatureDetector, GenDetDetector, LinearProbeDetector, OneClassDetector
from .forensic import ForensicDetector, crop_boxes, tile_boxes
from .npr import NPRDetector
from .recon import ReconDetector
from .unigendet import UniGenDetDetector

__all__ = ["DETECTORS", "CNNImageDetector", "CropScorer", "CropScores", "Detector", "EnsembleDetector", "Explainer",
           "FeatureCaching", "FeatureDetector", "ForensicDetector", "GenDetDetector", "Generator",
           "LinearProbeDetector", "NPRDetector", "OneClassDetector", "PathList", "ReconDetector", "UniGenDetDetector",
           "cnn_from_backbone", "crop_boxes", "load_detector", "read_run_config", "tile_boxes", "use_feature_cache"]
