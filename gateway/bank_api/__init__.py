"""The bank REST gateway: one per bank, in front of that bank's peer (see gateway/README.md).

``gateway.bank_api.app.create_app(config)`` builds the Flask app; ``python -m gateway.bank_api``
runs it; ``gateway.bank_api.wsgi:app`` is the gunicorn entry point.
"""
