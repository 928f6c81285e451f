"""Development-only tools: the Entra ID + ARM emulator, the local Functions host, Azurite launcher.

Nothing deployed imports this package; `.funcignore` keeps it out of the deployed package.
"""
