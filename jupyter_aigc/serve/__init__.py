"""`jupyter-aigc serve`: one llama.cpp server for a whole class, behind a thin front.

llama.cpp's own HTTP server (through xllamacpp) does the model's work: parallel slots, continuous batching, the
prompt cache. The front (``front.py``) does what it does not: who may ask (Hub tokens or one token per student,
``auth.py``), fair shares across students (``fair.py``), the teacher's switch, and per-student usage kept in
SQLite (``ledger.py``). It speaks the OpenAI protocol, so ``%%gpt``, ``%%aigc_eval`` and any OpenAI client work
unchanged. ``cli.py`` sizes the server for the machine and runs both.
"""
