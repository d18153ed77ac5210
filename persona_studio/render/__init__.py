from persona_studio.render.camera import Camera, stack_cameras

__all__ = ["Camera", "stack_cameras"]
