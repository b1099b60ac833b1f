"""Training and evaluation engine: clip loading, training, evaluation, prediction.

Clips, from a frame list to a batch:

- :mod:`mienet.engine.sampling`: which frames a clip is made of (segment and dense sampling),
  and the order and seeds of an epoch's items (:class:`~mienet.engine.sampling.ClipSampler`);
- :mod:`mienet.engine.transforms`: clip-consistent augmentation and normalisation;
- :mod:`mienet.engine.decoding`: image files and frame packs to uint8 frames (OpenCV);
- :mod:`mienet.engine.jpeg`: JPEG bytes to frames on a device (``decode: gpu``);
- :mod:`mienet.engine.dataset`: the clip dataset over TSN frame lists, its collate function
  and its loader.

Training (``mienet train``):

- :mod:`mienet.engine.run_state`: the run folder (checkpoints, log, curves) and the rules of
  resuming it;
- :mod:`mienet.engine.loop`: the training itself (the model and its optimiser, the epochs,
  validation after each);
- :mod:`mienet.engine.train`: the command line.
"""
