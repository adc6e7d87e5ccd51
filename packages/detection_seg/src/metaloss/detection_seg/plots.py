"""Pictures of predictions next to the ground truth, for a run's report.

- ``plot_detections``: one row per image, ground-truth boxes | predicted boxes (class name and score).
- ``plot_segmentations``: one row per image, image | ground truth | prediction, classes in a fixed
  palette laid over the image, ignored pixels black.
- ``plot_part_weights``: one histogram per loss part of AMAL's per-image weights (method ``amal``).

Images are uint8 (3, H, W) as the datasets give them before their transforms (``data.denormalize``
turns a transformed batch back); boxes and masks are in those images' pixels. Each panel is
``PANEL_INCHES`` square at ``DPI``, so a figure of R rows and K columns is a PNG of
(K * PANEL_INCHES * DPI) x (R * PANEL_INCHES * DPI) pixels.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from metaloss.core.checks import check_int, check_probability, describe

PANEL_INCHES = 4
DPI = 100
MASK_ALPHA = 0.6
LEGEND_ENTRIES = 8


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def palette(num_classes: int) -> torch.Tensor:
    """A fixed uint8 (num_classes, 3) colour table: hues a golden-ratio step apart, with saturation and
    brightness cycling too so that classes of similar hue still differ; never black, which marks
    ignored pixels."""
    check_int("num_classes", num_classes, minimum=1)
    colours = [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, (0.9, 0.55)[i % 2], (0.95, 0.75, 0.55)[(i // 2) % 3])
               for i in range(num_classes)]
    return (torch.tensor(colours) * 255).round().to(torch.uint8)


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().as_subclass(torch.Tensor).cpu()


def _check_path(path) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _check_names(names) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"names must be a non-empty list of class names, got {names!r:.80}")
    return [str(n) for n in names]


def _check_images(images) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError("images must be (B, 3, H, W) or a list of (3, H, W), "
                             f"got shape {tuple(images.shape)}")
        images = list(images)
    if not isinstance(images, Sequence) or not images:
        raise ValueError(f"images must be a non-empty batch, got {images!r:.80}")
    for i, image in enumerate(images):
        ok = isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.dim() == 3
        if not ok or image.shape[0] != 3:
            raise ValueError(f"images[{i}] must be a uint8 (3, H, W) tensor, got {image!r:.80}")
    return [_plain(image) for image in images]


def _check_counts(**batches) -> None:
    counts = {name: len(value) for name, value in batches.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"expected one entry per image in each argument, got {counts}")


def _boxes(where: str, entry, num_classes: int, with_scores: bool) -> tuple:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a dict with 'boxes' and 'labels', got {type(entry).__name__}")
    boxes, labels = entry.get("boxes"), entry.get("labels")
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must be a (N, 4) XYXY tensor, got {boxes!r:.80}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(boxes),) or labels.is_floating_point():
        raise ValueError(f"{where}['labels'] must be an integer ({len(boxes)},) tensor, got {labels!r:.80}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{where}['labels'] must index names (0..{num_classes - 1}), got {labels.tolist()}")
    scores = entry.get("scores") if with_scores else None
    if with_scores and (not isinstance(scores, torch.Tensor) or scores.shape != (len(boxes),)):
        raise ValueError(f"{where}['scores'] must be a ({len(boxes)},) tensor, got {scores!r:.80}")
    boxes, labels = _plain(boxes).float(), _plain(labels).long()
    return boxes, labels, _plain(scores).float() if with_scores else None


def _draw_boxes(image: torch.Tensor, boxes, labels, texts: list[str], colours: torch.Tensor) -> torch.Tensor:
    if not len(boxes):
        return image
    from matplotlib import font_manager

    # matplotlib's bundled DejaVu Sans: a scalable font that is there wherever matplotlib is.
    font = font_manager.findfont("DejaVu Sans")
    size = max(12, image.shape[-2] // 25)
    return draw_bounding_boxes(image, boxes, texts, colors=[tuple(colours[c].tolist()) for c in labels],
                               width=max(2, image.shape[-2] // 200), font=font, font_size=size,
                               fill_labels=True)


def _figure(plt, rows: int, columns: int):
    fig, axes = plt.subplots(rows, columns, figsize=(columns * PANEL_INCHES, rows * PANEL_INCHES),
                             dpi=DPI, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _show(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=9)


def _save(plt, fig, path: Path) -> Path:
    # Fixed margins rather than tight_layout (which draws the figure once more) or bbox_inches="tight"
    # (which would crop): the PNG keeps the figure's size, one PANEL_INCHES square per panel.
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.03, hspace=0.08)
    return _write(plt, fig, path)


def _write(plt, fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_detections(images, predictions: Sequence[Mapping], targets: Sequence[Mapping], names: Sequence[str],
                    path: str | os.PathLike, max_images: int = 4, score_threshold: float = 0.3) -> Path:
    """Rows of ground truth | prediction for the first ``max_images`` images; writes a PNG at ``path``.

    ``predictions``: ``{"boxes" (N, 4) XYXY, "scores" (N,), "labels" (N,)}`` per image, of which the
    boxes scoring at least ``score_threshold`` are drawn; ``targets``: ``{"boxes", "labels"}``;
    ``names[label]`` names a class.
    """
    images = _check_images(images)
    names = _check_names(names)
    path = _check_path(path)
    for name, value in (("predictions", predictions), ("targets", targets)):
        if not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a list of dicts, one per image, got {type(value).__name__}")
    _check_counts(images=images, predictions=predictions, targets=targets)
    check_int("max_images", max_images, minimum=1)
    check_probability("score_threshold", score_threshold)
    rows = min(len(images), max_images)
    # Everything is checked before a figure exists, so a refused input leaves none open.
    truths = [_boxes(f"targets[{row}]", targets[row], len(names), with_scores=False) for row in range(rows)]
    guesses = [_boxes(f"predictions[{row}]", predictions[row], len(names), with_scores=True)
               for row in range(rows)]
    colours = palette(len(names))
    plt = _pyplot()
    fig, axes = _figure(plt, rows, 2)
    for row, image in enumerate(images[:rows]):
        boxes, labels, _ = truths[row]
        _show(axes[row, 0], _draw_boxes(image, boxes, labels, [names[c] for c in labels], colours),
              f"ground truth ({len(boxes)} boxes)")
        boxes, labels, scores = guesses[row]
        keep = scores >= score_threshold
        texts = [f"{names[c]} {s:.2f}" for c, s in zip(labels[keep].tolist(), scores[keep].tolist())]
        _show(axes[row, 1], _draw_boxes(image, boxes[keep], labels[keep], texts, colours),
              f"prediction ({int(keep.sum())} boxes, score >= {score_threshold:g})")
    return _save(plt, fig, path)


def _check_masks(name: str, masks, images: list[torch.Tensor], num_classes: int,
                 ignore_index: int) -> list[torch.Tensor]:
    if isinstance(masks, torch.Tensor):
        if masks.dim() != 3:
            raise ValueError(f"{name} must be (B, H, W) or a list of (H, W), got shape {tuple(masks.shape)}")
        masks = list(masks)
    if not isinstance(masks, Sequence):
        raise TypeError(f"{name} must be a (B, H, W) tensor or a list of (H, W) tensors, "
                        f"got {type(masks).__name__}")
    _check_counts(images=images, **{name: masks})
    for i, (mask, image) in enumerate(zip(masks, images)):
        if not isinstance(mask, torch.Tensor) or mask.is_floating_point() or mask.shape != image.shape[1:]:
            raise ValueError(f"{name}[{i}] must be an integer tensor of its image's size "
                             f"{tuple(image.shape[1:])}, got {mask!r:.80}")
        labelled = mask[mask != ignore_index]
        if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= num_classes):
            raise ValueError(f"{name}[{i}] must hold indices 0..{num_classes - 1} or {ignore_index}, "
                             f"got values in [{int(labelled.min())}, {int(labelled.max())}]")
    return [_plain(mask).long() for mask in masks]


def _colour(image: torch.Tensor, mask: torch.Tensor, colours: torch.Tensor, ignore_index: int):
    """The image under its class colours, ignored pixels black; also the most frequent classes."""
    # bincount: linear time, where unique() would sort every pixel
    area = torch.bincount(mask[mask != ignore_index], minlength=len(colours))
    present = area.nonzero().flatten()
    out = image
    if len(present):
        layers = mask.unsqueeze(0) == present.view(-1, 1, 1)
        out = draw_segmentation_masks(image, layers, alpha=MASK_ALPHA,
                                      colors=[tuple(colours[c].tolist()) for c in present])
    out = out.clone()
    out[:, mask == ignore_index] = 0
    return out, present[area[present].argsort(descending=True)][:LEGEND_ENTRIES].tolist()


def _legend(ax, classes: list[int], names: list[str], colours: torch.Tensor) -> None:
    if not classes:
        return
    from matplotlib.patches import Patch

    handles = [Patch(color=(colours[c].float() / 255).tolist(), label=names[c]) for c in classes]
    ax.legend(handles=handles, loc="lower left", fontsize=6, framealpha=0.8)


def plot_segmentations(images, predictions, targets, names: Sequence[str], path: str | os.PathLike,
                       max_images: int = 4, ignore_index: int = 255) -> Path:
    """Rows of image | ground truth | prediction for the first ``max_images`` images; writes a PNG.

    ``predictions`` and ``targets``: class indices (B, H, W) or a list of (H, W), one per image, of its
    size; ``names[index]`` names a class; ``ignore_index`` pixels are drawn black. Each coloured panel's
    legend names its most frequent classes.
    """
    images = _check_images(images)
    names = _check_names(names)
    path = _check_path(path)
    check_int("max_images", max_images, minimum=1)
    check_int("ignore_index", ignore_index)
    targets = _check_masks("targets", targets, images, len(names), ignore_index)
    predictions = _check_masks("predictions", predictions, images, len(names), ignore_index)
    colours = palette(len(names))
    rows = min(len(images), max_images)
    plt = _pyplot()
    fig, axes = _figure(plt, rows, 3)
    for row in range(rows):
        _show(axes[row, 0], images[row], "image")
        panels = (("ground truth", targets), ("prediction", predictions))
        for column, (title, masks) in enumerate(panels, start=1):
            coloured, classes = _colour(images[row], masks[row], colours, ignore_index)
            _show(axes[row, column], coloured, title)
            _legend(axes[row, column], classes, names, colours)
    return _save(plt, fig, path)


def plot_part_weights(table: torch.Tensor, names: Sequence[str], path: str | os.PathLike,
                      start: float = 1.0) -> Path:
    """Histograms of AMAL's per-image weights, one panel per loss part (a column of ``table``,
    (images, parts)), with the weights' start marked."""
    if not isinstance(table, torch.Tensor) or table.ndim != 2 or table.shape[0] == 0:
        raise ValueError(f"table must be (images, parts) with at least one image, got {describe(table)}")
    names, path = _check_names(names), _check_path(path)
    if len(names) != table.shape[1]:
        raise ValueError(f"names must name the table's {table.shape[1]} parts, got {len(names)}")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(len(names) * PANEL_INCHES, 0.75 * PANEL_INCHES), dpi=DPI,
                             squeeze=False)
    values = _plain(table).double()
    for ax, name, column in zip(axes[0], names, values.T):
        ax.hist(column.numpy(), bins=30, color="tab:blue")
        ax.axvline(start, color="black", linestyle="--", linewidth=1, label=f"start ({start:g})")
        ax.set_title(f"w_{name}: mean {float(column.mean()):.3f}", fontsize=9)
        ax.set_xlabel("per-image weight", fontsize=8)
    axes[0][0].set_ylabel("training images", fontsize=8)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()  # axis labels, unlike the image grids' bare panels
    return _write(plt, fig, path)
