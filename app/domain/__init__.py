"""The shared bottom of the domain: the event vocabulary, the lead-change port, the tables
every domain reads, the pure profile fold, and the typed lead row with the one module that
writes it. It imports only infrastructure."""
