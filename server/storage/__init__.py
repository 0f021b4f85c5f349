"""Durable storage behind interfaces.

base.py       EventLog (append with seq, read a range, heads) and its guarantees
sqlite.py     SqliteEventLog: the embedded default (WAL, group commit)
directory.py  organisations, users and credentials (SQLite)
"""
