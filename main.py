"""Start the PERSONA Studio desktop app: ``python main.py [PHOTO_OR_WORKSPACE]``."""

from persona_studio.app.window import main

if __name__ == "__main__":
    raise SystemExit(main())
