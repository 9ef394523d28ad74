"""Atelier training package: networks, pretrained-weight import, losses, training, Gatys, evaluation."""
