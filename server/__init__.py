"""The aiohttp application: config, store, services, routes and the command line."""
