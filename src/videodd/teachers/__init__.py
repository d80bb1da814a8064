"""Teachers: every network trained on the real data, trained by the one training loop, saved as
safetensors with a manifest that fingerprints the store, and reused across runs.

- :mod:`.experts`: expert trajectories for trajectory matching (``videodd experts``);
- :mod:`.classifier`: a classifier teacher (batch norm allowed; ``videodd teacher``);
- :mod:`.features`: the feature network of herding and k-center (a classifier teacher).
"""

from videodd.teachers.base import TeacherError, embed_all, load_network, save_network, store_identity
from videodd.teachers.classifier import ClassifierConfig, load_classifier, save_classifier, train_classifier
from videodd.teachers.experts import ExpertBuffer, ExpertConfig, ExpertError, train_experts
from videodd.teachers.features import FeatureOptions, feature_network, store_features

__all__ = ["ClassifierConfig", "ExpertBuffer", "ExpertConfig", "ExpertError", "FeatureOptions", "TeacherError",
           "embed_all", "feature_network", "load_classifier", "load_network", "save_classifier", "save_network",
           "store_features", "store_identity", "train_classifier", "train_experts"]
