"""TensorFlow Lite export: a fixed-size uint8 image input, probabilities out, and the class
names, input size and provenance in the file's metadata (no decode or resize ops inside)."""
