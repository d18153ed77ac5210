"""Make the README's screenshot: the real app on a trained workspace, a motion preset's frame, seen from
an angle (under Xvfb when there is no display).

    python docs/make_screenshot.py WORKSPACE [--motion dance] [--frame 71] [--yaw 70] [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # support/

from persona_studio.app.viewport import ORBIT_RADIANS_PER_PIXEL
from persona_studio.app.window import App
from support.virtual_display import virtual_display


def run_until(app: App, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}; status: {dpg.get_value('status')!r}")
        app.frame()


def settle(app: App, quiet_s: float = 1.0) -> None:
    """Render GUI frames until the viewport has shown nothing new for ``quiet_s`` seconds."""
    last, since = app.viewport.frames_shown, time.monotonic()
    while time.monotonic() - since < quiet_s:
        app.frame()
        if app.viewport.frames_shown != last:
            last, since = app.viewport.frames_shown, time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--motion", default="dance")
    parser.add_argument("--frame", type=int, default=71)
    parser.add_argument("--yaw", type=float, default=70.0, help="degrees the camera orbits from the front")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("screenshot.png"))
    args = parser.parse_args()
    with virtual_display():
        app = App(args.workspace)
        app.build(1280, 800)
        try:
            app.start()
            run_until(app, lambda: app.poser is not None and app.scene_ready and app.viewport.frames_shown > 0,
                      300, "the avatar")
            dpg.set_value("anim_presets", args.motion)
            app.animation.load_motion(args.motion)
            run_until(app, lambda: app.animation.cache is not None and app.animation.shown_frame == 0, 300,
                      f"the {args.motion} preset")
            app.animation.seek(args.frame)
            run_until(app, lambda: app.animation.shown_frame == args.frame, 300, f"frame {args.frame}")
            app.viewport.orbit(-math.radians(args.yaw) / ORBIT_RADIANS_PER_PIXEL, 0)
            settle(app)
            print(f"screenshot: {app.screenshot(args.out)}")
        finally:
            app.close()


if __name__ == "__main__":
    main()
