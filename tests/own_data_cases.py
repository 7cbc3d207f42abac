"""The config README "Your own data" tells a user to write, for the engine tests."""
import os


def write_user_config(path, base, dataset_root, extra=""):
    """`path` (a pathlib.Path) gets a config with `base` (absolute path of a shipped config) as its _BASE_, two
    classes and COCO dataset sections reading ``<dataset_root>/images`` and ``annotations/instances.json``;
    `extra` (YAML text) is appended. Returns the path as str."""
    root = str(dataset_root)
    path.write_text(f"""_BASE_: ['{base}']
num_classes: 2
TrainDataset:
  name: COCODataSet
  dataset_dir: {root}
  image_dir: images
  anno_path: annotations/instances.json
  data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']
EvalDataset:
  name: COCODataSet
  dataset_dir: {root}
  image_dir: images
  anno_path: annotations/instances.json
  allow_empty: true
TestDataset:
  name: ImageFolder
  anno_path: {os.path.join(root, 'annotations', 'instances.json')}
{extra}""")
    return str(path)
