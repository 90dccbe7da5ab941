"""The experiment library behind ``scripts/`` and ``benchmarks/``: named recipes (``recipes``),
launching fairseq and timing it (``runner``), reading its logs (``fairseq_log``), the side by
side's declarative decodes (``decodes``), scoring with one or several references (``scoring``),
and the report's table and plots (``report``, ``plots``).

Only ``runner`` and ``decodes`` start fairseq processes; nothing here imports fairseq itself.
"""
