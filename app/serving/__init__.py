"""The models a running server serves, for web workers and job workers alike: which are loaded
(registry.py) and what changes while it runs (live.py: the live classifier and the gallery)."""
