"""Training and evaluation engine: clip loading, training, evaluation, prediction, benchmarks.

- :mod:`mienet.engine.data`: the clip dataset over TSN frame lists (segment sampling,
  clip-consistent augmentation, JPEG decoding), its sampler, collate function and loader.
"""
