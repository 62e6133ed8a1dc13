"""The shared bottom of the domain: what every domain package reads and writes."""
