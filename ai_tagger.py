#!/usr/bin/env python3
"""stash-ai-tagger's entry: Stash runs it as a raw plugin; people run it as a command.

Standard library only at import time. Without arguments it reads Stash's JSON from stdin and
prints exactly one JSON object; with arguments it is the command line (``--help``).
"""

import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
# Stash puts the plugins root on PYTHONPATH; our own package must win over any namesake there.
sys.path.insert(0, str(PLUGIN_DIR))

from tagger.apps.entry import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], PLUGIN_DIR))
