"""Experiments on residual vs plain networks; each returns plain data, ``nnscratch.plot`` draws it.

- :func:`gradient_flow` / :func:`regimes`: per-layer gradient norms at initialisation,
  with and without batch norm, for several initialisations (the three regimes);
- :func:`degradation`: deeper plain nets train worse, residual ones do not;
- :func:`lesion` / :func:`lesion_study`: delete one block at test time;
- :func:`paths_study` / :func:`gradient_by_path_length` / :func:`sum_over_paths` /
  :func:`delete_blocks` / :func:`reorder_blocks`: a residual net as an ensemble of
  2^n paths; the gradient each path length carries, deleting and swapping blocks;
- :func:`shattered_gradients` / :func:`shattered_study`: the input gradient along a line
  of inputs decorrelates (white noise) in deep plain nets, not in residual ones, measured
  by :func:`autocorrelation` and :func:`gradient_correlation`.

:func:`build_model` builds the twins and :func:`with_activation` swaps every ReLU of a
built model for tanh or sigmoid (:mod:`.networks`); :func:`load_splits` and
:func:`fixed_batch` give the data (:mod:`.datasets`); :func:`train_steps` trains for a
budget of steps (:mod:`.short_training`); :func:`to_jsonable` / :func:`save_json` /
:func:`save_csv` store results (:mod:`.results`).
"""

from nnscratch.experiments.datasets import fixed_batch, load_splits
from nnscratch.experiments.degradation import degradation
from nnscratch.experiments.gradflow import (
    DEFAULT_MODELS,
    DEFAULT_REGIMES,
    REGIMES,
    format_table,
    gradient_flow,
    regimes,
)
from nnscratch.experiments.lesion import BranchRemoved, lesion, lesion_study
from nnscratch.experiments.networks import ACTIVATIONS, build_model, with_activation
from nnscratch.experiments.paths import (
    delete_blocks,
    gradient_by_path_length,
    path_length_distribution,
    paths_study,
    reorder_blocks,
    sum_over_paths,
)
from nnscratch.experiments.results import save_csv, save_json, to_jsonable
from nnscratch.experiments.shattered import (
    autocorrelation,
    format_shattered_table,
    gradient_correlation,
    shattered_gradients,
    shattered_study,
)
from nnscratch.experiments.short_training import train_steps

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_MODELS",
    "DEFAULT_REGIMES",
    "REGIMES",
    "BranchRemoved",
    "autocorrelation",
    "build_model",
    "degradation",
    "delete_blocks",
    "fixed_batch",
    "format_shattered_table",
    "format_table",
    "gradient_by_path_length",
    "gradient_correlation",
    "gradient_flow",
    "lesion",
    "lesion_study",
    "load_splits",
    "path_length_distribution",
    "paths_study",
    "regimes",
    "reorder_blocks",
    "save_csv",
    "save_json",
    "shattered_gradients",
    "shattered_study",
    "sum_over_paths",
    "to_jsonable",
    "train_steps",
    "with_activation",
]
