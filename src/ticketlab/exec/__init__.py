"""Executors: where the jobs of an experiment run. ``local`` (the default) spreads trials over processes here."""
