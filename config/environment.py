"""Where settings come from: the process environment, then a git-ignored ``.env`` file.

Read before any settings module decides anything, so that config.settings_production
can require its secrets before the base settings are imported (the base settings
generate missing secrets for the embedded mode; production must never get that far).
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # never overrides the process environment
