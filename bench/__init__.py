"""Liaison's benchmark: Liaison against plain python-socketio and Node socket.io, same run.

Entry point ``python -m bench``; what is measured and how to read it is in
bench/README.md.
"""
