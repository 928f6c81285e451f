"""Cross-cutting pieces every trigger needs: settings, clients, clock, auth and the HTTP edge."""
