"""``mienet search``: Optuna studies over the training settings (pruned, resumable, parallel).

- :mod:`mienet.search.space`   the ``search:`` mapping of params.yaml, checked key by key
- :mod:`mienet.search.storage` journal file or database, study lock, heartbeat, stale trials
- :mod:`mienet.search.study`   the objective, the worker loop, K worker processes
- :mod:`mienet.search.outputs` best_params.yaml, trials.csv, summary.json, plots
- :mod:`mienet.search.cli`     the command line
"""
