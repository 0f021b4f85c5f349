"""Fan-out of committed events to the listeners of one node.

memory.py   MemoryBroker: in-process, single node only (the embedded default)
"""
