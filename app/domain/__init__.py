"""The shared bottom of the domain: the event vocabulary, the lead-change port, the tables
every domain reads and the pure profile fold. It imports only infrastructure."""
