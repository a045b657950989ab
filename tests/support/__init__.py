"""What the tests share, importable by name (``pytest.ini`` puts ``tests/`` on the path):
``builders`` makes configs, data and small trained models; ``callbacks`` holds Keras
callbacks for fault tests; ``service`` builds a tiny real artifact and runs gunicorn."""
