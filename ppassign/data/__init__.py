"""Built-in data for ppassign: a seeded synthetic COCO-format detection dataset and its ppdet dataset class."""
from .synthetic import CLASS_NAMES, make_synthetic_coco
from .synthetic_dataset import SyntheticCOCODataSet
