"""Inference on your own videos: ``predictor.load_model`` (also ``lavis.load_model``), long-video
chunking (``long_video``), timeline plots (``timeline``)."""
