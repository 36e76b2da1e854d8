"""stash-ai-tagger: tags a Stash library from what its videos show.

The package is laid out along the data flow: ``media`` (frames in), analysis, decisions, a plan of
changes, and ``stash`` (changes out). Modules imported by the Stash-side entry on the hook path
(``protocol``, ``bootstrap``, ``hook``, ``stash``, ``errors``, ``settings``) use the standard
library only.
"""

__version__ = "0.1.0"
