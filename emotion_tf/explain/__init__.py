"""Grad-CAM explanations of AlexNet's decisions (`emotion-tf explain`).

`gradcam`: the heat maps; `model`: the Keras model behind a run, .keras file or export;
`paths`: panels for every face of every input image; `cli`: the command.
"""
