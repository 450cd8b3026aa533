"""Training, evaluation and checkpoints: ``train(TrainConfig(...))`` runs a whole job."""

from nnscratch.training.checkpoint import load_checkpoint, load_weights, save_checkpoint
from nnscratch.training.config import TrainConfig
from nnscratch.training.evaluation import Evaluation, evaluate, extract_features
from nnscratch.training.trainer import TrainingDiverged, TrainingInterrupted, train

__all__ = [
    "Evaluation",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "evaluate",
    "extract_features",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "train",
]
