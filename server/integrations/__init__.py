"""The public-safety standards Liaison speaks: pure mappings, no I/O.

=========  ==========================================================
module     what it maps
=========  ==========================================================
xml_input  untrusted XML in: defusedxml (no DTD, no entities), a size
           and depth bound, typed errors
cap        OASIS CAP 1.2 alerts <-> incidents (import: commands; export:
           an ``<alert>`` validated against OASIS's XSD)
eido       an incident view -> NENA EIDO JSON (NENA-STA-021.1)
cot        Cursor-on-Target ``<event>`` <-> responder positions
=========  ==========================================================

Every export starts from what the reader may see: an ``IncidentState.view``
built with the reader's ``Sight`` (server/domain/audience.py), never from the
log or the projection directly. The REST adapters are in
server/transport/rest_standards.py; bot authors read protocol/INTEGRATIONS.md.
"""
