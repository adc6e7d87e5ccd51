"""The runnable experiments of metaloss-detection-seg (registered in ``metaloss.detection_seg_catalog``)."""
