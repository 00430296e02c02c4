"""Alert triage: signals in; alerts, incidents and pages out. Pure: no I/O.

The modules read as the flow: ``fingerprint`` → ``dedupe`` → ``silence`` → ``inhibit`` →
``group`` → ``score`` → ``route``, composed in one place (:mod:`alerts.triage`); storage
sits behind :mod:`alerts.store`.
"""
