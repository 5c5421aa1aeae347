"""The Usenet engine: from an NZB document to verified bytes on disk.

A library with plain asyncio interfaces; it never imports ``server`` or ``transcode``.
"""
