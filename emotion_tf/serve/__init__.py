"""`emotion-tf serve`: a local server that speaks TensorFlow Serving's REST API.

Modules: `protocol` (request parsing, response shapes), `batching` (dynamic batching),
`model` (the loaded export), `app` (Starlette routes), `cli` (the click command).
"""
