"""The RobustBench bridge: zoo models by name from a local model_dir, evaluated, costed and written as
RobustBench ``model_info`` JSON extended with the cost.

    from robustperf.zoo import load_zoo_model
    model = load_zoo_model("Carmon2019Unlabeled", model_dir="models")        # cifar10 / Linf
    robustperf.evaluate(model, x, y, eps=8 / 255)
"""

from robustperf.zoo.catalog import ZOO, ZooEntry, find_entry
from robustperf.zoo.cost import EvaluationCost, evaluate_with_cost, static_cost
from robustperf.zoo.download import ZooDownloadError
from robustperf.zoo.load import checkpoint_path, load_zoo_model
from robustperf.zoo.model_info import CostFields, Paper, model_info, write_model_info

__all__ = ["ZOO", "CostFields", "EvaluationCost", "Paper", "ZooDownloadError", "ZooEntry", "checkpoint_path",
           "evaluate_with_cost", "find_entry", "load_zoo_model", "model_info", "static_cost", "write_model_info"]
