"""The preset configs (JSON), installed as the package ``abaw.configs``: see abaw/presets.py."""
