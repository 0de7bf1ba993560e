"""acedata-proxy: a local, OpenAI-compatible gateway for the AceData Cloud API."""

__version__ = "0.1.0"
