"""stash-ai-tagger: tags a Stash library from what its videos show.

The package is laid out along the data flow, one folder per stage, each importing only from the
stages before it (``tests/test_layout.py`` checks): ``stashside`` (Stash's side: protocol,
bootstrap, hook, Stash client, store, relay to a worker), ``media`` (frames in), ``decide`` (pure
decisions), ``analyzers`` (the models), ``engine`` (one pass, cache, evidence), ``writeback`` (a
plan of changes, applied and journaled), ``faces`` (performer recognition), ``run`` (a task's
modes) and ``apps`` (entry, command line, worker). ``stashside`` and the flat modules it uses
(``errors``, ``redact``, ``config``) need the standard library only: they run in Stash's own
Python on the hook path.
"""

__version__ = "0.1.0"
