"""Faces in whole photos: detection, square crops framed like the training data, and the
policy that decides per image whether to detect or to use the image as it is."""
