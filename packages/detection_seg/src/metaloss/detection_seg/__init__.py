"""metaloss-detection-seg: YOLOv3 / PSPNet losses driven by AMAL and the dynamic loss network.

An installable shell for now; its issue fills it.
"""
