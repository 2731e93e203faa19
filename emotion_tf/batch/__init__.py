"""Batch scoring at scale: the photo pipeline on Apache Beam (`emotion-tf batch`).

Needs the `beam` extra (`pip install -e ".[cpu,beam]"`); `apache_beam` is imported only here.
"""
