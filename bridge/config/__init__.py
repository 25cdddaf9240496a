"""The bridge's settings: sections.py (one frozen model per section, its defaults and bounds) and settings.py
(`BridgeSettings`, and `load_settings`: YAML < `BRIDGE_<SECTION>__<KEY>` < flags, one clear line when wrong).

Nothing is imported here: `bridge run` reads only the sections it needs, without pydantic-settings."""
