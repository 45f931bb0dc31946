#!/usr/bin/env python
"""Django entry point; the role is the settings module (grid.settings.facilitator|validator|miner)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "grid.settings.facilitator")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
