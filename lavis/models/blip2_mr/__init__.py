"""The SMS / Mr. BLIP model (``arch: blip2_mr``); the class is ``lavis.models.blip2_mr.model.Blip2MR``."""
