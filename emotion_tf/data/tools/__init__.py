"""Data set tools behind `emotion-tf data ...`: FER2013 conversion, splitting, checking."""
