"""`SyntheticCOCODataSet`: ppdet's COCODataSet over the built-in synthetic dataset, generated on first use.

A YAML names it like any ppdet dataset::

    TrainDataset:
      name: SyntheticCOCODataSet
      dataset_dir: dataset/synthetic
      split: train
      num_images: 256
      image_size: 256
      data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']

``image_dir`` / ``anno_path`` default to the generator's layout (``images/<split>``,
``annotations/<split>.json``). The files are written before ppdet first needs them (``get_anno`` for the COCO
metric, ``check_or_download_dataset`` / ``parse_dataset`` for the reader), never downloaded.
"""
import os

from ppdet.core.workspace import serializable
from ppdet.data.source.coco import COCODataSet

from .synthetic import dataset_paths, make_synthetic_coco


@serializable
class SyntheticCOCODataSet(COCODataSet):
    """COCODataSet whose files come from `ppassign.data.make_synthetic_coco`.

    Args (beyond COCODataSet's):
        split (str): which split to generate/load; also mixed into the seed.
        num_images, image_size, seed, min_object_size, max_objects, num_clutter: the generator's parameters
            (see `make_synthetic_coco`); changing any of them regenerates the files.
    """

    def __init__(self,
                 dataset_dir="dataset/synthetic",
                 image_dir=None,
                 anno_path=None,
                 data_fields=("image",),
                 sample_num=-1,
                 load_crowd=False,
                 allow_empty=False,
                 empty_ratio=1.,
                 repeat=1,
                 split="train",
                 num_images=64,
                 image_size=256,
                 seed=0,
                 min_object_size=6,
                 max_objects=10,
                 num_clutter=6):
        super().__init__(dataset_dir=dataset_dir, image_dir=image_dir, anno_path=anno_path,
                         data_fields=data_fields, sample_num=sample_num, load_crowd=load_crowd,
                         allow_empty=allow_empty, empty_ratio=empty_ratio, repeat=repeat)
        # Plain attributes, read at generation time, so that `-o TrainDataset.num_images=8` style overrides
        # applied to the constructed object take effect.
        self.auto_paths = image_dir is None and anno_path is None
        self.split = split
        self.num_images = num_images
        self.image_size = image_size
        self.seed = seed
        self.min_object_size = min_object_size
        self.max_objects = max_objects
        self.num_clutter = num_clutter
        if self.auto_paths:
            self._set_default_paths()
        elif image_dir is None or anno_path is None:
            raise ValueError("image_dir and anno_path must be given together or both left out, got "
                             f"image_dir={image_dir!r}, anno_path={anno_path!r}")

    def _set_default_paths(self):
        self.image_dir, self.anno_path = (os.path.relpath(p, os.path.abspath(self.dataset_dir))
                                          for p in dataset_paths(self.dataset_dir, self.split))

    def generate(self):
        """Write the split's files if missing or stale; returns absolute (image_dir, anno_json)."""
        if self.auto_paths:
            self._set_default_paths()
        image_dir, anno_json = make_synthetic_coco(
            self.dataset_dir, split=self.split, num_images=self.num_images, image_size=self.image_size,
            seed=self.seed, min_object_size=self.min_object_size, max_objects=self.max_objects,
            num_clutter=self.num_clutter)
        root = os.path.abspath(self.dataset_dir)
        given = (os.path.normpath(os.path.join(root, self.image_dir)),
                 os.path.normpath(os.path.join(root, self.anno_path)))
        if given != (image_dir, anno_json):
            raise ValueError(f"image_dir/anno_path must match the generated split ({image_dir}, {anno_json}) "
                             f"or be left out, got {self.image_dir!r}, {self.anno_path!r}")
        return image_dir, anno_json

    def check_or_download_dataset(self):
        self.generate()

    def get_anno(self):
        return self.generate()[1]

    def parse_dataset(self):
        self.generate()
        super().parse_dataset()
