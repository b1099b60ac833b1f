"""The project's tables, each defined once: model variants (:mod:`.variants`), frame layouts
(:mod:`.frames`) and dataset formats (:mod:`.formats`).

These modules are leaves: they import nothing else of the project, so that ``config``,
``layout``, ``data``, ``models`` and the workflow all read them and none imports another
upward (``tests/test_architecture.py``).
"""
