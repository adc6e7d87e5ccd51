"""metaloss-weak-supervision: labeling functions, CAGE, SPEAR and AMAL for rule denoising.

An installable shell for now; its issue fills it.
"""
