"""The fault-injection suite (``velourcity chaos``): real workers, a real broker and an
accounting receiver, with faults injected while events flow; every scenario ends in a
:class:`~velourcity_chaos.report.Tally` (published, delivered, lost, duplicates, ...).

Modules: :mod:`.receiver` (the accounting receiver, its own process), :mod:`.stack` (the
processes and topics of one run), :mod:`.ledger` (what arrived, counted), :mod:`.poison`
(malformed records), :mod:`.broker` (a throwaway broker), :mod:`.cluster` (the local
three-broker cluster), :mod:`.scenarios`, :mod:`.api_abuse` and :mod:`.failover` (the faults),
:mod:`.report` (the table, JSON and Markdown).
"""

from velourcity_chaos.report import Tally

__all__ = ["Tally"]
