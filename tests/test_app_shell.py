"""The real app window under Xvfb: it opens, loads the body model off the GUI thread, shows it."""

from __future__ import annotations

import time

import pytest


def test_window_opens_and_shows_the_body_model(display, tmp_path, open_body_model):
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from persona_studio.app.window import App

    app = App()
    app.build(800, 600)
    try:
        dpg.show_viewport()
        worker = app.load_body_model_async()
        deadline = time.time() + 120
        while (worker.is_alive() or not app.body_info) and time.time() < deadline:
            app.pump_events()
            dpg.render_dearpygui_frame()  # the window keeps drawing while the model loads
        assert "vertices:" in dpg.get_value("body_info")
        shot = tmp_path / "shell.png"
        dpg.output_frame_buffer(file=str(shot))
        for _ in range(3):
            dpg.render_dearpygui_frame()
        assert shot.is_file() and shot.stat().st_size > 1000
    finally:
        app.close()
