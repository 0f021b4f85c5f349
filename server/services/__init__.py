"""Application services: thin orchestration over the domain and the backends.

projections.py  IncidentState per incident, kept current from the log
commands.py     decide + append: the one write path for every transport
envelope.py     StoredEvent -> wire envelope (full or placeholder)
hub.py          who follows what; encode once per audience; resume without loss
"""
