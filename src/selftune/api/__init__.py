"""The HTTP API: the hosted service's Files, Fine-tuning Jobs and Models surfaces, for the openai SDK.

Each surface has ``protocol.py`` (pydantic shapes, fields as the SDK's types name them),
``service.py`` (the logic, no FastAPI import) and ``router.py`` (thin routes).
"""
