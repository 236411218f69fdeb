"""Data: data sets (digits, CIFAR-10/100, image folders, synthetic .npz/.npy, random), resumable samplers,
on-device augmentation and the mixed real + synthetic training loader."""

from robustperf.data.augment import AUGMENTATIONS, augment, crop_flip
from robustperf.data.bundle import DataBundle, build_data, check_data, eval_tensors
from robustperf.data.datasets import ArrayDataset, DataError, FolderDataset, to_unit
from robustperf.data.loader import TrainLoader, make_train_loader
from robustperf.data.samplers import EpochSampler, SinglePassSampler, derive_seed
from robustperf.data.sources import DATASETS, Source, load_synthetic

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "ArrayDataset",
    "DataBundle",
    "DataError",
    "EpochSampler",
    "FolderDataset",
    "SinglePassSampler",
    "Source",
    "TrainLoader",
    "augment",
    "build_data",
    "check_data",
    "crop_flip",
    "derive_seed",
    "eval_tensors",
    "load_synthetic",
    "make_train_loader",
    "to_unit",
]
