"""The app's page in Gradio: the video player with the queries on the left, the answer on the right
(a message, the windows table, the model's text, the download), the timelines below.

Imported only after ``lavis.app.server`` has set Gradio's environment (no telemetry, its own
temporary folder): Gradio reads it when it is imported and when a page is built.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
import pandas as pd

from lavis.app.answer import Answerer, AppError
from lavis.app.examples import Example
from lavis.app.present import ModelFacts, answer_markdown, escape_markdown, model_markdown

logger = logging.getLogger(__name__)

HEADERS = ["#", "query", "rank", "start (s)", "end (s)", "score"]
START = HEADERS.index("start (s)")
# Seeking happens in the browser: the server only turns the clicked row into its start time.
SEEK_JS = """(t) => {
  const player = document.querySelector('#player video');
  if (player && t !== null && !Number.isNaN(t)) {
    player.currentTime = t;
    player.play().catch(() => {});
  }
  return [];
}"""
INTRO = (
    "# Find the moment\n"
    "Upload a video (or pick an example), type what happens, one query per line, and press "
    "**Find the moments**. Click a window in the table to play it."
)
# A timeline is 1200 x 500: its gallery tile keeps that shape and the gallery grows to show them all.
PAGE_CSS = """
#timelines .grid-wrap { height: auto !important; max-height: none !important; }
#timelines .thumbnail-item { aspect-ratio: 12 / 5; height: auto; }
"""
CACHE_CLEANING = (600, 3600)  # every 10 minutes, delete uploads and answers older than an hour


def _table(rows: list[list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HEADERS)


def build_page(answerer: Answerer, facts: ModelFacts, examples: list[Example]) -> gr.Blocks:
    """The Gradio page around ``answerer``: its event ``answer`` (video, queries -> message,
    windows table, text, timelines, files) is the app's API, one request at a time (the queue
    is set by ``lavis.app.server``)."""

    def on_answer(video: str | None, queries: str | None):
        try:
            answer = answerer.answer(video, queries)
        except AppError as err:
            return f"**Not answered**: {escape_markdown(str(err))}", _table([]), "", [], None
        text = answer_markdown(answer.video_name, answer.results, answer.elapsed_s, facts.hears)
        timelines = [(str(path), caption) for path, caption in answer.timelines]
        done = f"**Answered** {len(answer.results)} quer{'y' if len(answer.results) == 1 else 'ies'}."
        return done, _table(answer.rows), text, timelines, [str(f) for f in answer.files]

    def on_select(event: gr.SelectData):
        row = event.row_value or []
        try:
            return float(row[START])
        except (IndexError, TypeError, ValueError):
            return gr.skip()  # a row without a window: nothing to play

    with gr.Blocks(title="SMS: find the moment", analytics_enabled=False, delete_cache=CACHE_CLEANING) as page:
        gr.Markdown(INTRO)
        gr.Markdown(model_markdown(facts), elem_id="model")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(sources=["upload"], label="Video", height=320, elem_id="player")
                queries = gr.Textbox(
                    label="Queries, one per line",
                    lines=3,
                    placeholder="when can you hear the high beep?",
                    elem_id="queries",
                )
                ask = gr.Button("Find the moments", variant="primary", elem_id="ask")
                if examples:
                    gr.Examples(
                        [[str(e.video), e.query] for e in examples],
                        inputs=[video, queries],
                        label="Examples: test videos of the run's dataset, each with one of its queries",
                        cache_examples=False,
                        elem_id="examples",
                    )
            with gr.Column(scale=1):
                status = gr.Markdown(elem_id="status")
                table = gr.Dataframe(
                    _table([]),
                    headers=HEADERS,
                    datatype=["number", "str", "number", "number", "number", "number"],
                    interactive=False,
                    wrap=True,
                    column_widths=["7%", "45%", "10%", "13%", "12%", "13%"],
                    label="Windows, best first for each query: click one to play it",
                    elem_id="windows",
                )
                text = gr.Markdown(elem_id="answer")
                files = gr.File(
                    label="Download: the JSON that lavis.predict writes",
                    file_count="multiple",
                    interactive=False,
                    elem_id="download",
                )
        timelines = gr.Gallery(
            label="Timelines: frames, loudness, windows, relevance",
            columns=1,
            object_fit="contain",
            allow_preview=False,
            elem_id="timelines",
        )
        seek_to = gr.Number(visible=False)

        ask.click(
            on_answer,
            inputs=[video, queries],
            outputs=[status, table, text, timelines, files],
            api_name="answer",
            concurrency_limit=1,  # one model, one request at a time; the others wait in the queue
        )
        table.select(on_select, outputs=seek_to, queue=False, api_visibility="private", show_progress="hidden").then(
            None, inputs=seek_to, js=SEEK_JS, api_visibility="private"
        )
    return page
