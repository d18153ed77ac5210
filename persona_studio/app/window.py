"""The desktop window (DearPyGui). Numerical work runs on worker threads; the GUI thread only draws.

This is the app shell: the window, a status line and the body-model panel. The photo, pipeline,
training, animation and export panels attach here as their stages land.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import dearpygui.dearpygui as dpg

from persona_studio import __version__

TITLE = f"PERSONA Studio {__version__}"


class App:
    """Owns the DearPyGui context; worker threads talk to it only through ``self.events``."""

    def __init__(self, initial_path: Path | None = None):
        self.initial_path = initial_path
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.body_info = ""

    def build(self, width: int = 1280, height: int = 800) -> None:
        dpg.create_context()
        dpg.create_viewport(title=TITLE, width=width, height=height)
        with dpg.window(tag="main", no_title_bar=True, no_move=True, no_resize=True):
            with dpg.group(horizontal=True):
                with dpg.child_window(tag="side", width=360, border=True):
                    dpg.add_text("Body model", color=(200, 200, 255))
                    dpg.add_text("loading...", tag="body_info", wrap=340)
                with dpg.child_window(tag="viewport_area", border=True):
                    dpg.add_text("Open a photo to begin (the photo panel arrives with the next release).",
                                 tag="viewport_hint")
            dpg.add_text("", tag="status")
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()

    def load_body_model_async(self) -> threading.Thread:
        def work() -> None:
            from persona_studio.body.model import BodyModelError, load_body_model

            self.events.put(("status", "loading the body model (the first run builds it: about two minutes)"))
            try:
                model = load_body_model()
            except BodyModelError as exc:
                self.events.put(("body_info", f"unavailable: {exc}"))
                self.events.put(("status", str(exc)))
                return
            self.events.put(("body_info", model.info.describe()))
            self.events.put(("status", "ready"))

        thread = threading.Thread(target=work, name="body-model", daemon=True)
        thread.start()
        return thread

    def pump_events(self) -> None:
        """Apply what worker threads reported; called once per frame on the GUI thread."""
        while True:
            try:
                kind, text = self.events.get_nowait()
            except queue.Empty:
                return
            if kind == "body_info":
                self.body_info = text
                dpg.set_value("body_info", text)
            elif kind == "status":
                dpg.set_value("status", text)

    def run(self, max_frames: int | None = None) -> None:
        dpg.show_viewport()
        frames = 0
        while dpg.is_dearpygui_running() and (max_frames is None or frames < max_frames):
            self.pump_events()
            dpg.render_dearpygui_frame()
            frames += 1

    def close(self) -> None:
        dpg.destroy_context()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="persona-studio-app", description="PERSONA Studio desktop app")
    parser.add_argument("path", nargs="?", type=Path, help="a photo or a workspace folder to open")
    args = parser.parse_args(argv)
    app = App(args.path)
    app.build()
    app.load_body_model_async()
    try:
        app.run()
    finally:
        app.close()
    return 0
