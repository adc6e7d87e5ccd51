"""The catalog of metaloss-vision's recipes: what the launcher needs before it imports one.

Each recipe's ``Recipe`` (entry-point group ``metaloss.recipes``): its name,
description, default config (the YAML beside its code in
``metaloss/vision/recipes/``), config schema and a reference to its ``main``.
``tools/run.py`` checks a config against the schema before it imports the
recipe: ``import metaloss.vision`` brings in timm and torchvision (seconds),
and a bad value should fail at once. So this package imports only
metaloss-core and pydantic; the names the recipes choose from (methods,
datasets, noise kinds) live here and the recipes read them from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from metaloss.core.harness import Recipe, open_run
from metaloss.core.harness.schema import (
    AMALSettings,
    Field,
    L2TDLNSettings,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Rate,
    RecipeConfig,
    Section,
    Seed,
    Seeds,
    SGDSection,
    model_validator,
    names_from,
)

DATASETS = ("cifar10", "cifar100", "svhn", "fashion_mnist", "stanford_cars", "fgvc_aircraft")
# vision.noise's generators by name (corrupt_labels); asymmetric is CIFAR-10's class map
NOISE_KINDS = ("symmetric", "pair", "asymmetric", "two_similar", "instance")
# method -> (which guides, how they are mixed)
METHODS = {
    "ce": ("none", "none"),
    "kd": ("teacher", "fixed"),
    "amal": ("teacher", "amal"),
    "amal_early": ("snapshots", "amal"),
    "amal_multi": ("all", "amal"),
    "takd": ("chain", "fixed"),
    "dgkd": ("dense", "dropout"),
    "dgkd_amal": ("dense", "amal"),
    "self_kd": ("self", "fixed"),
    "self_amal": ("self", "amal"),
}
# kd_digits: method -> how CE on the label and KD from the teacher are mixed
KD_DIGITS_MIXING = {"ce": "none", "kd": "fixed", "amal": "amal"}
# noisy_labels: method -> whether it learns from the clean meta set
NOISY_METHODS = {"ce": False, "gce": False, "coteaching": False, "l2rw": True, "mwnet": True,
                 "confident_learning": False, "dml": False, "dml_2nd": False,
                 "dln": True, "dln_dr": True, "l2t_dln": True, "l2t_dln_dr": True}
SIMILARITY_METRICS = ("snr", "cosine", "dot", "minkowski")  # core's similarity_weights metrics
HYPERGRADIENT_MODES = ("exact", "first_order", "last_layer", "finite_difference")  # core's MODES
# What a config can be checked against before any image is read
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "fashion_mnist": 10, "stanford_cars": 196,
               "fgvc_aircraft": 100}
TRAIN_SIZES = {"cifar10": 50000, "cifar100": 50000, "svhn": 73257, "fashion_mnist": 60000,
               "stanford_cars": 8144, "fgvc_aircraft": 6667}
WDUE_METHODS = ("unweighted", "weighted", "fidelity", "composition", "oracle_filter")
CORESET_STRATEGIES = ("lambda_sq", "lambda_diff", "lambda_ratio", "random")

DatasetName = Literal[DATASETS]
NoiseKind = Literal[NOISE_KINDS]
NoiseRate = Rate
Arch = Annotated[str, Field(min_length=1)]


class CosineSGD(SGDSection):
    schedule: Literal["cosine"] = Field(description="cosine decay of the learning rate over the epochs")


class ScheduledSGD(SGDSection):
    schedule: Literal["cosine", "multistep"] = Field(description="cosine decay, or x gamma at milestones")
    milestones: list[PositiveInt] = Field(description="epochs of the student's schedule where multistep "
                                                      "multiplies the lr by gamma (stretched for others)")
    gamma: Annotated[float, Field(gt=0, le=1)] = Field(description="multistep's lr factor")

    @model_validator(mode="after")
    def _increasing(self):
        if self.milestones != sorted(self.milestones):
            raise ValueError(f"optim.milestones must be increasing epochs, got {self.milestones}")
        return self


class AMALSection(AMALSettings):
    lr: PositiveFloat = Field(description="learning rate of the lambdas")
    unit: Literal["epoch", "step"] = Field(description="what `every` counts")


def teacher_seed(cfg: dict, seed: int) -> int:
    """The seed of the teacher that serves students of ``seed``: its own, or the one shared teacher.

    ``teacher.seed`` (an int) trains the teacher once and lets it serve every student seed.
    """
    return seed if cfg["teacher"]["seed"] is None else cfg["teacher"]["seed"]


def check_shared_teacher(teacher_seed: int | None, split_seed: int | None) -> None:
    """One teacher for every seed is only sound with one train/validation split for every seed."""
    if teacher_seed is not None and split_seed is None:
        raise ValueError("teacher.seed (one teacher for every seed) needs data.split_seed: with a split "
                         "per seed, the shared teacher would have trained on other seeds' validation images")


def check_noise_dataset(kind: str, dataset: str) -> None:
    """Asymmetric noise is CIFAR-10's class map (Patrini et al. 2017); elsewhere it would be meaningless."""
    if kind == "asymmetric" and dataset != "cifar10":
        raise ValueError(f"asymmetric noise is CIFAR-10's class map; with {dataset} "
                         "use 'pair' or 'two_similar'")


class DistillationData(Section):
    name: DatasetName = Field(description="the image dataset")
    root: str | None = Field(description="data folder; null: $METALOSS_DATA, else the online download")
    train_limit: NonNegativeInt = Field(description="keep the first N training images (0: all)")
    val_size: NonNegativeInt = Field(description="validation images split off train (0: 10%)")
    test_limit: NonNegativeInt = Field(description="keep the first N test images (0: all)")
    label_noise: NoiseRate = Field(description="rate of corrupted training labels, in [0, 1) (0: clean)")
    noise: NoiseKind = Field(description="how labels are corrupted")
    split_seed: Seed | None = Field(description="null: each seed its own train/validation split; "
                                                "an int: one split for every seed")
    workers: NonNegativeInt = Field(description="DataLoader worker processes")


class TeacherSection(Section):
    arch: Arch = Field(description="any timm name; the CIFAR models are registered by metaloss.vision")
    epochs: PositiveInt = Field(description="training epochs (before schedule_scale)")
    snapshot_epochs: list[PositiveInt] = Field(description="save the teacher after these epochs "
                                                           "(the early-stopped teachers of amal_early)")
    from_run: str = Field(description="a train_teacher run folder to take the teacher (and snapshots) from")
    seed: Seed | None = Field(description="null: a teacher per seed; an int: one teacher for every seed "
                                          "(needs data.split_seed)")
    labels: Literal["noisy", "clean"] = Field(description="noisy: the students' training labels; "
                                                          "clean: the uncorrupted ones")


class StudentSection(Section):
    arch: Arch = Field(description="the student's timm name")
    epochs: PositiveInt = Field(description="training epochs (before schedule_scale)")


class KDSection(Section):
    tau: PositiveFloat = Field(description="distillation temperature")
    lambda_a: Probability = Field(description="KD's fixed mix: (1 - lambda_a) CE + lambda_a KD")
    cache_guides: bool = Field(description="true: guide logits once on un-augmented images (cheap on CPU, "
                                           "not the paper's online KD)")


class DGKDSection(Section):
    drop_prob: Annotated[float, Field(ge=0, lt=1)] = Field(description="each guide dropped per mini-batch "
                                                                       "with this probability (>= 1 kept)")


class DistillationAMAL(AMALSection):
    normalize: bool = Field(description="true: project each example's lambdas to sum to 1")


class DistillationConfig(RecipeConfig):
    """The ``kd`` and ``train_teacher`` recipes' config (``kd.yaml``)."""

    output_dir: str = Field(description="folder that holds the run folders")
    seeds: Seeds = Field(description="one student (and data split) per seed")
    methods: names_from(METHODS) = Field(description=f"students to train, from {list(METHODS)}")
    data: DistillationData
    teacher: TeacherSection
    student: StudentSection
    assistants: list[Arch] = Field(description="teaching assistants, largest first (takd, dgkd, amal_multi)")
    optim: ScheduledSGD
    schedule_scale: Annotated[float, Field(gt=0, le=1)] = Field(
        description="multiplies every epoch count (and L in epochs), for CPU runs")
    kd: KDSection
    dgkd: DGKDSection
    amal: DistillationAMAL

    @model_validator(mode="after")
    def _consistent(self):
        check_shared_teacher(self.teacher.seed, self.data.split_seed)
        check_noise_dataset(self.data.noise, self.data.name)
        kinds = {METHODS[m][0] for m in self.methods}
        if kinds & {"all", "chain", "dense"} and not self.assistants:
            raise ValueError("assistants: takd, dgkd, dgkd_amal and amal_multi need at least one assistant")
        if "snapshots" in kinds and not self.teacher.snapshot_epochs:
            raise ValueError("teacher.snapshot_epochs: amal_early needs the early-stopped teachers' epochs")
        if self.teacher.from_run:
            check_teacher_source(self.model_dump())
        return self


class TeacherOnlyConfig(DistillationConfig):
    """The ``train_teacher`` recipe's config: ``kd.yaml``, training the teacher itself."""

    @model_validator(mode="before")
    @classmethod
    def _trains_the_teacher(cls, data):
        # before the fields: else the parent's check of the source run would speak first
        teacher = data.get("teacher") if isinstance(data, dict) else None
        if isinstance(teacher, dict) and teacher.get("from_run"):
            raise ValueError("teacher.from_run: train_teacher trains a teacher; leave it empty")
        return data


def check_teacher_source(cfg: dict) -> None:
    """A teacher reused from another run must have learnt from the same data, schedule and seeds."""
    try:
        source = open_run(cfg["teacher"]["from_run"])
    except FileNotFoundError as err:
        raise ValueError(f"teacher.from_run: {err}") from None
    saved = source.config
    missing = [k for k in ("data", "teacher", "optim", "schedule_scale", "seeds") if k not in saved]
    if missing:
        raise ValueError(f"teacher.from_run: {source.dir} is not a kd or train_teacher run (its config has "
                         f"no {missing})")
    mine = {**cfg["teacher"], "from_run": ""}
    data_now, data_then = dict(cfg["data"]), dict(saved["data"])
    if cfg["teacher"]["labels"] == "clean":  # the teacher never saw the student's label noise
        for key in ("label_noise", "noise"):
            data_now.pop(key), data_then.pop(key)
    for key, then, now in (("data", data_then, data_now), ("teacher", saved["teacher"], mine),
                           ("optim", saved["optim"], cfg["optim"]),
                           ("schedule_scale", saved["schedule_scale"], cfg["schedule_scale"])):
        if then != now:
            raise ValueError(f"teacher.from_run: the run in {source.dir} has {key} = {then!r}, "
                             f"this run {now!r}")
    seeds = sorted({teacher_seed(cfg, s) for s in cfg["seeds"]})
    missing = [s for s in seeds if not source.unit("teacher", s).done]
    if missing:
        raise ValueError(f"teacher.from_run: the run in {source.dir} has no finished teacher "
                         f"for seeds {missing}")



class DigitsData(Section):
    teacher_train: PositiveInt = Field(description="images the teacher learns from")
    student_train: PositiveInt = Field(description="images the student learns from (labels + teacher)")
    val: PositiveInt = Field(description="model selection and AMAL's meta-objective; the rest is test")
    label_noise: NoiseRate = Field(description="symmetric noise on the student's training labels, in [0, 1)")


class MLPSection(Section):
    hidden: PositiveInt = Field(description="units per hidden layer")
    depth: PositiveInt = Field(description="hidden layers")
    dropout: NoiseRate = Field(description="dropout probability, in [0, 1)")
    epochs: PositiveInt = Field(description="training epochs")


class DigitsKD(Section):
    tau: PositiveFloat = Field(description="distillation temperature")
    lambda_a: Probability = Field(description="KD's fixed mix: (1 - lambda_a) CE + lambda_a KD")


class KDDigitsConfig(RecipeConfig):
    output_dir: str = Field(description="folder that holds the run folders")
    seeds: Seeds = Field(description="one split, noise draw, teacher and student per seed")
    methods: names_from(KD_DIGITS_MIXING) = Field(
        description=f"students to train, from {list(KD_DIGITS_MIXING)}")
    data: DigitsData
    teacher: MLPSection
    student: MLPSection
    optim: SGDSection
    kd: DigitsKD
    amal: AMALSection




class WdueData(Section):
    name: DatasetName = Field(description="the image dataset")
    root: str | None = Field(description="data folder; null: $METALOSS_DATA, else the online download")
    labeled: PositiveInt = Field(description="N: S_l (the first N + val_size training images, less V)")
    val_size: PositiveInt = Field(description="|V|: validation images, the k-NN's training set")
    unlabeled: PositiveInt = Field(description="S_u: the next training images after S_l and V")
    test_limit: NonNegativeInt = Field(description="keep the first N test images (0: all)")
    split_seed: Seed | None = Field(description="null: each seed its own S_l / V split; an int: one for all")
    workers: NonNegativeInt = Field(description="DataLoader worker processes")


class WdueTeacher(Section):
    arch: Arch = Field(description="the teacher's timm name")
    epochs: PositiveInt = Field(description="training epochs on S_l")
    seed: Seed | None = Field(description="null: a teacher per seed; an int: one teacher for every seed "
                                          "(needs data.split_seed)")


class WdueStudent(Section):
    arch: Arch = Field(description="the student's timm name")
    epochs: PositiveInt = Field(description="pretraining epochs on S_l")
    distill_epochs: PositiveInt = Field(description="step 4's epochs, on S_l and S_u")


class WdueDistill(Section):
    labels: Literal["hard", "soft"] = Field(description="hard: the teacher's argmax; soft: its softmax "
                                                        "at `temperature`")
    temperature: PositiveFloat = Field(description="the teacher's softmax temperature")


class WdueWeights(Section):
    k: NonNegativeInt = Field(description="neighbours of the k-NN (0: ceil(sqrt(|V|) / 2))")
    confidence: Literal["margin", "entropy"] = Field(description="the confidence the k-NN reads")
    every_epoch: bool = Field(description="false: once, from the pretrained student; true: before every "
                                          "epoch (weighted, composition)")


class WdueConfig(RecipeConfig):
    output_dir: str = Field(description="folder that holds the run folders")
    seeds: Seeds = Field(description="one split, teacher, pretrained student and step 4 per seed")
    methods: names_from(WDUE_METHODS) = Field(
        description=f"step-4 weights to compare, from {list(WDUE_METHODS)}")
    data: WdueData
    teacher: WdueTeacher
    student: WdueStudent
    distill: WdueDistill
    weights: WdueWeights
    optim: CosineSGD

    @model_validator(mode="after")
    def _consistent(self):
        check_shared_teacher(self.teacher.seed, self.data.split_seed)
        return self


class CoresetConfig(RecipeConfig):
    output_dir: str = Field(description="folder that holds the run folders")
    source_run: Annotated[str, Field(min_length=1)] = Field(description="a kd run folder with a finished "
                                                                        "AMAL method")
    source_method: Annotated[str, Field(min_length=1)] = Field(description="which AMAL method's lambda "
                                                                           "table to read")
    fraction: Annotated[float, Field(gt=0, le=1)] = Field(description="share of the training set per subset")
    strategies: names_from(CORESET_STRATEGIES) = Field(
        description=f"how subsets are drawn, from {list(CORESET_STRATEGIES)}")
    ratio_floor: PositiveFloat = Field(description="lambda_p floor in lambda_a / lambda_p")

    @model_validator(mode="after")
    def _source_is_a_run(self):
        try:
            open_run(self.source_run)
        except FileNotFoundError as err:
            raise ValueError(f"source_run: {err}") from None
        return self


class NoisyData(Section):
    name: DatasetName = Field(description="the image dataset")
    root: str | None = Field(description="data folder; null: $METALOSS_DATA, else the online download")
    train_limit: NonNegativeInt = Field(description="keep the first N training images, before the "
                                                    "validation split and the meta set (0: all)")
    val_size: PositiveInt = Field(description="validation images split off train; noisy like the training "
                                              "labels: the only data any method selects its epoch on")
    test_limit: NonNegativeInt = Field(description="keep the first N test images (0: all)")
    split_seed: Seed | None = Field(description="null: each seed its own train/validation split; an int: one")
    workers: NonNegativeInt = Field(description="DataLoader worker processes")


class NoiseSection(Section):
    kind: NoiseKind = Field(description="how labels are corrupted (instance: Xia et al. 2020; "
                                        "asymmetric: CIFAR-10's class map)")
    rate: NoiseRate = Field(description="tau, the rate of corrupted training and validation labels, "
                                        "in [0, 1)")


class MetaSection(Section):
    size: NonNegativeInt = Field(description="M: clean, class-balanced examples taken out of the "
                                             "training pool for l2rw and mwnet (0: none)")


class ModelSection(Section):
    arch: Arch = Field(description="any timm name; the CIFAR models are registered by metaloss.vision")
    epochs: PositiveInt = Field(description="training epochs (before schedule_scale)")


class GCESection(Section):
    q: Annotated[float, Field(gt=0, le=1)] = Field(description="L_q's exponent, in (0, 1]")


class CoTeachingSection(Section):
    forget_rate: NoiseRate | None = Field(description="tau of R(T) = 1 - min(T / T_k tau, tau); "
                                                      "null: the noise rate")
    warmup_epochs: PositiveInt = Field(description="T_k, before schedule_scale")


class ReweightingSection(Section):
    mode: Literal[HYPERGRADIENT_MODES] = Field(description="how l2rw and mwnet look ahead (core's "
                                                           "hypergradient modes; first_order is cheaper)")
    meta_batch: PositiveInt = Field(description="meta-set examples per training step")


class MWNetSection(Section):
    hidden: PositiveInt = Field(description="units of V's hidden layer")
    lr: PositiveFloat = Field(description="V's Adam learning rate")
    weight_decay: Annotated[float, Field(ge=0)] = Field(description="V's weight decay")


class ConfidentLearningSection(Section):
    folds: Annotated[int, Field(ge=2)] = Field(description="k of the out-of-fold predicted probabilities")
    fold_epochs: PositiveInt = Field(description="each fold model's epochs (before schedule_scale)")


class DMLSection(Section):
    epsilon0: Annotated[float, Field(gt=0, le=1)] = Field(
        description="initial per-class selection ratio R_0(c)")
    lam: Probability = Field(description="lambda of eq. 2: (1 - lam) CE + lam KD (0: no KD)")
    temperature: PositiveFloat = Field(description="xi of the pseudo labels and KD")
    alpha: Annotated[float, Field(ge=0)] = Field(description="weight of the teacher's relabelling loss")
    label_smoothing: NoiseRate = Field(description="of the relabelling loss, in [0, 1)")
    feedback: Literal["student", "constant"] = Field(description="student: h of eq. 7; constant: h = 1 "
                                                                 "(the no-feedback ablation)")
    group_by: Literal["label", "teacher"] = Field(description="classes of the per-class selection: the "
                                                  "observed label, or the teacher's argmax (eq. 8 literally)")
    warmup_epochs: Annotated[int, Field(ge=0)] = Field(
        description="epochs (before schedule_scale) in which D~ is the whole batch and R_t(c) waits")
    teacher_arch: str | None = Field(description="the teacher's timm name (null: model.arch)")


class L2TDLNSection(L2TDLNSettings):
    similarity: Literal[SIMILARITY_METRICS] = Field(description="data reweighting's similarity (the _dr "
                                                                "methods; snr: eq. 34)")


class NoisyLabelsConfig(RecipeConfig):
    """The ``noisy_labels`` recipe's config (``noisy_labels.yaml``)."""

    output_dir: str = Field(description="folder that holds the run folders")
    seeds: Seeds = Field(description="one split, meta set, noise draw and model per seed")
    methods: names_from(NOISY_METHODS) = Field(description=f"methods to compare, from {list(NOISY_METHODS)}")
    data: NoisyData
    noise: NoiseSection
    imbalance_ratio: Annotated[float, Field(ge=1)] = Field(
        description="long tail: largest / smallest class count (1: balanced; Cui et al. 2019)")
    meta: MetaSection
    model: ModelSection
    optim: ScheduledSGD
    schedule_scale: Annotated[float, Field(gt=0, le=1)] = Field(
        description="multiplies every epoch count (milestones, T_k), for CPU runs")
    selection: Literal["auto", "accuracy", "balanced_accuracy"] = Field(
        description="what selects the epoch on the noisy validation split; auto: balanced accuracy "
                    "(mean per-class accuracy) with a long tail, else accuracy")
    gce: GCESection
    coteaching: CoTeachingSection
    reweighting: ReweightingSection
    mwnet: MWNetSection
    confident_learning: ConfidentLearningSection
    dml: DMLSection
    l2t_dln: L2TDLNSection

    @model_validator(mode="after")
    def _consistent(self):
        check_noise_dataset(self.noise.kind, self.data.name)
        size, classes = self.meta.size, NUM_CLASSES[self.data.name]
        needing = [m for m in self.methods if NOISY_METHODS[m]]
        if needing and size == 0:
            raise ValueError(f"meta.size: {needing} learn from a clean meta set; give M > 0")
        if size % classes:
            raise ValueError(f"meta.size must split evenly into the {classes} classes of {self.data.name} "
                             f"(class-balanced), got {size}")
        pool = (self.data.train_limit or TRAIN_SIZES[self.data.name]) - self.data.val_size
        if size >= pool:
            raise ValueError(f"meta.size ({size}) must be smaller than the training pool ({pool} images "
                             "after the validation split)")
        return self


# The recipes: code and YAML defaults in metaloss/vision/recipes/, beside this package.
RECIPE_DIR = Path(__file__).resolve().parents[1] / "vision" / "recipes"

KD_DIGITS = Recipe(
    name="kd_digits",
    description="CE vs KD vs AMAL: MLP teacher -> 8-unit student, UCI digits, 40% label noise (~30 s)",
    default_config=RECIPE_DIR / "kd_digits.yaml",
    main="metaloss.vision.recipes.kd_digits:main",
    schema=KDDigitsConfig,
)

KD = Recipe(
    name="kd",
    description="image KD: CE, KD, AMAL, multi-teacher AMAL, TAKD, DGKD, self-distillation (CIFAR)",
    default_config=RECIPE_DIR / "kd.yaml",
    main="metaloss.vision.recipes.kd:main",
    schema=DistillationConfig,
)

TRAIN_TEACHER = Recipe(
    name="train_teacher",
    description="train the kd recipe's teacher alone, saving snapshots at teacher.snapshot_epochs",
    default_config=RECIPE_DIR / "kd.yaml",
    main="metaloss.vision.recipes.train_teacher:main",
    schema=TeacherOnlyConfig,
)

CORESET = Recipe(
    name="coreset",
    description="AMAL Table 1: CE on 20% subsets drawn from a finished kd run's lambdas vs at random",
    default_config=RECIPE_DIR / "coreset.yaml",
    main="metaloss.vision.recipes.coreset:main",
    schema=CoresetConfig,
)

NOISY_LABELS = Recipe(
    name="noisy_labels",
    description="noisy labels / long tails: CE, GCE, Co-teaching, L2RW, MW-Net, confident learning, DML, "
                "L2T-DLN (CIFAR)",
    default_config=RECIPE_DIR / "noisy_labels.yaml",
    main="metaloss.vision.recipes.noisy_labels:main",
    schema=NoisyLabelsConfig,
)

WDUE = Recipe(
    name="wdue",
    description="distillation with unlabeled examples: unweighted vs WDUE weights vs fidelity vs oracle",
    default_config=RECIPE_DIR / "wdue.yaml",
    main="metaloss.vision.recipes.wdue:main",
    schema=WdueConfig,
)
