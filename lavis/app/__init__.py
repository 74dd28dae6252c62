"""A web page to ask a trained run about a video: ``python -m lavis.app --run-dir RUN``.

``answer`` (the function behind the page: video + queries -> table rows, timelines, the JSON of
``lavis.predict``; no Gradio), ``present`` (what the page says around an answer), ``examples``
(the run's own test videos), ``page`` (the Gradio page), ``server`` (its environment, launch and
isolation), ``cli`` (the command). Gradio is the optional ``[app]`` extra.
"""
